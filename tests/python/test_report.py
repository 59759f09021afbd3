"""What a failing test shows: the journal section (error codes, near misses with expected and
actual, duplicates), assertion helpers that point at the test's own line, and no credential
anywhere — not in the report, not in a start error."""

from __future__ import annotations

import pytest

from aymara_mock import AymaraMock, AymaraMockError, format_journal

WHY_TEST = """
import httpx

def test_uploads_twice(aymara_mock):
    aymara_mock.add_rule(id="videos-only", match={"filename": "*.mp4"}, respond={"status": 413})
    aymara_mock.add_rule(id="limited-key", match={"query": {"api_key": "limited-*"}},
                         respond={"status": 429, "code": "quota.custom"})
    aymara_mock.add_rule(id="stored-but-500", phase="complete", keep_upload=True,
                         when={"times": 1}, respond={"status": 500})
    secret = "SEK" + "RET"   # never whole in this file, so only the report could show it
    query = {"api_key": secret + "1", "access_token": secret + "2", "password": secret + "3",
             "token": secret + "4", "X-Amz-Signature": secret + "5", "workspace_uuid": "ws-1"}
    for _ in range(2):
        httpx.post(aymara_mock.url + "/v2/files/-/uploads", params=query,
                   headers={"x-api-key": secret + "6", "x-auth-token": secret + "7"},
                   files={"file": ("clip.mov", b"same bytes", "video/quicktime")})
    httpx.post(aymara_mock.url + "/v2/files/-/uploads", headers={"x-api-key": "k"},
               files={"file": ("big.mp4", b"video", "video/mp4")})   # refused: videos-only
    aymara_mock.assert_uploaded_once(data=b"same bytes")
"""


def test_report_shows_codes_near_misses_and_duplicates_and_hides_credentials(pytester):
    pytester.makepyfile(test_why=WHY_TEST)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        # The helper's frame is hidden: the failure points at the test's own line...
        ">*aymara_mock.assert_uploaded_once(data=b\"same bytes\")",
        # ...and says what was expected and what the journal shows.
        "E*AssertionError: expected exactly one stored upload with sha256 *, found 2",
        "E*stored uploads:",
        "E*the journal:",
        "*- aymara-mock journal (http://127.0.0.1:*, seed *) -*",
        "  1. POST /v2/files/-/uploads?api_key=?redacted?&access_token=?redacted?"
        "&password=?redacted?&token=?redacted?&X-Amz-Signature=?redacted?&workspace_uuid=ws-1"
        " -> 500 server.internal_error  rule=stored-but-500  stored clip.mov (10 B, *",
        "  2. POST /v2/files/-/uploads?* -> 200  stored clip.mov (10 B, video/quicktime, sha256 *)"
        " duplicate_of=* (stored by #1)",
        # Why no rule decided the second upload: each near miss, expected and actual.
        '       near miss stored-but-500: when.times: expected 1, actual 1',
        # A credential in the query is masked by the server, as one in a header is.
        '       near miss limited-key: match.query.api_key: expected "limited-*",'
        ' actual "SE…(7 chars)" (a credential, masked; the first 0 characters agree)',
        '       near miss videos-only: match.filename: expected "*.mp4", actual "clip.mov"',
        # A refused upload: which file it was, though nothing was stored.
        "  3. POST /v2/files/-/uploads -> 413 validation.invalid_request  rule=videos-only"
        "  not stored: big.mp4 (video/mp4, * B received, *)",
    ])
    assert "_admin.py" not in out  # no traceback into the package
    assert "SEKRET" not in out
    assert "workspace_uuid=ws-1" in out


def test_format_journal_redacts_credentials_of_any_journal():
    """Servers of older versions journaled query strings and some near misses as sent."""
    entry = {
        "id": "r1", "method": "GET", "path": "/v2/files", "status": 401,
        "error_code": "auth.invalid_key",
        "query": {"access_token": "s1", "sig": "s2", "limit": "5"},
        "headers": {"cookie": "s3", "x-client-secret": "s4", "user-agent": "ua"},
        "near_misses": [{"rule": "r", "failed": [
            {"condition": "match.headers.x-api-key", "expected": "k-*", "actual": "s5"},
            {"condition": "match.query.limit", "expected": "9", "actual": "5"},
        ]}],
    }
    text = format_journal([entry])
    for secret in ("s1", "s2", "s3", "s4", "s5"):
        assert f'"{secret}"' not in text and f"={secret}" not in text and f" {secret}" not in text
    assert "?access_token=[redacted]&sig=[redacted]&limit=5 -> 401 auth.invalid_key" in text
    assert 'match.query.limit: expected "9", actual "5"' in text
    assert "user-agent: ua" in text


def test_format_journal_shows_a_credential_the_server_masked():
    """A server that masks credentials in near misses says how much of the value agrees."""
    failed = {"condition": "match.headers.x-api-key", "expected": "limited-*",
              "actual": "li…(12 chars)", "message": "…",
              "credential": {"masked": "li…(12 chars)", "length": 12, "matching_prefix": 3}}
    entry = {"id": "r1", "method": "POST", "path": "/v2/files/-/uploads", "status": 200,
             "near_misses": [{"rule": "limited", "failed": [failed]}]}
    assert format_journal([entry]) == (
        "  1. POST /v2/files/-/uploads -> 200\n"
        '       near miss limited: match.headers.x-api-key: expected "limited-*", '
        'actual "li…(12 chars)" (a credential, masked; the first 3 characters agree)'
    )


def test_a_start_error_never_shows_credentials():
    with pytest.raises(AymaraMockError) as info:
        AymaraMock(
            api_keys=["key-SEKRET1"],
            bearer_tokens=["tok-SEKRET2"],
            admin_token="adm-SEKRET3",
            extra_args=["--presign-secret=SEKRET4"],
            max_upload_size="lots",
        ).start()
    message = str(info.value)
    assert "exited with code 2" in message and "lots" in message  # the reason is there
    assert "SEKRET" not in message
    assert "--api-key [redacted]" in message
    assert "--bearer-token [redacted]" in message
    assert "--admin-token [redacted]" in message
    assert "--presign-secret=[redacted]" in message


def test_wait_for_requests_fails_on_the_callers_line(pytester):
    pytester.makepyfile(
        test_wait="""
        def test_waits(aymara_mock):
            aymara_mock.wait_for_requests(1, timeout=0.2)
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        ">*aymara_mock.wait_for_requests(1, timeout=0.2)",
        "E*TimeoutError: expected 1 request(s) within 0.2s, the journal holds 0:",
    ])
    assert "_admin.py" not in result.stdout.str()


def test_a_start_error_scrubs_credentials_the_server_printed(tmp_path, monkeypatch):
    """Whatever the binary logs: a stand-in that echoes its command line and environment."""
    fake = tmp_path / "aymara-mock"
    fake.write_text('#!/bin/sh\necho "bad: $* $AYMARA_MOCK_API_KEYS" >&2\nexit 2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("AYMARA_MOCK_API_KEYS", "env-SEKRET1,env-SEKRET2")
    with pytest.raises(AymaraMockError) as info:
        AymaraMock(binary=fake, api_keys=["key-SEKRET3"], admin_token="adm-SEKRET4").start()
    message = str(info.value)
    assert "exited with code 2" in message and "bad: serve --host 127.0.0.1" in message
    assert "SEKRET" not in message
    assert "environment: AYMARA_MOCK_API_KEYS=[redacted]" in message
