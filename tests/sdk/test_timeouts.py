"""The SDK's timeout path, driven by waits relative to the read timeout the client announces
(`x-stainless-read-timeout`, sent by the SDK on every request), so that no test hard-codes the
SDK's default: the same rules fit a client set to 2 s or to 60 s."""

from __future__ import annotations

from pathlib import Path

import pytest
from aymara_ai import APITimeoutError
from aymara_mock import UPLOAD_PATH

from conftest import header

UPLOAD = {"file": ("doc.txt", b"in time?", "text/plain")}
TIMEOUT = 2.0  # the client's own setting; the rules below do not name it
SCENARIOS = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"


def test_a_hang_past_the_read_timeout_is_api_timeout_error(start_mock, sdk):
    server = start_mock([
        {"id": "past", "fault": {"kind": "hang", "for_ms": "read_timeout+500"}},
    ])
    result, elapsed = sdk(server, max_retries=0, timeout=TIMEOUT).timed_upload(**UPLOAD)
    assert type(result) is APITimeoutError, repr(result)
    assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + 5.0
    (entry,) = server.wait_for_requests(1, path=UPLOAD_PATH)
    assert header(entry["headers"], "x-stainless-read-timeout") == str(TIMEOUT)
    assert (entry["status"], entry["rule"], entry["fault"]) == (None, "past", "hang")
    assert server.uploads() == []


def test_a_delay_just_under_the_read_timeout_succeeds_just_in_time(start_mock, sdk):
    server = start_mock([
        {"id": "just-in-time", "delay_ms": "read_timeout-500", "pass": {}},
    ])
    result, elapsed = sdk(server, max_retries=0, timeout=TIMEOUT).timed_upload(**UPLOAD)
    assert not isinstance(result, Exception), repr(result)
    # The answer waited until 500 ms before the client's deadline, and made it.
    assert elapsed >= TIMEOUT - 0.5
    (entry,) = server.requests(UPLOAD_PATH)
    assert (entry["status"], entry["rule"]) == (200, "just-in-time")
    assert [u["file_uuid"] for u in server.uploads()] == [result.file_uuid]


@pytest.mark.parametrize("timeout", [1.0, 3.0])
def test_the_same_rule_follows_each_clients_timeout(start_mock, sdk, timeout):
    """One shipped scenario, two clients: each times out just past its own setting."""
    server = start_mock(fixtures=[SCENARIOS / "past-client-timeout.json"])
    result, elapsed = sdk(server, max_retries=0, timeout=timeout).timed_upload(**UPLOAD)
    assert type(result) is APITimeoutError, repr(result)
    assert timeout - 0.1 <= elapsed < timeout + 5.0
    (entry,) = server.wait_for_requests(1, path=UPLOAD_PATH)
    assert entry["rule"] == "past-client-timeout"

