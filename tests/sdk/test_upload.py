"""Uploads through client.files.upload: bytes, a path, a file object; every FileUpload field."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from aymara_ai.types import FileUpload

from conftest import UPLOAD_PATH, header

# Every field the SDK's FileUpload model declares; the emulator must fill them all.
FILE_UPLOAD_FIELDS = set(FileUpload.model_fields)


def test_sdk_file_upload_has_the_fields_we_answer():
    """Guards the pinned SDK: its FileUpload has exactly the fields our upload answer fills."""
    assert FILE_UPLOAD_FIELDS == {
        "file_uuid",
        "local_file_path",
        "remote_file_path",
        "file_url",
        "content_type",
        "processing_status",
        "remote_uri",
    }


def assert_upload_result(result, *, server, data: bytes, filename: str, content_type: str,
                         workspace: str = "default"):
    """What a user checks in a FileUpload: every field present and consistent."""
    assert isinstance(result, FileUpload)
    for field in FILE_UPLOAD_FIELDS:
        assert isinstance(getattr(result, field), str), f"{field} is {getattr(result, field)!r}"

    parsed = uuid.UUID(result.file_uuid)
    assert parsed.version == 4 and str(parsed) == result.file_uuid

    assert result.remote_file_path == f"uploads/{workspace}/{result.file_uuid}/{filename}"
    assert result.remote_uri == f"s3://aymara-mock/{result.remote_file_path}"
    assert result.file_url == f"{server.url}/__files/{result.file_uuid}/{quote(filename)}"
    assert result.content_type == content_type
    assert result.processing_status == "completed"

    local = Path(result.local_file_path)
    assert local.is_absolute()
    assert local.read_bytes() == data
    assert server.storage_dir is not None
    assert local.resolve().is_relative_to(server.storage_dir.resolve())

    # The file is fetchable at file_url, without credentials, as a bucket URL would be.
    got = httpx.get(result.file_url, timeout=10)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"].startswith(content_type)
    assert int(got.headers["content-length"]) == len(data)


def assert_journaled(server, result, *, data: bytes, filename: str, content_type: str):
    """The admin API records the stored upload, with the same identity as the SDK result."""
    entries = server.requests(UPLOAD_PATH)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["method"] == "POST"
    assert entry["status"] == 200
    assert entry["rule"] is None
    expected = {
        "file_uuid": result.file_uuid,
        "filename": filename,
        "content_type": content_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "local_file_path": result.local_file_path,
    }
    # The fields a journaled upload must carry; more (e.g. file_url) would not hurt a user.
    assert {k: entry["upload"].get(k) for k in expected} == expected
    uploads = server.uploads()
    assert len(uploads) == 1
    assert uploads[0]["file_uuid"] == result.file_uuid
    assert uploads[0]["file_url"] == result.file_url
    assert uploads[0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_upload_bytes(mock, sdk):
    """Bare bytes: httpx names the part `upload` and sends application/octet-stream."""
    data = b"\x00\x01binary payload\xff" * 100
    result = sdk(mock).upload(file=data)
    assert_upload_result(result, server=mock, data=data, filename="upload",
                         content_type="application/octet-stream")
    assert_journaled(mock, result, data=data, filename="upload",
                     content_type="application/octet-stream")


def test_upload_named_bytes_with_content_type(mock, sdk):
    """The README's usual form: (filename, bytes, content_type)."""
    data = b"%PDF-1.4\n" + os.urandom(4096)
    result = sdk(mock).upload(file=("report.pdf", data, "application/pdf"))
    assert_upload_result(result, server=mock, data=data, filename="report.pdf",
                         content_type="application/pdf")
    assert_journaled(mock, result, data=data, filename="report.pdf", content_type="application/pdf")


def test_upload_path(mock, sdk, tmp_path):
    """A pathlib.Path: the SDK reads it and sends its base name; httpx guesses video/mp4."""
    path = tmp_path / "clip.mp4"
    data = os.urandom(256 * 1024)
    path.write_bytes(data)
    result = sdk(mock).upload(file=path)
    assert_upload_result(result, server=mock, data=data, filename="clip.mp4", content_type="video/mp4")
    assert_journaled(mock, result, data=data, filename="clip.mp4", content_type="video/mp4")


def test_upload_file_object(mock, sdk, tmp_path):
    """An open binary file: the part is named after the file's base name."""
    path = tmp_path / "notes.txt"
    data = "naïve café ✓\n".encode() * 1000
    path.write_bytes(data)
    with open(path, "rb") as f:
        result = sdk(mock).upload(file=f)
    assert_upload_result(result, server=mock, data=data, filename="notes.txt", content_type="text/plain")
    assert_journaled(mock, result, data=data, filename="notes.txt", content_type="text/plain")


