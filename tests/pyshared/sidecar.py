"""aymara-mock run as a sidecar process, the way the Python suites (tests/sdk, tests/s3) use it.

Only the public surface: the binary's flags, its one stdout line, its stderr, SIGTERM.  Each
suite's conftest subclasses `Sidecar` with the API calls it needs.  Found through
`pythonpath = ../pyshared` in each suite's pytest.ini.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_LINE = re.compile(r"^aymara-mock listening on (http://127\.0\.0\.1:(\d+))$")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def mock_bin(run_script: str) -> Path:
    """The binary under test: $AYMARA_MOCK_BIN, else the release build in this repo.

    `run_script` (e.g. "tests/sdk/run.sh") is named in the failure message as the way to build it.
    """
    env = os.environ.get("AYMARA_MOCK_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "release" / "aymara-mock"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"aymara-mock binary not found at {path}: run {run_script}, or "
            "`cargo build --release --bin aymara-mock`, or set AYMARA_MOCK_BIN",
            pytrace=False,
        )
    return path


def child_env(
    drop_prefixes: tuple[str, ...] = (),
    drop_names: frozenset[str] = frozenset(),
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The caller's environment without settings that would change the server (AYMARA_MOCK_*,
    AYMARA_AI_*, and any `drop_prefixes` / case-insensitive `drop_names`), plus `extra`."""
    prefixes = ("AYMARA_MOCK_", "AYMARA_AI_", *drop_prefixes)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(prefixes) and k.lower() not in drop_names
    }
    env.update(extra or {})
    return env


class Sidecar:
    """One aymara-mock process: started with `argv`, ready once it printed its listening line.

    `url` is the address it printed; `stop()` sends SIGTERM and records `returncode` and
    `extra_stdout` (anything printed after the ready line, which should be nothing).
    """

    def __init__(self, argv: list[str], stderr_path: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
        )
        self.url = self._read_ready_line()
        self.port = int(self.url.rsplit(":", 1)[1])
        self.returncode: int | None = None
        self.extra_stdout = ""

    def _read_ready_line(self) -> str:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line: str | None = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            line = None
        match = READY_LINE.match(line.rstrip("\n")) if line is not None else None
        if not match:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(
                f"no 'aymara-mock listening on http://127.0.0.1:PORT' line on stdout within "
                f"{START_TIMEOUT_S}s (got {line!r}, exit {self.proc.returncode}); "
                f"stderr:\n{self.stderr()}"
            )
        assert int(match.group(2)) != 0, "--port 0 must print the port actually bound"
        return match.group(1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self, chars: int = 4000) -> str:
        """The last `chars` characters the server wrote to stderr."""
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-chars:]

    def close_clients(self) -> None:
        """Hook: subclasses close their HTTP clients here before the process is stopped."""

    def stop(self) -> int:
        """SIGTERM, as a supervisor would; returns the exit code (-9 if it had to be killed)."""
        if self.returncode is not None:
            return self.returncode
        self.close_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.returncode = -9
        assert self.proc.stdout is not None
        self.extra_stdout = self.proc.stdout.read()
        self.proc.stdout.close()
        self._stderr.close()
        return self.returncode
