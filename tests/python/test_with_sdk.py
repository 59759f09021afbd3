"""The official SDK against the plugin's servers: uploads, fault rules from the fixture file
(pytest.ini), the SDK's retries, and what the journal shows."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from aymara_ai import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    AymaraAI,
    InternalServerError,
    PermissionDeniedError,
)

from aymara_mock import UPLOAD_PATH, AdminError, AymaraMock, AymaraMockError

FIXTURES = Path(__file__).parent / "fixtures"


def retry_counts(entries):
    return [e["headers"]["x-stainless-retry-count"] for e in entries]


def test_upload_is_stored_once_and_journaled(aymara_client, aymara_mock):
    data = b"%PDF-1.4\n" + os.urandom(4096)
    upload = aymara_client.files.upload(file=("report.pdf", data, "application/pdf"))

    assert upload.processing_status == "completed"
    stored = aymara_mock.assert_uploaded_once(data=data)
    assert stored["file_uuid"] == upload.file_uuid
    assert stored["size"] == len(data)
    assert Path(upload.local_file_path).read_bytes() == data
    assert Path(upload.local_file_path).is_relative_to(aymara_mock.storage_dir)
    assert httpx.get(upload.file_url).content == data
    (entry,) = aymara_mock.requests(UPLOAD_PATH)
    assert entry["status"] == 200
    assert entry["rule"] is None
    assert entry["headers"]["x-api-key"] == "[redacted]"
    assert entry["upload"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_the_session_server_is_reset_before_each_test(aymara_mock):
    """The test above uploaded a file to this same server; none of it is left."""
    assert aymara_mock.requests() == []
    assert aymara_mock.uploads() == []
    assert [r["id"] for r in aymara_mock.rules()] == [
        "flaky-twice", "cut-videos", "readonly-keys", "stored-but-500",
    ]
    assert all(r["fired"] == 0 and r["source"].endswith("scenarios.json")
               for r in aymara_mock.rules())
    assert aymara_mock.seed == 7  # aymara_mock_seed in pytest.ini


def test_aymara_client_points_at_the_session_server(aymara_client, aymara_mock):
    assert str(aymara_client.base_url).rstrip("/") == aymara_mock.url
    assert aymara_client.health.check() is None
    (entry,) = aymara_mock.requests()
    assert entry["path"] == "/health/"


def test_sdk_retries_two_503s_from_the_fixture_file(aymara_client, aymara_mock):
    upload = aymara_client.files.upload(file=("flaky-notes.txt", b"try again", "text/plain"))

    entries = aymara_mock.requests(UPLOAD_PATH)
    assert [e["status"] for e in entries] == [503, 503, 200]
    assert [e["rule"] for e in entries] == ["flaky-twice", "flaky-twice", None]
    assert retry_counts(entries) == ["0", "1", "2"]
    assert aymara_mock.assert_uploaded_once(data=b"try again")["file_uuid"] == upload.file_uuid
    assert aymara_mock.rule("flaky-twice")["fired"] == 2


def test_upload_cut_mid_stream_stores_nothing(aymara_client, aymara_mock):
    with pytest.raises(APIConnectionError):
        aymara_client.with_options(max_retries=0).files.upload(
            file=("clip.mp4", os.urandom(256 * 1024), "video/mp4"))

    # The server journals a dropped connection once it has closed it, which the client may
    # notice first: wait for the entry rather than sleep.
    (entry,) = aymara_mock.wait_for_requests(1, path=UPLOAD_PATH)
    assert entry["status"] is None
    assert entry["rule"] == "cut-videos"
    assert entry["fault"]
    assert aymara_mock.uploads() == []
    assert [p for p in aymara_mock.storage_dir.rglob("*") if p.is_file()] == []


def test_sdk_retries_a_cut_upload_and_it_arrives_whole(aymara_client, aymara_mock):
    aymara_mock.add_rule(id="cut-once", when={"times": 1},
                         fault={"kind": "reset", "after_bytes": 1024})
    data = os.urandom(512 * 1024)
    aymara_client.files.upload(file=("big.bin", data, "application/octet-stream"))

    entries = aymara_mock.wait_for_requests(2, path=UPLOAD_PATH)
    assert [e["status"] for e in entries] == [None, 200]
    assert retry_counts(entries) == ["0", "1"]
    aymara_mock.assert_uploaded_once(data=data)


def test_read_only_key_gets_403_without_retries(aymara_mock):
    client = AymaraAI(api_key="readonly-ci", base_url=aymara_mock.url)
    with pytest.raises(PermissionDeniedError) as info:
        client.files.upload(file=b"nope")
    assert info.value.body["error"]["code"] == "auth.insufficient_permissions"
    assert info.value.body["error"]["message"] == "this key is read-only"
    assert [e["status"] for e in aymara_mock.requests(UPLOAD_PATH)] == [403]
    assert aymara_mock.uploads() == []


def test_stored_but_500_then_a_retry_stores_the_file_twice(aymara_client, aymara_mock):
    """The SDK sends no idempotency key: the file is stored twice, which the helper reports."""
    data = b"stored twice"
    aymara_client.files.upload(file=("twice-1.bin", data, "application/octet-stream"))

    assert [e["status"] for e in aymara_mock.requests(UPLOAD_PATH)] == [500, 200]
    with pytest.raises(AssertionError, match="found 2"):
        aymara_mock.assert_uploaded_once(data=data)
    assert len(aymara_mock.uploads()) == 2
    aymara_mock.clear_uploads()
    assert aymara_mock.uploads() == []


def test_rule_added_at_run_time_goes_first_and_reset_removes_it(aymara_client, aymara_mock):
    rule_id = aymara_mock.add_rule(respond={"status": 503, "headers": {"x-should-retry": "false"}})
    assert aymara_mock.rules()[0]["id"] == rule_id
    assert aymara_mock.rules()[0]["source"] == "admin"
    with pytest.raises(InternalServerError):
        aymara_client.files.upload(file=("flaky-x.txt", b"x", "text/plain"))
    assert [e["rule"] for e in aymara_mock.requests()] == [rule_id]

    aymara_mock.reset()
    assert rule_id not in [r["id"] for r in aymara_mock.rules()]
    assert aymara_mock.requests() == []


def test_dedicated_server_with_its_own_options(aymara_mock_factory):
    server = aymara_mock_factory(api_keys=["the-key"], max_upload_size="1KiB",
                                 admin_token="s3cret", fixtures=FIXTURES / "outage.json")
    assert server.seed == 7  # the plugin's seed, unless given

    with pytest.raises(InternalServerError) as info:
        AymaraAI(api_key="the-key", base_url=server.url).files.upload(file=b"x")
    assert info.value.status_code == 503  # x-should-retry: false, so no retry

    # The admin API wants the token, which the server object sends.
    assert httpx.get(f"{server.url}/__admin/requests").status_code == 401
    assert [e["rule"] for e in server.requests(UPLOAD_PATH)] == ["outage"]
    assert server.rule("outage")["fired"] == 1
    server.remove_rule("outage")
    with pytest.raises(AdminError) as missing:
        server.remove_rule("outage")
    assert missing.value.status_code == 404

    with pytest.raises(AuthenticationError):
        AymaraAI(api_key="another-key", base_url=server.url).files.upload(file=b"x")
    with pytest.raises(APIStatusError) as too_big:
        AymaraAI(api_key="the-key", base_url=server.url).files.upload(file=b"x" * 1025)
    assert too_big.value.status_code == 413
    upload = AymaraAI(api_key="the-key", base_url=server.url).files.upload(file=b"x" * 1024)
    assert server.assert_uploaded_once(data=b"x" * 1024)["file_uuid"] == upload.file_uuid


def test_same_seed_replays_the_same_random_faults(aymara_mock_factory):
    def statuses(seed: int) -> list:
        server = aymara_mock_factory(seed=seed)
        server.add_rule(when={"probability": 0.5}, respond={"status": 503})
        client = AymaraAI(api_key="k", base_url=server.url, max_retries=0)
        for _ in range(16):
            try:
                client.files.upload(file=b"x")
            except InternalServerError:
                pass
        return [e["status"] for e in server.requests(UPLOAD_PATH)]

    first = statuses(1234)
    assert set(first) == {200, 503}
    assert statuses(1234) == first


def test_a_server_of_ones_own_stops_cleanly_and_removes_its_storage():
    with AymaraMock(no_auth=True) as server:
        client = AymaraAI(api_key="", base_url=server.url)
        upload = client.files.upload(file=("a.txt", b"a", "text/plain"))
        storage = server.storage_dir
        assert Path(upload.local_file_path).read_bytes() == b"a"
    assert server.returncode == 0  # SIGTERM, then exit 0
    assert server.extra_stdout == ""  # nothing on stdout beyond the ready line
    assert not storage.exists()


def test_a_bad_option_is_reported_with_the_servers_message():
    with pytest.raises(AymaraMockError) as info:
        AymaraMock(max_upload_size="lots").start()
    assert "exited with code 2" in str(info.value)
    assert "lots" in str(info.value)


def test_a_server_that_fails_to_start_leaves_no_temp_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where AymaraMock makes its temp dirs
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with pytest.raises(AymaraMockError, match="exited with code 2"):
        AymaraMock(fixtures=tmp_path / "missing.json").start()
    assert list(tmp_path.iterdir()) == []


def test_cors_origins_let_a_web_page_call_the_api(aymara_mock_factory):
    page = "http://localhost:5173"
    server = aymara_mock_factory(cors_origins=[page])
    asked = {
        "origin": page,
        "access-control-request-method": "POST",
        "access-control-request-headers": "x-api-key",
    }
    granted = httpx.options(f"{server.url}{UPLOAD_PATH}", headers=asked)
    assert granted.status_code == 204
    assert granted.headers["access-control-allow-origin"] == page
    assert granted.headers["access-control-allow-headers"] == "x-api-key"
    refused = httpx.options(f"{server.url}{UPLOAD_PATH}", headers={**asked, "origin": "http://localhost:3000"})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers

    preflights = server.requests(UPLOAD_PATH)
    assert [(e["status"], e["cors"]["allowed"]) for e in preflights] == [(204, True), (403, False)]
    assert preflights[0]["cors"]["preflight_method"] == "POST"
