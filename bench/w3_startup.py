#!/usr/bin/env python3
"""W3: exec to first answer.

For each run: pick a free loopback port, spawn the server on it, and poll
GET /health over a raw socket (every ~0.2 ms) until it answers 200. The time
from just before spawning to that first 200 is the run's figure. Prints one
line per run and a final machine-readable line:

    BENCH runs=5 median_ms=... min_ms=... max_ms=... all_ms=a,b,c,d,e

Usage: w3_startup.py BIN STORAGE_BASE RUNS [extra server args...]
Only standard-library Python; talks to 127.0.0.1 only.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
POLL_INTERVAL_S = 0.0002
DEADLINE_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(REQUEST)
            head = s.recv(16)
            return head.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def one_run(binary: str, storage: str, extra: list[str]) -> float:
    shutil.rmtree(storage, ignore_errors=True)
    port = free_port()
    argv = [binary, "--port", str(port), "--storage-dir", storage, *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if health_ok(port):
                elapsed = time.perf_counter() - t0
                break
            if proc.poll() is not None:
                raise SystemExit(f"w3: server exited with {proc.returncode} before answering")
            if time.perf_counter() - t0 > DEADLINE_S:
                raise SystemExit(f"w3: no answer from /health within {DEADLINE_S} s")
            time.sleep(POLL_INTERVAL_S)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(storage, ignore_errors=True)
    return elapsed * 1000.0


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    binary, base, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    extra = sys.argv[4:]
    os.makedirs(base, exist_ok=True)
    times = []
    for i in range(runs):
        ms = one_run(binary, os.path.join(base, f"w3-{i}"), extra)
        times.append(ms)
        print(f"w3 run {i + 1}/{runs}: {ms:.2f} ms", flush=True)
    print(
        "BENCH runs=%d median_ms=%.2f min_ms=%.2f max_ms=%.2f all_ms=%s"
        % (
            runs,
            statistics.median(times),
            min(times),
            max(times),
            ",".join(f"{t:.2f}" for t in times),
        )
    )


if __name__ == "__main__":
    main()
