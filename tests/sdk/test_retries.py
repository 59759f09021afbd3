"""The SDK's own retry logic against emulated failures: what a user relies on when the real API
is briefly unavailable or rate-limits them.

The SDK (Stainless) retries 408, 409, 429 and >= 500, and connection errors, DEFAULT_MAX_RETRIES
(2) times; it waits `retry-after-ms` (milliseconds) or else `retry-after` (seconds) when the value
is in (0, 60], else 0.5 s * 2^n with jitter; `x-should-retry: true|false` overrides the decision;
every attempt carries `x-stainless-retry-count`.
"""

from __future__ import annotations

import pytest
from aymara_ai import DEFAULT_MAX_RETRIES, InternalServerError, RateLimitError

from conftest import UPLOAD_PATH, header

UPLOAD = {"file": ("doc.txt", b"retry me", "text/plain")}


def retry_counts(entries):
    return [header(e["headers"], "x-stainless-retry-count") for e in entries]


def test_sdk_default_max_retries_is_two():
    """The scenarios below assume the pinned SDK's default."""
    assert DEFAULT_MAX_RETRIES == 2


def test_503_503_200_succeeds_with_default_retries(start_mock, sdk):
    server = start_mock([{"id": "flaky", "when": {"times": 2}, "respond": {"status": 503}}])
    result = sdk(server).upload(**UPLOAD)  # default max_retries, default backoff

    entries = server.requests(UPLOAD_PATH)
    assert [e["status"] for e in entries] == [503, 503, 200]
    assert [e["rule"] for e in entries] == ["flaky", "flaky", None]
    # The journal shows the SDK's retry counter on each attempt.
    assert retry_counts(entries) == ["0", "1", "2"]
    assert len({e["id"] for e in entries}) == 3
    assert entries[2]["upload"]["file_uuid"] == result.file_uuid
    # Only the successful attempt stored a file.
    assert [u["file_uuid"] for u in server.uploads()] == [result.file_uuid]
    (rule,) = [r for r in server.rules() if r["id"] == "flaky"]
    assert rule["fired"] == 2


def test_three_503s_exhaust_default_retries(start_mock, sdk):
    server = start_mock([{
        "id": "down", "respond": {"status": 503, "headers": {"retry-after-ms": "1"}},
    }])
    with pytest.raises(InternalServerError) as info:
        sdk(server).upload(**UPLOAD)
    assert info.value.status_code == 503
    assert info.value.body["error"]["code"] == "server.unavailable"
    entries = server.requests(UPLOAD_PATH)
    assert [e["status"] for e in entries] == [503] * (DEFAULT_MAX_RETRIES + 1)
    assert retry_counts(entries) == ["0", "1", "2"]
    assert server.uploads() == []


def test_client_max_retries_option(start_mock, sdk):
    server = start_mock([{
        "id": "flaky", "when": {"times": 4},
        "respond": {"status": 500, "headers": {"retry-after-ms": "1"}},
    }])
    assert sdk(server, max_retries=4).upload(**UPLOAD).file_uuid
    assert retry_counts(server.requests(UPLOAD_PATH)) == ["0", "1", "2", "3", "4"]


def test_retry_after_seconds_is_honoured(start_mock, sdk):
    """429 with `retry-after: 1`: the SDK waits at least 1 s (its own first backoff is <= 0.5 s)."""
    server = start_mock([{
        "id": "slow-down", "when": {"times": 1},
        "respond": {"status": 429, "headers": {"retry-after": "1"}},
    }])
    result, elapsed = sdk(server).timed_upload(**UPLOAD)
    assert not isinstance(result, Exception), result
    assert elapsed >= 1.0
    assert elapsed < 5.0
    entries = server.requests(UPLOAD_PATH)
    assert [e["status"] for e in entries] == [429, 200]
    assert retry_counts(entries) == ["0", "1"]


def test_retry_after_ms_is_honoured(start_mock, sdk):
    """503 with `retry-after-ms: 700`: read as milliseconds, so the SDK waits >= 0.7 s."""
    server = start_mock([{
        "id": "busy", "when": {"times": 1},
        "respond": {"status": 503, "headers": {"retry-after-ms": "700"}},
    }])
    result, elapsed = sdk(server).timed_upload(**UPLOAD)
    assert not isinstance(result, Exception), result
    assert elapsed >= 0.7
    assert elapsed < 5.0
    assert [e["status"] for e in server.requests(UPLOAD_PATH)] == [503, 200]


def test_retry_after_header_reaches_the_client(start_mock, sdk):
    """With retries off, the rule's headers are visible on the exception's response."""
    server = start_mock([{
        "id": "limited",
        "respond": {"status": 429, "headers": {"retry-after": "7", "x-ratelimit-remaining": "0"}},
    }])
    with pytest.raises(RateLimitError) as info:
        sdk(server, max_retries=0).upload(**UPLOAD)
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.response.headers["x-ratelimit-remaining"] == "0"


def test_x_should_retry_false_stops_retries(start_mock, sdk):
    server = start_mock([{
        "id": "final", "respond": {"status": 503, "headers": {"x-should-retry": "false"}},
    }])
    with pytest.raises(InternalServerError) as info:
        sdk(server).upload(**UPLOAD)  # default max_retries: would otherwise try 3 times
    assert info.value.status_code == 503
    entries = server.requests(UPLOAD_PATH)
    assert len(entries) == 1
    assert retry_counts(entries) == ["0"]


def test_x_should_retry_true_retries_a_400(start_mock, sdk):
    server = start_mock([{
        "id": "try-again", "when": {"times": 1},
        "respond": {"status": 400, "headers": {"x-should-retry": "true", "retry-after-ms": "1"}},
    }])
    assert sdk(server).upload(**UPLOAD).file_uuid
    assert [e["status"] for e in server.requests(UPLOAD_PATH)] == [400, 200]


def test_rate_limit_burst_after_two(start_mock, sdk):
    """`when.after`: the first two uploads pass, the third is limited once, then it recovers."""
    server = start_mock([{
        "id": "third-limited", "when": {"after": 2, "times": 1},
        "respond": {"status": 429, "headers": {"retry-after-ms": "1"}},
    }])
    client = sdk(server)
    for _ in range(3):
        assert client.upload(**UPLOAD).file_uuid
    entries = server.requests(UPLOAD_PATH)
    assert [e["status"] for e in entries] == [200, 200, 429, 200]
    assert retry_counts(entries) == ["0", "0", "0", "1"]
    assert len(server.uploads()) == 3
