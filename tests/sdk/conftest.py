"""Shared fixtures: start aymara-mock as a sidecar, talk to its admin API, drive the SDK.

Only the public surface is used: the CLI (flags, the one stdout line, SIGTERM), HTTP, and the
admin API under /__admin.  Each test gets its own server on port 0 with its own storage dir.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import httpx
import pytest
from aymara_ai import AsyncAymaraAI, AymaraAI
from sidecar import Sidecar, child_env, mock_bin

UPLOAD_PATH = "/v2/files/-/uploads"
API_KEY = "test-key"


class MockServer(Sidecar):
    """One aymara-mock process, started the way a sidecar user starts it."""

    def __init__(self, argv: list[str], stderr_path: Path, storage_dir: Path | None) -> None:
        super().__init__(argv, stderr_path, child_env())
        self.storage_dir = storage_dir
        self.admin = httpx.Client(base_url=self.url, timeout=10.0)

    def close_clients(self) -> None:
        self.admin.close()

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
        argv = [str(mock_bin("tests/sdk/run.sh")), "--port", "0"]
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
