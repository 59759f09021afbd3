"""Shared fixtures: start aymara-mock as a sidecar, talk to its admin API, drive the SDK.

Only the public surface is used: the CLI (flags, the one stdout line, SIGTERM), HTTP, and the
admin API under /__admin.  Each test gets its own server on port 0 with its own storage dir.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import httpx
import pytest
from aymara_ai import AsyncAymaraAI, AymaraAI

REPO_ROOT = Path(__file__).resolve().parents[2]
UPLOAD_PATH = "/v2/files/-/uploads"
API_KEY = "test-key"
READY_LINE = re.compile(r"^aymara-mock listening on (http://127\.0\.0\.1:(\d+))$")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def mock_bin() -> Path:
    """The binary under test: $AYMARA_MOCK_BIN, else the release build in this repo."""
    env = os.environ.get("AYMARA_MOCK_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "release" / "aymara-mock"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"aymara-mock binary not found at {path}: run tests/sdk/run.sh, or "
            "`cargo build --release --bin aymara-mock`, or set AYMARA_MOCK_BIN",
            pytrace=False,
        )
    return path


def _clean_env() -> dict[str, str]:
    """The caller's environment without settings that would change the server or the SDK."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AYMARA_MOCK_") and not k.startswith("AYMARA_AI_")
    }


class MockServer:
    """One aymara-mock process, started the way a sidecar user starts it."""

    def __init__(self, argv: list[str], stderr_path: Path, storage_dir: Path | None) -> None:
        self.argv = argv
        self.storage_dir = storage_dir
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=_clean_env(),
            text=True,
        )
        self.url = self._read_ready_line()
        self.port = int(self.url.rsplit(":", 1)[1])
        self.admin = httpx.Client(base_url=self.url, timeout=10.0)
        self.returncode: int | None = None

    def _read_ready_line(self) -> str:
        assert self.proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"no ready line within {START_TIMEOUT_S}s; stderr:\n{self.stderr()}")
        match = READY_LINE.match(line.rstrip("\n"))
        if not match:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(
                f"expected 'aymara-mock listening on http://127.0.0.1:PORT' on stdout, got {line!r}"
                f" (exit {self.proc.returncode}); stderr:\n{self.stderr()}"
            )
        assert int(match.group(2)) != 0, "--port 0 must print the port actually bound"
        return match.group(1)

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-4000:]

    # -- admin API -------------------------------------------------------------------------

    def journal(self, path: str | None = UPLOAD_PATH) -> list[dict[str, Any]]:
        """GET /__admin/requests, oldest first; only requests to `path` unless path is None."""
        r = self.admin.get("/__admin/requests")
        assert r.status_code == 200, r.text
        entries = r.json()["requests"]
        return [e for e in entries if path is None or e["path"] == path]

    def wait_for_journal(self, count: int, path: str = UPLOAD_PATH, timeout: float = 5.0) -> list[dict]:
        """The journal once it holds `count` entries for `path`.

        Used only after network faults: the server finishes a journal entry when it drops the
        connection, which the client may notice first.  Bounded, and returns as soon as possible.
        """
        deadline = time.monotonic() + timeout
        while True:
            entries = self.journal(path)
            if len(entries) >= count or time.monotonic() > deadline:
                return entries
            time.sleep(0.02)

    def uploads(self) -> list[dict[str, Any]]:
        r = self.admin.get("/__admin/uploads")
        assert r.status_code == 200, r.text
        return r.json()["uploads"]

    def rules(self) -> list[dict[str, Any]]:
        r = self.admin.get("/__admin/rules")
        assert r.status_code == 200, r.text
        return r.json()["rules"]

    def add_rules(self, rules: list[dict[str, Any]]) -> list[str]:
        r = self.admin.post("/__admin/rules", json={"rules": rules})
        assert r.status_code == 201, r.text
        return r.json()["ids"]

    def reset(self) -> None:
        r = self.admin.post("/__admin/reset")
        assert r.status_code in (200, 204), r.text

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> int:
        """SIGTERM, as a supervisor would; returns the exit code. Checks nothing more was printed."""
        if self.returncode is not None:
            return self.returncode
        self.admin.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._stderr.close()
            pytest.fail(f"aymara-mock did not exit within {STOP_TIMEOUT_S}s of SIGTERM")
        assert self.proc.stdout is not None
        self.extra_stdout = self.proc.stdout.read()
        self.proc.stdout.close()
        self._stderr.close()
        return self.returncode