def test_upload_larger_file_is_intact(mock, sdk, tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(8 * 1024 * 1024 + 123)
    path.write_bytes(data)
    result = sdk(mock).upload(file=path)
    assert Path(result.local_file_path).read_bytes() == data
    assert mock.requests(UPLOAD_PATH)[0]["upload"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert mock.requests(UPLOAD_PATH)[0]["upload"]["size"] == len(data)


def test_upload_to_workspace(mock, sdk):
    result = sdk(mock).upload(file=("a.txt", b"hello", "text/plain"), workspace_uuid="ws-123")
    assert_upload_result(result, server=mock, data=b"hello", filename="a.txt",
                         content_type="text/plain", workspace="ws-123")
    (entry,) = mock.requests(UPLOAD_PATH)
    assert entry["query"] in ("workspace_uuid=ws-123", {"workspace_uuid": "ws-123"},
                              {"workspace_uuid": ["ws-123"]})


def test_every_field_in_the_wire_json(mock, sdk):
    """Not just parsed: the raw JSON carries every FileUpload field, non-null, as JSON strings."""
    result, response = sdk(mock).raw_upload(file=("x.json", b"{}", "application/json"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert FILE_UPLOAD_FIELDS <= set(body)
    for field in FILE_UPLOAD_FIELDS:
        assert isinstance(body[field], str), field
        assert getattr(result, field) == body[field]
    assert response.headers.get("x-request-id")


def test_unsafe_filename_is_reduced_to_a_safe_base_name(mock, sdk):
    """A client never chooses where a file lands: a path in the name is cut to its base name."""
    result = sdk(mock).upload(file=("../../etc/passwd", b"root:x", "text/plain"))
    assert Path(result.local_file_path).name == "passwd"
    assert result.remote_file_path == f"uploads/default/{result.file_uuid}/passwd"
    assert Path(result.local_file_path).resolve().is_relative_to(mock.storage_dir.resolve())


def test_part_without_filename_is_named_upload_bin(mock, sdk):
    """(None, bytes): httpx sends no filename and no Content-Type; the file is named upload.bin."""
    result = sdk(mock).upload(file=(None, b"anonymous"))
    assert result.remote_file_path == f"uploads/default/{result.file_uuid}/upload.bin"
    assert result.content_type == "application/octet-stream"
    assert Path(result.local_file_path).read_bytes() == b"anonymous"


def test_filename_needing_percent_encoding_in_file_url(mock, sdk):
    name = "my report #1.txt"
    result = sdk(mock).upload(file=(name, b"data", "text/plain"))
    assert result.remote_file_path.endswith("/" + name)
    assert result.file_url == f"{mock.url}/__files/{result.file_uuid}/{quote(name)}"
    assert httpx.get(result.file_url, timeout=10).content == b"data"


def test_journal_shows_sdk_headers_with_key_redacted(mock, sdk):
    _, response = sdk(mock).raw_upload(file=b"x")
    (entry,) = mock.requests(UPLOAD_PATH)
    assert entry["id"] == response.headers["x-request-id"]
    assert header(entry["headers"], "x-api-key") == "[redacted]"
    assert header(entry["headers"], "x-stainless-retry-count") == "0"
    assert header(entry["headers"], "content-type").startswith("multipart/form-data; boundary=")


def test_client_request_id_is_echoed(mock, sdk):
    _, response = sdk(mock).raw_upload(file=b"x", extra_headers={"x-request-id": "req_mine_42"})
    assert response.headers["x-request-id"] == "req_mine_42"
    (entry,) = mock.requests(UPLOAD_PATH)
    assert entry["id"] == "req_mine_42"


@pytest.mark.anyio
async def test_async_client_concurrent_uploads(mock):
    """Several uploads in flight at once on one AsyncAymaraAI: each stored once, intact."""
    import anyio
    from aymara_ai import AsyncAymaraAI

    payloads = {f"part-{i}.bin": os.urandom(64 * 1024 + i) for i in range(8)}
    results = {}
    async with AsyncAymaraAI(api_key="test-key", base_url=mock.url) as client:
        async def one(name: str, data: bytes) -> None:
            results[name] = await client.files.upload(file=(name, data, "application/octet-stream"))

        async with anyio.create_task_group() as tg:
            for name, data in payloads.items():
                tg.start_soon(one, name, data)

    assert len({r.file_uuid for r in results.values()}) == len(payloads)
    for name, data in payloads.items():
        assert Path(results[name].local_file_path).read_bytes() == data
    stored = {u["file_uuid"]: u for u in mock.uploads()}
    assert set(stored) == {r.file_uuid for r in results.values()}
    assert all(e["status"] == 200 for e in mock.requests(UPLOAD_PATH))
