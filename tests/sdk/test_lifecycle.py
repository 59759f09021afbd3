"""health.check(), pointing the SDK at the emulator, and the sidecar's life cycle."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from aymara_ai import AsyncAymaraAI, AymaraAI

from conftest import UPLOAD_PATH, header


def test_health_check(mock, sdk):
    assert sdk(mock).health() is None  # the SDK's check() returns None on 200
    (entry,) = mock.requests()
    assert entry["path"] == "/health/"  # the SDK's path has the trailing slash
    assert entry["status"] == 200


def test_health_check_needs_no_valid_credentials(start_mock, sdk):
    server = start_mock(args=["--api-key", "only-this-key"])
    assert sdk(server, api_key="not-the-key").health() is None


def test_health_body(mock):
    for path in ("/health", "/health/"):
        r = httpx.get(mock.url + path, timeout=10)
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}
        assert r.headers.get("x-request-id")


def test_base_url_from_environment(mock, sdk, monkeypatch):
    """AYMARA_AI_BASE_URL and AYMARA_AI_API_KEY are enough to point the SDK at the emulator."""
    monkeypatch.setenv("AYMARA_AI_BASE_URL", mock.url)
    monkeypatch.setenv("AYMARA_AI_API_KEY", "env-key")
    client = sdk(None)
    client.kwargs.pop("api_key")
    assert client.upload(file=("env.txt", b"from env", "text/plain")).file_uuid
    (entry,) = mock.requests(UPLOAD_PATH)
    assert entry["status"] == 200


def test_bearer_token_accepted(start_mock, sdk):
    """--bearer-token: the SDK's bearer_token sends `Authorization: Bearer`, which is enough."""
    server = start_mock(args=["--bearer-token", "tok-123"])
    result = sdk(server, api_key="unlisted", bearer_token="tok-123").upload(file=b"x")
    assert result.file_uuid
    (entry,) = server.requests(UPLOAD_PATH)
    assert header(entry["headers"], "authorization") == "[redacted]"


def test_development_environment_is_localhost_8000():
    """The SDK's `development` environment is http://localhost:8000, our default address."""
    with AymaraAI(api_key="k", environment="development") as c:
        assert str(c.base_url).rstrip("/") == "http://localhost:8000"
    assert AsyncAymaraAI(api_key="k", environment="development").base_url == c.base_url


def test_default_storage_is_a_temp_dir_removed_on_exit(start_mock, sdk):
    """Without --storage-dir the files live in a fresh temp dir, gone after SIGTERM (exit 0)."""
    server = start_mock(storage=False)
    result = sdk(server).upload(file=("t.txt", b"temporary", "text/plain"))
    local = Path(result.local_file_path)
    assert local.read_bytes() == b"temporary"
    assert server.stop() == 0
    assert server.extra_stdout == ""
    assert not local.exists()
    assert not local.parent.exists()


def test_storage_dir_is_kept_after_exit(start_mock, sdk):
    server = start_mock()
    result = sdk(server).upload(file=("keep.txt", b"kept", "text/plain"))
    assert server.stop() == 0
    assert Path(result.local_file_path).read_bytes() == b"kept"
