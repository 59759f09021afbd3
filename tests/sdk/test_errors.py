"""Every documented status, forced by a fixture rule and by `Prefer: code=`, raises the SDK's
matching exception class with the API's error envelope (`error.code`, `error.message`,
`request_id`) in `.body`."""

from __future__ import annotations

import json

import pytest
from aymara_ai import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)

from conftest import UPLOAD_PATH

# status -> (exception class the SDK raises, default error code of the real API)
DOCUMENTED = {
    400: (BadRequestError, "validation.invalid_request"),
    401: (AuthenticationError, "auth.invalid_key"),
    403: (PermissionDeniedError, "auth.insufficient_permissions"),
    404: (NotFoundError, "resource.not_found"),
    409: (ConflictError, "resource.conflict"),
    422: (UnprocessableEntityError, "validation.invalid_format"),
    429: (RateLimitError, "quota.limit_exceeded"),
    500: (InternalServerError, "server.internal_error"),
    # The SDK has no class of its own for 503: every status >= 500 is InternalServerError.
    503: (InternalServerError, "server.unavailable"),
}

UPLOAD = {"file": ("doc.txt", b"some text", "text/plain")}


def assert_envelope(exc: APIStatusError, *, status: int, code: str) -> dict:
    """The envelope as the SDK exposes it: decoded JSON in .body, matching the response."""
    assert exc.status_code == status
    assert exc.response.status_code == status
    body = exc.body
    assert isinstance(body, dict), f"body is not decoded JSON: {body!r}"
    assert set(body) == {"error", "request_id"}
    error = body["error"]
    assert set(error) == {"code", "message", "request_id", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert error["request_id"] == body["request_id"]
    assert exc.response.headers["x-request-id"] == body["request_id"]
    assert exc.response.headers["content-type"].startswith("application/json")
    return body


@pytest.mark.parametrize("status", sorted(DOCUMENTED))
def test_status_forced_by_fixture(start_mock, sdk, status):
    exc_class, code = DOCUMENTED[status]
    server = start_mock([{"id": f"force-{status}", "respond": {"status": status}}])
    with pytest.raises(APIStatusError) as info:
        sdk(server, max_retries=0).upload(**UPLOAD)
    assert type(info.value) is exc_class
    body = assert_envelope(info.value, status=status, code=code)

    (entry,) = server.requests(UPLOAD_PATH)
    assert entry["status"] == status
    assert entry["rule"] == f"force-{status}"
    assert entry["id"] == body["request_id"]
    assert entry.get("upload") is None
    assert server.uploads() == []


@pytest.mark.parametrize("status", sorted(DOCUMENTED))
def test_status_forced_by_prefer_header(mock, sdk, status):
    exc_class, code = DOCUMENTED[status]
    with pytest.raises(APIStatusError) as info:
        sdk(mock, max_retries=0).upload(**UPLOAD, extra_headers={"Prefer": f"code={status}"})
    assert type(info.value) is exc_class
    body = assert_envelope(info.value, status=status, code=code)

    (entry,) = mock.requests(UPLOAD_PATH)
    assert entry["status"] == status
    assert entry["rule"] is None
    assert entry["id"] == body["request_id"]
    assert mock.uploads() == []


def test_prefer_in_client_default_headers(mock, sdk):
    """A test suite can set Prefer once on the client, as Stainless SDK tests do."""
    client = sdk(mock, max_retries=0, default_headers={"Prefer": "code=429"})
    with pytest.raises(RateLimitError) as info:
        client.upload(**UPLOAD)
    assert_envelope(info.value, status=429, code="quota.limit_exceeded")


def test_prefer_code_200_is_a_normal_upload(mock, sdk):
    result = sdk(mock).upload(**UPLOAD, extra_headers={"Prefer": "code=200"})
    assert result.processing_status == "completed"
    assert len(mock.uploads()) == 1


def test_prefer_wins_over_rules(start_mock, sdk):
    """A request that carries `Prefer: code=NNN` gets that status, even when a rule would answer
otherwise: rules are not consulted for it."""
    server = start_mock([{"id": "always-403", "respond": {"status": 403}}])
    with pytest.raises(ConflictError):
        sdk(server, max_retries=0).upload(**UPLOAD, extra_headers={"Prefer": "code=409"})
    (entry,) = server.requests(UPLOAD_PATH)
    assert entry["rule"] is None


def test_rule_overrides_code_message_and_details(start_mock, sdk):
    """An expired key, as the shipped fixture describes it: 401 with the real API's other code."""
    server = start_mock([{
        "id": "expired",
        "respond": {"status": 401, "code": "auth.expired_key", "message": "API key expired",
                    "details": {"expired_at": "2024-01-01T00:00:00Z"}},
    }])
    with pytest.raises(AuthenticationError) as info:
        sdk(server).upload(**UPLOAD)
    body = assert_envelope(info.value, status=401, code="auth.expired_key")
    assert body["error"]["message"] == "API key expired"
    assert body["error"]["details"] == {"expired_at": "2024-01-01T00:00:00Z"}
    assert "API key expired" in str(info.value)


def test_rule_with_custom_body(start_mock, sdk):
    """`body` replaces the envelope with any JSON; the SDK hands it over unchanged."""
    server = start_mock([{"id": "odd", "respond": {"status": 400, "body": {"detail": "legacy shape"}}}])
    with pytest.raises(BadRequestError) as info:
        sdk(server).upload(**UPLOAD)
    assert info.value.body == {"detail": "legacy shape"}


def test_rule_merge_into_success_body(start_mock, sdk):
    """`merge` on a 200: the SDK parses the answer and the merged field comes through."""
    server = start_mock([{"id": "no-url", "respond": {"status": 200, "merge": {"file_url": None}}}])
    result = sdk(server).upload(**UPLOAD)
    assert result.file_url is None
    assert result.file_uuid and result.remote_uri and result.processing_status == "completed"


def test_rule_matching_a_header(start_mock, sdk):
    """Only the keys that match the glob are limited; others upload normally."""
    server = start_mock([{
        "id": "limited-keys",
        "match": {"headers": {"x-api-key": "limited-*"}},
        "respond": {"status": 429},
    }])
    with pytest.raises(RateLimitError):
        sdk(server, api_key="limited-123", max_retries=0).upload(**UPLOAD)
    assert sdk(server, api_key="normal-123", max_retries=0).upload(**UPLOAD).file_uuid
    assert [e["rule"] for e in server.requests(UPLOAD_PATH)] == ["limited-keys", None]


def test_rule_matching_a_filename(start_mock, sdk):
    server = start_mock([{
        "id": "no-videos",
        "match": {"filename": "*.mp4"},
        "respond": {"status": 422, "message": "videos are not accepted here"},
    }])
    with pytest.raises(UnprocessableEntityError) as info:
        sdk(server).upload(file=("movie.mp4", b"\x00" * 1000, "video/mp4"))
    assert info.value.body["error"]["message"] == "videos are not accepted here"
    assert sdk(server).upload(file=("still.png", b"\x89PNG", "image/png")).file_uuid
    assert len(server.uploads()) == 1


def test_rule_added_through_admin_api_then_reset(mock, sdk):
    """POST /__admin/rules takes effect at once; POST /__admin/reset removes it."""
    ids = mock.add_rules([{"id": "maintenance", "respond": {"status": 503}}])
    assert ids == ["maintenance"]
    with pytest.raises(InternalServerError) as info:
        sdk(mock, max_retries=0).upload(**UPLOAD)
    assert_envelope(info.value, status=503, code="server.unavailable")
    mock.reset()
    assert mock.requests(UPLOAD_PATH) == []
    assert sdk(mock, max_retries=0).upload(**UPLOAD).file_uuid


def test_wrong_api_key_rejected(start_mock, sdk):
    """--api-key restricts the accepted keys: the SDK raises AuthenticationError with the envelope."""
    server = start_mock(args=["--api-key", "the-right-key"])
    with pytest.raises(AuthenticationError) as info:
        sdk(server, api_key="a-wrong-key").upload(**UPLOAD)
    assert_envelope(info.value, status=401, code="auth.invalid_key")
    assert sdk(server, api_key="the-right-key").upload(**UPLOAD).file_uuid
    assert len(server.uploads()) == 1


def test_empty_api_key_rejected_by_default(mock, sdk):
    """Default auth accepts any non-empty key; the SDK lets api_key="" through, the server not."""
    with pytest.raises(AuthenticationError) as info:
        sdk(mock, api_key="").upload(**UPLOAD)
    assert_envelope(info.value, status=401, code="auth.invalid_key")
    assert mock.uploads() == []


def test_unknown_path_is_404_envelope(mock, sdk):
    """Any other path -> 404 in the envelope; the SDK's generic request surfaces NotFoundError."""
    def sync_fn(c):
        return c.get("/v2/nothing-here", cast_to=object)

    async def async_fn(c):
        return await c.get("/v2/nothing-here", cast_to=object)

    with pytest.raises(NotFoundError) as info:
        sdk(mock).run(sync_fn, async_fn)
    assert_envelope(info.value, status=404, code="resource.not_found")


def test_upload_over_max_size_is_413_not_a_reset(start_mock, sdk):
    """The 413 answer to an over-size upload reaches the client, not a connection reset; the SDK
    has no class for 413 and raises the generic APIStatusError, without retrying it."""
    server = start_mock(args=["--max-upload-size", "1MiB"])
    with pytest.raises(APIStatusError) as info:
        sdk(server).upload(file=("big.bin", b"\0" * (3 * 1024 * 1024), "application/octet-stream"))
    assert type(info.value) is APIStatusError
    assert_envelope(info.value, status=413, code="validation.invalid_request")
    (entry,) = server.requests(UPLOAD_PATH)
    assert entry["status"] == 413
    assert server.uploads() == []


def test_wrong_method_is_405_with_allow(mock, sdk):
    """A known path with the wrong method: 405 with Allow; the SDK has no class for 405."""
    def sync_fn(c):
        return c.get("/v2/files/-/uploads", cast_to=object)

    async def async_fn(c):
        return await c.get("/v2/files/-/uploads", cast_to=object)

    with pytest.raises(APIStatusError) as info:
        sdk(mock).run(sync_fn, async_fn)
    assert type(info.value) is APIStatusError
    assert_envelope(info.value, status=405, code="validation.invalid_request")
    assert "POST" in info.value.response.headers["allow"]


def test_json_instead_of_multipart_is_422(mock, sdk):
    """Posting JSON to the upload endpoint (a common client bug): 422 saying what is wrong."""
    def sync_fn(c):
        return c.post("/v2/files/-/uploads", body={"file": "not-a-file"}, cast_to=object)

    async def async_fn(c):
        return await c.post("/v2/files/-/uploads", body={"file": "not-a-file"}, cast_to=object)

    with pytest.raises(UnprocessableEntityError) as info:
        sdk(mock).run(sync_fn, async_fn)
    body = assert_envelope(info.value, status=422, code="validation.invalid_format")
    assert body["error"]["details"], "details should name the offending field"
    assert mock.uploads() == []


def test_multipart_without_file_part_is_422_naming_file(mock, sdk):
    """A multipart body whose part has another name: 422 whose details name `file`."""
    kwargs = dict(
        body={},
        files=[("attachment", ("x.txt", b"hello", "text/plain"))],
        options={"headers": {"Content-Type": "multipart/form-data"}},
        cast_to=object,
    )

    def sync_fn(c):
        return c.post("/v2/files/-/uploads", **kwargs)

    async def async_fn(c):
        return await c.post("/v2/files/-/uploads", **kwargs)

    with pytest.raises(UnprocessableEntityError) as info:
        sdk(mock).run(sync_fn, async_fn)
    body = assert_envelope(info.value, status=422, code="validation.invalid_format")
    assert "file" in json.dumps(body["error"]["details"])
    assert mock.uploads() == []