def write_fixture(directory: Path, rules: list[dict[str, Any]], name: str | None = None) -> Path:
    """Write a fixture file (SPEC §5 format) into `directory`; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    if name is None:
        name = f"fixture-{len(list(directory.glob('*.json')))}.json"
    path = directory / name
    path.write_text(json.dumps({"rules": rules}, indent=2))
    return path


@pytest.fixture
def start_mock(tmp_path: Path) -> Iterator[Callable[..., MockServer]]:
    """Factory: start_mock(rules=[...], fixtures=[paths], args=[...], storage=True).

    `rules` are written to a fixture file under tmp_path and passed with --fixtures.
    Every server started is stopped with SIGTERM at teardown and must exit 0 having printed
    nothing to stdout beyond its ready line.
    """
    servers: list[MockServer] = []
    counter = iter(range(1_000_000))

    def start(
        rules: list[dict[str, Any]] | None = None,
        *,
        fixtures: Iterable[Path] = (),
        args: Iterable[str] = (),
        storage: bool = True,
    ) -> MockServer:
        n = next(counter)
        argv = [str(mock_bin()), "--port", "0"]
        storage_dir = None
        if storage:
            storage_dir = tmp_path / f"storage-{n}"
            storage_dir.mkdir()
            argv += ["--storage-dir", str(storage_dir)]
        fixture_paths = list(fixtures)
        if rules is not None:
            fixture_paths.append(write_fixture(tmp_path / f"fixtures-{n}", rules))
        for p in fixture_paths:
            argv += ["--fixtures", str(p)]
        argv += list(args)
        server = MockServer(argv, tmp_path / f"server-{n}.stderr", storage_dir)
        servers.append(server)
        return server

    yield start

    problems = []
    for server in servers:
        was_stopped = server.returncode is not None
        rc = server.stop()
        if was_stopped:
            continue
        if rc != 0:
            problems.append(f"exit code {rc} after SIGTERM; stderr:\n{server.stderr()}")
        elif server.extra_stdout:
            problems.append(f"stdout beyond the ready line: {server.extra_stdout!r}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def mock(start_mock: Callable[..., MockServer]) -> MockServer:
    """A server with default settings (any non-empty API key accepted, no rules)."""
    return start_mock()


# -- the SDK, sync and async ---------------------------------------------------------------


class Sdk:
    """Runs the same call through AymaraAI (sync) or AsyncAymaraAI (async).

    A fresh client is made for every call, as a short-lived script would; the async client is
    made and closed inside its own event loop.
    """

    def __init__(self, kind: str, server: MockServer | None = None, **client_kwargs: Any) -> None:
        self.kind = kind
        self.kwargs: dict[str, Any] = {"api_key": API_KEY}
        if server is not None:
            self.kwargs["base_url"] = server.url
        self.kwargs.update(client_kwargs)

    def run(self, sync_fn: Callable[[AymaraAI], Any], async_fn: Callable[[AsyncAymaraAI], Any]) -> Any:
        if self.kind == "sync":
            with AymaraAI(**self.kwargs) as client:
                return sync_fn(client)

        async def main() -> Any:
            async with AsyncAymaraAI(**self.kwargs) as client:
                return await async_fn(client)

        return asyncio.run(main())

    def upload(self, **kw: Any) -> Any:
        """client.files.upload(**kw) -> FileUpload."""
        return self.run(lambda c: c.files.upload(**kw), lambda c: c.files.upload(**kw))

    def raw_upload(self, **kw: Any) -> tuple[Any, httpx.Response]:
        """client.files.with_raw_response.upload(**kw) -> (FileUpload, httpx.Response)."""

        def sync_fn(c: AymaraAI) -> Any:
            r = c.files.with_raw_response.upload(**kw)
            return r.parse(), r.http_response

        async def async_fn(c: AsyncAymaraAI) -> Any:
            r = await c.files.with_raw_response.upload(**kw)
            return await r.parse(), r.http_response

        return self.run(sync_fn, async_fn)

    def health(self, **kw: Any) -> Any:
        """client.health.check(**kw)."""
        return self.run(lambda c: c.health.check(**kw), lambda c: c.health.check(**kw))

    def timed_upload(self, **kw: Any) -> tuple[Any, float]:
        """(result or raised exception, seconds elapsed)."""
        t0 = time.monotonic()
        try:
            result: Any = self.upload(**kw)
        except Exception as exc:  # returned, so tests can assert on its type and timing
            result = exc
        return result, time.monotonic() - t0


@pytest.fixture(params=["sync", "async"])
def sdk(request: pytest.FixtureRequest) -> Callable[..., Sdk]:
    """sdk(server, **client_kwargs) -> Sdk, once with the sync client and once with the async one."""
    return functools.partial(Sdk, request.param)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- helpers for assertions ----------------------------------------------------------------


def header(headers: Any, name: str) -> str | None:
    """A request header from a journal entry, by case-insensitive name.

    The journal's `headers` may be an object (name -> value or list of values) or a list of
    [name, value] pairs; the SPEC does not fix which.
    """
    name = name.lower()
    if isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = [tuple(p) for p in headers]
    values = []
    for k, v in items:
        if k.lower() == name:
            values.extend(v if isinstance(v, list) else [v])
    if not values:
        return None
    return ", ".join(values)
