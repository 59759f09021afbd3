"""A server started from Python dies with the process that started it, however that process
ends (a CI timeout's SIGTERM, a SIGKILL), and leaves no temp storage behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and the watcher are POSIX")

HANGING_TEST = """
import json, os, time

def test_hangs(aymara_mock):
    with open(os.environ["INFO"] + ".tmp", "w") as f:
        json.dump({"pid": aymara_mock.pid, "port": aymara_mock.port,
                   "storage": str(aymara_mock.storage_dir)}, f)
    os.replace(os.environ["INFO"] + ".tmp", os.environ["INFO"])
    time.sleep(600)  # until the outer test kills this pytest
"""


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie that whoever adopted it has not reaped yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] == b"Z"


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def poll(check, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_server_dies_with_pytest_and_its_storage_is_removed(pytester, tmp_path, sig):
    pytester.makepyfile(test_hang=HANGING_TEST)
    info = tmp_path / "server.json"
    pytest_proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pytester.path)],
        cwd=pytester.path,
        env={**os.environ, "INFO": str(info)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        started = poll(lambda: info.exists() or pytest_proc.poll() is not None, timeout=60)
        if not info.exists():
            pytest_proc.kill()
            out = pytest_proc.communicate()[0].decode(errors="replace")
            pytest.fail(f"the inner pytest never started its server (started={started}):\n{out}")
        server = json.loads(info.read_text())
        assert not gone(server["pid"])
        assert not port_closed(server["port"])
        assert Path(server["storage"]).is_dir()

        pytest_proc.send_signal(sig)
        pytest_proc.wait(timeout=10)
    finally:
        if pytest_proc.poll() is None:
            pytest_proc.kill()
            pytest_proc.wait()
        if pytest_proc.stdout is not None:
            pytest_proc.stdout.close()

    storage = Path(server["storage"])
    try:
        assert poll(lambda: gone(server["pid"]), timeout=10), "the server outlived pytest"
        assert poll(lambda: port_closed(server["port"]), timeout=5), "its port is still open"
        assert poll(lambda: not storage.parent.exists(), timeout=5), f"{storage.parent} is left"
    finally:  # if it failed, leave no orphan behind
        if not gone(server["pid"]):
            os.kill(server["pid"], signal.SIGKILL)
        shutil.rmtree(storage.parent, ignore_errors=True)


def test_a_clean_stop_leaves_no_watcher_behind():
    """The watcher of a server stopped normally exits at once, having done nothing."""
    from aymara_mock import AymaraMock

    with AymaraMock() as mock:
        reaper = mock._reaper
        assert reaper is not None and reaper.poll() is None
        storage = mock.storage_dir
    assert reaper.returncode == 0
    assert storage is not None and not storage.parent.exists()
