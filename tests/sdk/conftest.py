"""Shared fixtures: aymara-mock as a sidecar (the aymara_mock pytest plugin, from the package
source in python/), its admin API, and the SDK.

Only the public surface is used: the CLI (flags, the one stdout line, SIGTERM), HTTP, and the
admin API under /__admin.  `mock` is the plugin's session server, reset before each test;
`start_mock` starts a server of the test's own, on port 0 with its own storage dir.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import httpx
import pytest
from aymara_ai import AsyncAymaraAI, AymaraAI
from sidecar import mock_bin

from aymara_mock import UPLOAD_PATH, AymaraMock

# Loaded from the source (pytest.ini: pythonpath), not from an installed wheel.
pytest_plugins = ["aymara_mock.pytest_plugin"]

API_KEY = "test-key"


def write_fixture(directory: Path, rules: list[dict[str, Any]], name: str | None = None) -> Path:
    """Write a fixture file (`{"rules": [...]}`, as fixtures/schema.json describes) into
    `directory`; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    if name is None:
        name = f"fixture-{len(list(directory.glob('*.json')))}.json"
    path = directory / name
    path.write_text(json.dumps({"rules": rules}, indent=2))
    return path


@pytest.fixture
def start_mock(aymara_mock_factory, tmp_path: Path) -> Callable[..., AymaraMock]:
    """Factory: start_mock(rules=[...], fixtures=[paths], args=[...], storage=True).

    `rules` are written to a fixture file under tmp_path and passed with --fixtures; with
    `storage` the server stores under tmp_path (kept), else in a temp dir of its own. The
    plugin stops every server with SIGTERM after the test, which fails unless it exits 0
    having printed nothing to stdout beyond its ready line.
    """
    counter = iter(range(1_000_000))

    def start(
        rules: list[dict[str, Any]] | None = None,
        *,
        fixtures: Iterable[Path] = (),
        args: Iterable[str] = (),
        storage: bool = True,
    ) -> AymaraMock:
        n = next(counter)
        fixture_paths = list(fixtures)
        if rules is not None:
            fixture_paths.append(write_fixture(tmp_path / f"fixtures-{n}", rules))
        return aymara_mock_factory(
            binary=mock_bin("tests/sdk/run.sh"),
            fixtures=fixture_paths,
            extra_args=list(args),
            storage_dir=tmp_path / f"storage-{n}" if storage else False,
        )

    return start


@pytest.fixture
def mock(aymara_mock: AymaraMock) -> AymaraMock:
    """The session's server with default settings (any non-empty API key accepted, no rules),
    reset before this test."""
    return aymara_mock


# -- the SDK, sync and async ---------------------------------------------------------------


class Sdk:
    """Runs the same call through AymaraAI (sync) or AsyncAymaraAI (async).

    A fresh client is made for every call, as a short-lived script would; the async client is
    made and closed inside its own event loop.
    """

    def __init__(self, kind: str, server: AymaraMock | None = None, **client_kwargs: Any) -> None:
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
    [name, value] pairs; these helpers accept either.
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
