"""What the suites that need an S3-compatible store share (tests/s3, tests/cluster): moto in
server mode on a free loopback port, stoppable and restartable, its session and per-test
fixtures, and the small helpers around it (`poll`, `free_port`, the child environment).
Imported by their conftest.py files; the fixtures are re-exported there."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import httpx
import pytest
from botocore.config import Config
from sidecar import child_env

AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
_PROXY_VARS = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


def poll(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Calls `check` until it returns something truthy; fails after `timeout` seconds.

    The failure message shows `what` and the last value (or exception) seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except Exception as exc:  # noqa: BLE001 - reported below if it never succeeds
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aws_child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without settings that would change the emulator or its S3
    client (AYMARA_MOCK_*, AWS_*, proxies), plus `extra`."""
    return child_env(("AWS_",), _PROXY_VARS, extra)


def wait_port_closed(port: int, what: str) -> None:
    """Waits until 127.0.0.1:port refuses connections (`what` stopped)."""

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return False
        except OSError:
            return True

    poll(refused, timeout=10, what=f"port {port} to close after {what} stopped")


# -- moto ------------------------------------------------------------------------------------


class LoopbackServer:
    """A server in its own process on 127.0.0.1 (a subclass gives its `argv` and its `ready`
    check), stoppable (SIGTERM), killable (SIGKILL) and restartable on the same port; its output
    goes to `<log_dir>/<name>.log`."""

    what = "server"

    def __init__(self, log_dir: Path, name: str, cwd: Path | None = None) -> None:
        self.log_path = log_dir / f"{name}.log"
        self.cwd = cwd
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = open(self.log_path, "ab")

    def argv(self, port: int) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """One check that the server on `self.port` answers (it may raise OSError)."""
        raise NotImplementedError

    def start(self, port: int | None = None) -> None:
        """Starts the server on `port` (a free one when None) and waits until `ready`."""
        assert self.proc is None, "already running"
        attempts = 5  # a free port may be taken before the server binds it; a fixed one retried
        for _ in range(attempts):
            self.port = port if port is not None else free_port()
            self.proc = subprocess.Popen(
                self.argv(self.port),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                cwd=self.cwd,
                env=aws_child_env(),
            )
            if self._wait_ready(timeout=30.0):
                return
            self._kill()
        pytest.fail(
            f"{self.what} did not start on 127.0.0.1:{self.port} ({attempts} attempt(s)); "
            f"log:\n{self.log()}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False  # e.g. the port was taken meanwhile
            try:
                if self.ready():
                    return True
            except (OSError, httpx.TransportError):
                pass
            time.sleep(0.05)
        return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Sends `sig` (SIGKILL: it dies at once, mid-command), waits until the process is gone
        and the port refuses connections."""
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        assert self.port is not None
        wait_port_closed(self.port, self.what)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop()
        self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]


class Moto(LoopbackServer):
    """A moto server (S3 in memory)."""

    what = "moto"

    def __init__(self, log_dir: Path, name: str = "moto") -> None:
        super().__init__(log_dir, name)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self, port: int) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]

    def ready(self) -> bool:
        httpx.get(f"{self.endpoint}/moto-api/", timeout=2.0, trust_env=False)
        return True

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style, no retries to hide failures)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_ENV["AWS_REGION"],
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                proxies={},
                connect_timeout=5,
                read_timeout=120,
            ),
        )


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """One moto for the session, on a free port."""
    server = Moto(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server
    server.close()


@pytest.fixture
def own_moto(tmp_path: Path) -> Iterator[Moto]:
    """A moto for this test only (it may stop and restart it)."""
    server = Moto(tmp_path, name="own-moto")
    server.start()
    yield server
    server.close()



def empty_bucket(s3: Any, bucket: str) -> None:
    """Best effort: abort multipart uploads, delete every object and the bucket (frees moto's
    memory between tests)."""
    try:
        for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if objects:  # at most 1,000 a page, as delete_objects takes
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - cleanup only
        pass
