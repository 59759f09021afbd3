"""Fixtures for the S3 suite: a real S3-compatible server (moto in server mode), aymara-mock
started with `--storage s3://BUCKET/PREFIX --s3-endpoint ...`, and boto3 as an independent client
to look into the bucket.

Only public surfaces are used: the emulator's CLI (flags, its one stdout line, SIGTERM), HTTP and
admin API; moto's S3 API through boto3.  Each test gets its own bucket and its own emulator(s) on
port 0; one moto serves the whole session, and a test that needs to stop the store starts its own.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import boto3
import httpx
import pytest
from s3server import AWS_ENV, Moto, empty_bucket, free_port, moto, own_moto, poll
from s3server import aws_child_env as _child_env
from sidecar import Sidecar, mock_bin

UPLOAD_PATH = "/v2/files/-/uploads"
API_KEY = "test-key"


def unique_bucket() -> str:
    return f"aymara-test-{uuid.uuid4().hex[:16]}"


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
