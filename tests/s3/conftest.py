"""Fixtures for the S3 suite: a real S3-compatible server (moto in server mode), aymara-mock
started with `--storage s3://BUCKET/PREFIX --s3-endpoint ...`, and boto3 as an independent client
to look into the bucket.

Only public surfaces are used: the emulator's CLI (flags, its one stdout line, SIGTERM), HTTP and
admin API; moto's S3 API through boto3.  Each test gets its own bucket and its own emulator(s) on
port 0; one moto serves the whole session, and a test that needs to stop the store starts its own.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import boto3
import httpx
import pytest
from botocore.config import Config
from sidecar import Sidecar, child_env, mock_bin

UPLOAD_PATH = "/v2/files/-/uploads"
API_KEY = "test-key"
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


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without settings that would change the emulator or its S3
    client (AYMARA_MOCK_*, AWS_*, proxies), plus `extra`."""
    return child_env(("AWS_",), _PROXY_VARS, extra)


# -- moto ------------------------------------------------------------------------------------


class Moto:
    """A moto server (S3 in memory) in its own process on 127.0.0.1, stoppable and restartable
    on the same port."""

    def __init__(self, log_dir: Path, name: str = "moto") -> None:
        self.log_path = log_dir / f"{name}.log"
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = open(self.log_path, "ab")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> None:
        """Starts moto on `port` (a free one when None) and waits until it answers HTTP."""
        assert self.proc is None, "already running"
        attempts = 5  # a free port may be taken before moto binds it; a fixed one retried
        for _ in range(attempts):
            self.port = port if port is not None else free_port()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=_child_env(),
            )
            if self._wait_ready(timeout=30.0):
                return
            self._kill()
        pytest.fail(
            f"moto did not start on 127.0.0.1:{self.port} ({attempts} attempt(s)); "
            f"log:\n{self.log()}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    return False  # e.g. the port was taken meanwhile
                try:
                    client.get(f"{self.endpoint}/moto-api/")
                    return True
                except httpx.TransportError:
                    time.sleep(0.05)
        return False

    def stop(self) -> None:
        """SIGTERM, then waits until the process is gone and the port refuses connections."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return False
            except OSError:
                return True

        poll(refused, timeout=10, what=f"port {self.port} to close after moto stopped")

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


def unique_bucket() -> str:
    return f"aymara-test-{uuid.uuid4().hex[:16]}"


def empty_bucket(s3: Any, bucket: str) -> None:
    """Best effort: abort multipart uploads, delete every object and the bucket (frees moto's
    memory between tests)."""
    try:
        for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


@pytest.fixture
def s3(moto: Moto) -> Any:
    """boto3 S3 client on the session moto."""
    return moto.client()


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A fresh bucket on the session moto, emptied and deleted afterwards."""
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    yield name
    empty_bucket(s3, name)


# -- the emulator ----------------------------------------------------------------------------


class Emulator(Sidecar):
    """One aymara-mock process storing in s3://bucket/prefix."""

    def __init__(self, argv: list[str], stderr_path: Path, bucket: str, prefix: str) -> None:
        super().__init__(argv, stderr_path, _child_env(AWS_ENV))
        self.bucket = bucket
        self.prefix = prefix
        self.http = httpx.Client(base_url=self.url, timeout=60.0, trust_env=False)

    def close_clients(self) -> None:
        self.http.close()

    def vm_hwm_kib(self) -> int:
        """Peak resident set size of the process (VmHWM), in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.M)
        assert match, status
        return int(match.group(1))

    # -- API ----------------------------------------------------------------------------------

    def upload(
        self,
        data: bytes,
        filename: str = "file.bin",
        content_type: str = "application/octet-stream",
        workspace: str | None = None,
    ) -> httpx.Response:
        params = {"workspace_uuid": workspace} if workspace is not None else None
        return self.http.post(
            UPLOAD_PATH,
            params=params,
            headers={"x-api-key": API_KEY},
            files={"file": (filename, data, content_type)},
        )

    def uploads(self) -> list[dict[str, Any]]:
        r = self.http.get("/__admin/uploads")
        assert r.status_code == 200, r.text
        return r.json()["uploads"]

    def journal(self) -> list[dict[str, Any]]:
        r = self.http.get("/__admin/requests")
        assert r.status_code == 200, r.text
        return [e for e in r.json()["requests"] if e["path"] == UPLOAD_PATH]

    def add_rules(self, rules: list[dict[str, Any]]) -> list[str]:
        r = self.http.post("/__admin/rules", json={"rules": rules})
        assert r.status_code == 201, r.text
        return r.json()["ids"]


@pytest.fixture
def start_emulator(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """Factory: start_emulator(endpoint, bucket, prefix="aymara", args=[...]).

    Every emulator started is stopped with SIGTERM at teardown and must exit 0 having printed
    nothing to stdout beyond its ready line.
    """
    emulators: list[Emulator] = []
    counter = iter(range(1_000_000))

    def start(
        endpoint: str, bucket: str, prefix: str = "aymara", *, args: Iterable[str] = ()
    ) -> Emulator:
        n = next(counter)
        storage = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        argv = [str(mock_bin("tests/s3/run.sh")), "--port", "0", "--storage", storage, "--s3-endpoint", endpoint]
        argv += list(args)
        emulator = Emulator(argv, tmp_path / f"emulator-{n}.stderr", bucket, prefix)
        emulators.append(emulator)
        return emulator

    yield start

    problems = []
    for emulator in emulators:
        if emulator.returncode is not None:
            continue  # stopped by the test, which checked what it wanted
        was_alive = emulator.alive()
        rc = emulator.stop()
        if not was_alive:
            problems.append(f"{emulator.url} had exited ({rc}) before teardown; stderr:\n{emulator.stderr()}")
        elif rc != 0:
            problems.append(f"{emulator.url}: exit code {rc} after SIGTERM; stderr:\n{emulator.stderr()}")
        elif emulator.extra_stdout:
            problems.append(f"{emulator.url}: stdout beyond the ready line: {emulator.extra_stdout!r}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
