"""Stops a server that :class:`~aymara_mock.AymaraMock` started, and removes its work dir, when
the Python process that started it dies without doing so itself (SIGKILL, SIGTERM — a CI
timeout —, a crash).

Run by ``AymaraMock.start`` as ``python -I _reaper.py PID WORKDIR``, in a session of its own (so
that a signal to pytest's process group does not reach it), with a pipe on stdin whose write end
only the starting process holds. That end is closed when the process ends, however it ends:
``stopped`` on the pipe first means it stopped the server and cleaned up itself; end of file
alone means it died, so this sends SIGTERM to the server (SIGKILL after ``GRACE`` seconds),
waits for it to exit, and removes the work dir (the server's temp storage and its log).

Why not ``prctl(PR_SET_PDEATHSIG)``: Linux only, and it fires when the *thread* that started the
server ends, not the process — a server started from a worker thread would die with the thread.
This works wherever there is a pipe and a signal, and also cleans the storage, which a signal to
the server alone would not (the storage dir is given to it, so it keeps it).

Standard library only, and no import of the package: ``-I`` starts it fast and isolated.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import time
from typing import Optional

#: Seconds between SIGTERM and SIGKILL; the server's own shutdown takes at most 10 s by default.
GRACE = 15.0
STOPPED = b"stopped"


def _open_pidfd(pid: int) -> Optional[int]:
    """A pidfd (Linux 5.3+) names this very process even if its pid is reused later."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        return int(pidfd_open(pid))
    except OSError:
        return None


def _alive(pid: int, pidfd: Optional[int]) -> bool:
    if pidfd is not None:
        # Readable once the process has exited (a zombie counts as exited).
        return not select.select([pidfd], [], [], 0)[0]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _signal(pid: int, pidfd: Optional[int], sig: int) -> None:
    try:
        if pidfd is not None:
            getattr(signal, "pidfd_send_signal")(pidfd, sig)
        else:
            os.kill(pid, sig)
    except OSError:
        pass  # already gone


def _wait_gone(pid: int, pidfd: Optional[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid, pidfd):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if pidfd is not None:
            select.select([pidfd], [], [], left)
        else:
            time.sleep(min(0.02, left))
    return True


def main(argv: list[str]) -> int:
    pid, workdir = int(argv[1]), argv[2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pidfd = _open_pidfd(pid)
    received = b""
    while True:
        try:
            chunk = os.read(0, 64)
        except InterruptedError:
            continue
        if not chunk:
            break
        received += chunk
    if received.startswith(STOPPED):
        return 0
    if _alive(pid, pidfd):
        _signal(pid, pidfd, signal.SIGTERM)
        if not _wait_gone(pid, pidfd, GRACE):
            _signal(pid, pidfd, signal.SIGKILL)
            _wait_gone(pid, pidfd, GRACE)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
