""""Why did my test fail?" through the official SDK: the journal groups the SDK's retries into one
call, marks a stored upload that repeats an earlier one with `duplicate_of`, and explains a rule
that did not fire with near misses."""

from __future__ import annotations

from pathlib import Path

from conftest import UPLOAD_PATH, header

ROOT = Path(__file__).resolve().parents[2]
STORED_BUT_500 = ROOT / "fixtures" / "scenarios" / "stored-but-500.json"
CONTENT = b"stored twice by the retry"


def test_stored_but_500_then_the_sdk_retry_is_one_call_and_a_duplicate(start_mock, sdk):
    server = start_mock(fixtures=[STORED_BUT_500])
    result = sdk(server).upload(file=("report.txt", CONTENT, "text/plain"))

    first, retry = server.requests(UPLOAD_PATH)
    assert [first["status"], retry["status"]] == [500, 200]
    assert [header(e["headers"], "x-stainless-retry-count") for e in (first, retry)] == ["0", "1"]
    # One logical call, two attempts.
    assert first["call"] == first["id"] and retry["call"] == first["id"]
    assert [first["attempt"], retry["attempt"]] == [1, 2]
    assert [first["retry_count"], retry["retry_count"]] == [0, 1]

    # Both attempts stored the file; the second says which one it repeats.
    original, duplicate = server.uploads()
    assert original["sha256"] == duplicate["sha256"]
    assert original["duplicate_of"] is None
    assert duplicate["duplicate_of"] == original["file_uuid"]
    assert duplicate["file_uuid"] == result.file_uuid
    assert retry["upload"]["duplicate_of"] == original["file_uuid"]
    # The retry was not decided by the used-up rule, and the journal says why.
    assert retry["rule"] is None
    (miss,) = retry["near_misses"]
    assert miss["rule"] == "stored-but-500"
    assert [(f["condition"], f["expected"], f["actual"]) for f in miss["failed"]] == [("when.times", 1, 1)]


def test_a_rule_that_did_not_fire_is_a_near_miss(start_mock, sdk):
    server = start_mock([{
        "id": "videos", "phase": "upload", "match": {"filename": "*.mp4", "content_type": "video/*"},
        "respond": {"status": 413},
    }])
    sdk(server).upload(file=("clip.mov", b"moov", "video/quicktime"))
    (entry,) = server.requests(UPLOAD_PATH)
    assert entry["rule"] is None
    (miss,) = entry["near_misses"]
    assert miss["rule"] == "videos"
    assert [(f["condition"], f["expected"], f["actual"]) for f in miss["failed"]] == [
        ("match.filename", "*.mp4", "clip.mov")
    ]
