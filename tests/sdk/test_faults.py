"""Network faults as the SDK surfaces them: a reset is APIConnectionError, a hang is
APITimeoutError; and the stored-but-500 case that shows why uploads need idempotency."""

from __future__ import annotations

import json
import os
import time

import pytest
from aymara_ai import APIConnectionError, APITimeoutError

from conftest import UPLOAD_PATH, header

BODY = os.urandom(512 * 1024)  # large enough that a cut after 1 KiB is mid-stream
UPLOAD = {"file": ("video.mp4", BODY, "video/mp4")}


def stored_files(server):
    """Regular files anywhere under the storage dir."""
    return [p for p in server.storage_dir.rglob("*") if p.is_file()]


def test_reset_mid_upload_is_api_connection_error(start_mock, sdk):
    server = start_mock([{"id": "cut", "fault": {"kind": "reset", "after_bytes": 1024}}])
    with pytest.raises(APIConnectionError) as info:
        sdk(server, max_retries=0).upload(**UPLOAD)
    assert type(info.value) is APIConnectionError  # not a timeout, not a status error

    (entry,) = server.wait_for_requests(1, path=UPLOAD_PATH)
    assert entry["status"] is None
    assert entry["rule"] == "cut"
    assert entry["fault"] and "reset" in json.dumps(entry["fault"])
    assert entry.get("upload") is None
    # A cut-off upload leaves nothing behind.
    assert server.uploads() == []
    assert stored_files(server) == []


def test_reset_before_any_answer_is_api_connection_error(start_mock, sdk):
    server = start_mock([{"id": "drop", "fault": {"kind": "reset"}}])
    with pytest.raises(APIConnectionError) as info:
        sdk(server, max_retries=0).upload(file=("a.txt", b"small", "text/plain"))
    assert type(info.value) is APIConnectionError
    assert server.uploads() == []


def test_reset_then_sdk_retry_succeeds(start_mock, sdk):
    """The SDK retries connection errors too; the retried upload arrives whole, once."""
    server = start_mock([{
        "id": "cut-once", "when": {"times": 1}, "fault": {"kind": "reset", "after_bytes": 1024},
    }])
    result = sdk(server).upload(**UPLOAD)
    with open(result.local_file_path, "rb") as f:
        assert f.read() == BODY

    entries = server.wait_for_requests(2, path=UPLOAD_PATH)
    assert [e["status"] for e in entries] == [None, 200]
    assert [header(e["headers"], "x-stainless-retry-count") for e in entries] == ["0", "1"]
    assert [u["file_uuid"] for u in server.uploads()] == [result.file_uuid]
    assert stored_files(server) != []


def test_truncated_answer_is_api_connection_error(start_mock, sdk):
    server = start_mock([{"id": "half", "fault": {"kind": "truncate"}}])
    with pytest.raises(APIConnectionError) as info:
        sdk(server, max_retries=0).upload(file=("a.txt", b"small", "text/plain"))
    assert type(info.value) is APIConnectionError


def test_hang_is_api_timeout_error(start_mock, sdk):
    """The server stops reading mid-upload and answers nothing; the client's 1 s timeout fires.

    for_ms bounds the hang: with a body larger than the kernel's socket buffer, the client's
    close cannot reach a server that reads nothing more, so an unbounded hang would last until
    the server's shutdown timeout (see test_hang_ends_when_the_client_gives_up for the
    unbounded form with a small body).
    """
    server = start_mock([{"id": "stuck", "fault": {"kind": "hang", "for_ms": 2000}}])
    result, elapsed = sdk(server, max_retries=0, timeout=1.0).timed_upload(**UPLOAD)
    assert type(result) is APITimeoutError, repr(result)
    assert 0.9 <= elapsed < 10.0
    assert server.uploads() == []


def test_hang_ends_when_the_client_gives_up(start_mock, sdk):
    """A hang without for_ms lasts until the client gives up, then the server closes.

    Once the SDK has timed out and closed its connection, the request is over: it shows in the
    journal with no status, and the server has nothing in flight to wait for when stopped.
    """
    server = start_mock([{"id": "stuck", "fault": {"kind": "hang"}}])
    result, _ = sdk(server, max_retries=0, timeout=1.0).timed_upload(
        file=("a.txt", b"small", "text/plain"))
    assert type(result) is APITimeoutError, repr(result)

    entries = server.wait_for_requests(1, path=UPLOAD_PATH, timeout=3.0)
    assert len(entries) == 1, "the abandoned request never reached the journal"
    assert entries[0]["status"] is None
    assert entries[0]["rule"] == "stuck"
    assert "hang" in json.dumps(entries[0]["fault"])

    t0 = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - t0 < 5.0, "SIGTERM waited for a request whose client was gone"


def test_hang_then_sdk_retry_succeeds(start_mock, sdk):
    """A hang bounded by for_ms: the SDK times out, retries on a new connection, and succeeds."""
    server = start_mock([{
        "id": "stuck-once", "when": {"times": 1}, "fault": {"kind": "hang", "for_ms": 3000},
    }])
    result, elapsed = sdk(server, timeout=1.0).timed_upload(**UPLOAD)
    assert not isinstance(result, Exception), repr(result)
    assert elapsed >= 0.9
    assert [u["file_uuid"] for u in server.uploads()] == [result.file_uuid]


def test_stored_but_500_then_sdk_retry_leaves_two_files(start_mock, sdk):
    """Why clients need idempotency.

    The server stores the file, then answers 500 (say, the database write after the S3 upload
    failed).  The SDK sees a 5xx and retries the same upload, which succeeds: the user gets one
    FileUpload back, yet two copies were stored, and the first one's file_uuid was never seen by
    the client.  A client that must not duplicate has to deduplicate (e.g. by content hash) or
    send an idempotency key the server honours; the SDK's retries alone cannot prevent this.
    """
    server = start_mock([{
        "id": "stored-500", "phase": "complete", "when": {"times": 1}, "keep_upload": True,
        "respond": {"status": 500},
    }])
    result = sdk(server).upload(**UPLOAD)

    entries = server.requests(UPLOAD_PATH)
    assert [e["status"] for e in entries] == [500, 200]
    assert [e["rule"] for e in entries] == ["stored-500", None]
    assert [header(e["headers"], "x-stainless-retry-count") for e in entries] == ["0", "1"]
    first, second = entries[0]["upload"], entries[1]["upload"]
    assert first is not None and second is not None
    assert second["file_uuid"] == result.file_uuid
    assert first["file_uuid"] != result.file_uuid
    assert first["sha256"] == second["sha256"]

    uploads = server.uploads()
    assert len(uploads) == 2
    assert {u["file_uuid"] for u in uploads} == {first["file_uuid"], second["file_uuid"]}
    assert len({u["sha256"] for u in uploads}) == 1
    for u in uploads:
        with open(u["local_file_path"], "rb") as f:
            assert f.read() == BODY
