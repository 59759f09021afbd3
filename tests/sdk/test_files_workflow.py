"""The SDK's files workflow against aymara-mock: its own upload helpers
(`aymara_ai.lib.uploads`: `POST /v2/files`, then a PUT of the bytes to the presigned
`file_url`), the `files` resource end to end (upload with each method, poll the status, list,
get, frames, delete), a failing-processing scenario from a shipped fixture, what the SDK's
pager does with a list, and the PUTs S3 would refuse (expired, tampered, wrong content type,
too large: refused, and nothing stored).
"""

from __future__ import annotations

import calendar
import hashlib
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aymara_ai import ConflictError, NotFoundError, UnprocessableEntityError
from aymara_ai.lib.uploads import upload_file, upload_file_async
from aymara_ai.types import FileCreateResponse, FileDetail, FileFrames, FileStatus, FileUpload
from sidecar import REPO_ROOT

from conftest import UPLOAD_PATH, header

PROCESSING_ORDER = ["pending", "processing", "completed"]
STATUS_DEADLINE_S = 15.0
FAILS_FIXTURE = REPO_ROOT / "fixtures" / "scenarios" / "files-video-fails.json"


# -- helpers ---------------------------------------------------------------------------------


def call(sdk: Any, fn: Callable[[Any], Any]) -> Any:
    """fn(client) with the sync or the async client: the async client's methods return
    awaitables, which Sdk.run awaits."""
    return sdk.run(fn, fn)


def helper_upload(sdk: Any, **kw: Any) -> Any:
    """The SDK's own helper: upload_file with the sync client, upload_file_async with the
    async one (each making its own httpx client for the PUT, as a user's script does)."""
    return sdk.run(lambda c: upload_file(c, **kw), lambda c: upload_file_async(c, **kw))


def uuid_of(remote_file_path: str) -> str:
    """The file_uuid in a remote_file_path `uploads/WORKSPACE/UUID/NAME`."""
    parts = remote_file_path.split("/")
    assert len(parts) == 4 and parts[0] == "uploads", remote_file_path
    return parts[2]


def stored_files(server: Any) -> list[Path]:
    """The stored files' bytes: regular files under the server's storage dir, outside its
    dot-dirs (the emulator's bookkeeping, e.g. the files index and in-flight parts)."""
    root = server.storage_dir
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def partial_files(server: Any) -> list[Path]:
    """Files of bodies still (or left) in flight: what a refused PUT must not leave behind."""
    return sorted(p for p in (server.storage_dir / ".partial").rglob("*") if p.is_file())


def assert_nothing_stored(server: Any) -> None:
    """No upload listed, no bytes stored, no part left."""
    assert server.uploads() == []
    assert stored_files(server) == []
    assert partial_files(server) == []


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_error(resp: httpx.Response) -> tuple[int, str, str]:
    """(status, <Code>, <Message>) of an S3-style XML error answer."""
    assert resp.headers["content-type"].startswith("application/xml"), resp.text
    root = ET.fromstring(resp.content)
    assert root.tag == "Error", resp.text
    code, message = root.findtext("Code"), root.findtext("Message")
    assert code and message, resp.text
    return resp.status_code, code, message


def announce(sdk: Any, **entry: Any) -> FileUpload:
    """files.create with one entry; its FileUpload (pending, with a presigned PUT URL)."""
    created = call(sdk, lambda c: c.files.create(files=[entry]))
    assert isinstance(created, FileCreateResponse)
    (upload,) = created.files
    assert upload.processing_status == "pending"
    assert upload.file_url
    return upload


def poll_status(sdk: Any, file_uuid: str, until: str) -> list[str]:
    """get_status until its processing_status is `until`; the distinct statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + STATUS_DEADLINE_S
    while time.monotonic() < deadline:
        status = call(sdk, lambda c: c.files.get_status(file_uuid))
        assert isinstance(status, FileStatus)
        assert status.file_uuid == file_uuid
        if not seen or seen[-1] != status.processing_status:
            seen.append(status.processing_status)
        if status.processing_status == until:
            return seen
        time.sleep(0.05)  # polling a state that changes with time, as a client would
    pytest.fail(f"{file_uuid} never became {until!r} within {STATUS_DEADLINE_S}s: {seen}")


def assert_gone(sdk: Any, file_uuid: str) -> None:
    """Every route of the files resource answers 404 for a deleted file."""
    for fn in (
        lambda c: c.files.get(file_uuid),
        lambda c: c.files.get_status(file_uuid),
        lambda c: c.files.get_frames(file_uuid),
        lambda c: c.files.delete(file_uuid),
    ):
        with pytest.raises(NotFoundError) as info:
            call(sdk, fn)
        assert info.value.status_code == 404
        assert info.value.body["error"]["code"] == "resource.not_found"


# -- the SDK's upload helpers ----------------------------------------------------------------


@pytest.mark.parametrize("source", ["bytes", "path"])
def test_sdk_upload_helper_stores_the_clients_bytes(start_mock, sdk, tmp_path, source):
    """upload_file / upload_file_async: create, PUT, and the bytes stored are the client's."""
    server = start_mock()
    data = os.urandom(3 * 1024 * 1024 + 17)
    if source == "bytes":
        # Named: the helper guesses the type from the name and sends it on the PUT.
        ref = helper_upload(sdk(server), file_name="report.pdf", file_content=data)
        name, content_type = "report.pdf", "application/pdf"
    else:
        # A Path without a name: the helper sends it as "file.png", image/png (its defaults).
        path = tmp_path / "notes.bin"
        path.write_bytes(data)
        ref = helper_upload(sdk(server), file_content=path)
        name, content_type = "file.png", "image/png"

    file_uuid = uuid_of(ref["remote_file_path"])
    assert ref["remote_file_path"] == f"uploads/default/{file_uuid}/{name}"

    # The journal has the create and the PUT, which stored the upload.
    entries = server.requests()
    assert [(e["method"], e["path"]) for e in entries] == [
        ("POST", "/v2/files"),
        ("PUT", f"/__uploads/{file_uuid}/{name}"),
    ]
    put = entries[1]
    assert put["status"] == 200
    assert put["upload"]["sha256"] == sha256(data)
    # Both ways of sending a body are covered: the async helper streams a file through
    # aiofiles, chunked; everything else sends a Content-Length.
    if sdk(server).kind == "async" and source == "path":
        assert header(put["headers"], "transfer-encoding") == "chunked"
    else:
        assert header(put["headers"], "content-length") == str(len(data))

    (stored,) = server.uploads()
    assert stored["file_uuid"] == file_uuid
    assert stored["filename"] == name
    assert stored["content_type"] == content_type
    assert stored["size"] == len(data)
    assert stored["sha256"] == sha256(data)
    assert stored_files(server) == [Path(stored["local_file_path"])]
    assert sha256(Path(stored["local_file_path"]).read_bytes()) == sha256(data)
    got = httpx.get(stored["file_url"], timeout=10)
    assert got.status_code == 200 and sha256(got.content) == sha256(data)

    # A non-video is processed at once.
    detail = call(sdk(server), lambda c: c.files.get(file_uuid))
    assert isinstance(detail, FileDetail)
    assert detail.file_size_bytes == len(data)
    assert detail.content_type == content_type
    status = call(sdk(server), lambda c: c.files.get_status(file_uuid))
    assert status.processing_status == "completed"


def test_sdk_upload_helpers_see_an_oversized_put_refused(start_mock, sdk):
    """What a user of the helper sees when the PUT is over --max-upload-size: the sync helper
    raises httpx's HTTPStatusError (raise_for_status), the async one a RuntimeError."""
    server = start_mock(args=["--max-upload-size", "1000"])
    s = sdk(server)
    expected = httpx.HTTPStatusError if s.kind == "sync" else RuntimeError
    with pytest.raises(expected, match="413"):
        helper_upload(s, file_name="big.bin", file_content=os.urandom(5000))
    assert_nothing_stored(server)


# -- the files resource end to end -----------------------------------------------------------


def test_video_workflow_with_each_upload_method(start_mock, sdk):
    """Upload a video with files.upload (multipart) and with upload_file (presigned PUT);
    poll each to completed; list, get, frames; delete each, after which it is gone (404)."""
    server = start_mock(args=["--video-processing-time", "1500ms"])
    s = sdk(server)
    videos = {"multipart.mp4": os.urandom(200_000), "presigned.mp4": os.urandom(300_000)}

    part = ("multipart.mp4", videos["multipart.mp4"], "video/mp4")
    uploaded = call(s, lambda c: c.files.upload(file=part))
    assert isinstance(uploaded, FileUpload)
    first = uploaded.file_uuid
    seen = poll_status(s, first, "completed")
    assert "processing" in seen and seen == [st for st in PROCESSING_ORDER if st in seen], seen

    ref = helper_upload(s, file_name="presigned.mp4", file_content=videos["presigned.mp4"])
    second = uuid_of(ref["remote_file_path"])
    seen = poll_status(s, second, "completed")
    assert "processing" in seen and seen == [st for st in PROCESSING_ORDER if st in seen], seen

    uuids = {"multipart.mp4": first, "presigned.mp4": second}
    status = call(s, lambda c: c.files.get_status(second))
    assert status.remote_file_path == ref["remote_file_path"]
    assert status.error_message is None

    page = call(s, lambda c: c.files.list())
    assert page.count == 2
    assert {item.file_uuid for item in page.items} == {first, second}

    for name, file_uuid in uuids.items():
        detail = call(s, lambda c: c.files.get(file_uuid))
        assert isinstance(detail, FileDetail)
        assert detail.file_uuid == file_uuid
        assert detail.file_type == "video"
        assert detail.content_type == "video/mp4"
        assert detail.file_size_bytes == len(videos[name])
        assert detail.remote_file_path == f"uploads/default/{file_uuid}/{name}"
        assert detail.created_at <= detail.updated_at
        assert detail.file_url
        got = httpx.get(detail.file_url, timeout=10)
        assert got.status_code == 200 and got.content == videos[name]

        frames = call(s, lambda c: c.files.get_frames(file_uuid))
        assert isinstance(frames, FileFrames)
        assert frames.file_uuid == file_uuid
        assert frames.frame_count == len(frames.frame_urls) > 0
        for url in frames.frame_urls:
            image = httpx.get(url, timeout=10)
            assert image.status_code == 200
            assert image.headers["content-type"] == "image/png"
            assert image.content.startswith(b"\x89PNG\r\n\x1a\n")

    # Delete the multipart one: gone from every route, its bytes from storage and file_url.
    file_url = call(s, lambda c: c.files.get(first)).file_url
    assert call(s, lambda c: c.files.delete(first)) is None
    assert_gone(s, first)
    assert httpx.get(file_url, timeout=10).status_code == 404
    page = call(s, lambda c: c.files.list())
    assert (page.count, [item.file_uuid for item in page.items]) == (1, [second])
    assert [u["file_uuid"] for u in server.uploads()] == [second]
    assert [p.name for p in stored_files(server)] == ["presigned.mp4"]

    assert call(s, lambda c: c.files.delete(second)) is None
    assert_gone(s, second)
    assert call(s, lambda c: c.files.list()).count == 0
    assert_nothing_stored(server)


def test_failing_processing_from_the_shipped_fixture(start_mock, sdk):
    """fixtures/scenarios/files-video-fails.json: a video is stored, but its status is failed,
    with an error_message, and its frames are a 409; other files are not affected."""
    server = start_mock(fixtures=[FAILS_FIXTURE], args=["--video-processing-time", "0s"])
    s = sdk(server)

    ref = helper_upload(s, file_name="broken.mp4", file_content=b"\x00" * 1000)
    uploaded = call(s, lambda c: c.files.upload(file=("broken2.mp4", b"\x01" * 10, "video/mp4")))
    for file_uuid in (uuid_of(ref["remote_file_path"]), uploaded.file_uuid):
        assert poll_status(s, file_uuid, "failed")[-1] == "failed"
        status = call(s, lambda c: c.files.get_status(file_uuid))
        assert status.error_message == "Video processing failed: the file is not a decodable video."
        with pytest.raises(ConflictError) as info:
            call(s, lambda c: c.files.get_frames(file_uuid))
        assert info.value.status_code == 409
    assert len(server.uploads()) == 2, "a failed video is still stored"

    text = helper_upload(s, file_name="fine.txt", file_content=b"hello")
    text_uuid = uuid_of(text["remote_file_path"])
    assert call(s, lambda c: c.files.get_status(text_uuid)).processing_status == "completed"


def test_the_sdks_pager_stops_after_the_first_page(start_mock, sdk):
    """Pinned SDK behaviour: OffsetPage.next_page_info adds the page's length to `count` (the
    total), which is never below `count`, so auto-pagination ends after one page; a client
    pages with `offset` itself. The emulator's pages are consistent either way."""
    server = start_mock()
    s = sdk(server)
    names = [f"f{i}.txt" for i in range(3)]
    for name in names:
        helper_upload(s, file_name=name, file_content=name.encode())

    first = call(s, lambda c: c.files.list(limit=2))
    assert first.count == 3
    assert len(first.items) == 2
    assert first.next_page_info() is None
    rest = call(s, lambda c: c.files.list(limit=2, offset=2))
    assert rest.count == 3
    assert len(rest.items) == 1
    listed = {uuid_of(i.remote_file_path) for i in first.items + rest.items}
    assert listed == {u["file_uuid"] for u in server.uploads()}


@pytest.mark.parametrize("params", [{"limit": -1}, {"limit": 100000}, {"offset": "abc"}], ids=str)
def test_bad_list_parameters_raise_unprocessable_entity(start_mock, sdk, params):
    server = start_mock()
    with pytest.raises(UnprocessableEntityError) as info:
        call(sdk(server), lambda c: c.files.list(**params))
    assert info.value.status_code == 422
    (field,) = params
    assert info.value.body["error"]["details"]["field"] == field


# -- PUTs that S3 would refuse ---------------------------------------------------------------


def test_an_expired_put_is_access_denied_and_stores_nothing(start_mock, sdk):
    server = start_mock(args=["--presign-expiry", "1s"])
    s = sdk(server)
    upload = announce(s, local_file_path="late.txt")
    query = parse_qs(urlsplit(upload.file_url).query)
    (signed_at,) = query["X-Amz-Date"]
    (expires,) = query["X-Amz-Expires"]
    assert expires == "1"
    # Wait (wall clock, not for a server) until the URL's own validity has passed.
    expiry = calendar.timegm(time.strptime(signed_at, "%Y%m%dT%H%M%SZ")) + int(expires)
    time.sleep(max(0.0, expiry + 1.1 - time.time()))

    resp = httpx.put(upload.file_url, content=b"too late", headers={"content-type": "text/plain"})
    assert s3_error(resp) == (403, "AccessDenied", "Request has expired")
    assert_nothing_stored(server)
    assert call(s, lambda c: c.files.get_status(upload.file_uuid)).processing_status == "pending"


def test_a_tampered_put_does_not_match_the_signature_and_stores_nothing(start_mock, sdk):
    server = start_mock()
    s = sdk(server)
    upload = announce(s, local_file_path="a.txt")
    other = announce(s, local_file_path="a.txt")
    url = upload.file_url
    flipped = url[:-1] + ("1" if url[-1] == "0" else "0")
    assert flipped != url
    for tampered in (
        flipped,
        url.replace(upload.file_uuid, other.file_uuid),
        url.replace("/a.txt?", "/b.txt?"),
        url.replace("X-Amz-Expires=1800", "X-Amz-Expires=99999"),
    ):
        assert tampered != url
        resp = httpx.put(tampered, content=b"evil")
        assert s3_error(resp)[:2] == (403, "SignatureDoesNotMatch"), tampered
    assert_nothing_stored(server)
    assert call(s, lambda c: c.files.get_status(upload.file_uuid)).processing_status == "pending"
    # The untampered URL was good all along.
    assert httpx.put(url, content=b"fine").status_code == 200
    assert [u["sha256"] for u in server.uploads()] == [sha256(b"fine")]


def test_a_put_with_another_content_type_than_signed_is_refused(start_mock, sdk):
    server = start_mock()
    s = sdk(server)
    upload = announce(s, local_file_path="v.mp4", content_type="video/mp4")
    for headers in ({"content-type": "video/webm"}, {}):
        resp = httpx.put(upload.file_url, content=b"video", headers=headers)
        assert s3_error(resp)[:2] == (403, "SignatureDoesNotMatch"), headers
    assert_nothing_stored(server)
    resp = httpx.put(upload.file_url, content=b"video", headers={"content-type": "video/mp4"})
    assert resp.status_code == 200
    assert [u["content_type"] for u in server.uploads()] == ["video/mp4"]


def test_a_put_over_the_size_limit_is_413_and_stores_nothing(start_mock, sdk):
    server = start_mock(args=["--max-upload-size", "1000"])
    s = sdk(server)
    upload = announce(s, local_file_path="big.bin")

    resp = httpx.put(upload.file_url, content=os.urandom(5000))
    assert s3_error(resp)[:2] == (413, "EntityTooLarge")

    # Chunked, without a Content-Length to refuse it by: cut at the limit.
    def chunks():
        for _ in range(10):
            yield os.urandom(500)

    resp = httpx.put(upload.file_url, content=chunks())
    assert resp.request.headers["transfer-encoding"] == "chunked"
    assert s3_error(resp)[:2] == (413, "EntityTooLarge")
    assert_nothing_stored(server)
    assert call(s, lambda c: c.files.get_status(upload.file_uuid)).processing_status == "pending"

    # Exactly at the limit is fine.
    data = os.urandom(1000)
    assert httpx.put(upload.file_url, content=data).status_code == 200
    assert [u["sha256"] for u in server.uploads()] == [sha256(data)]


def test_a_multipart_upload_is_listed_by_the_files_api(start_mock, sdk):
    """The multipart upload and the files API share one index: a multipart upload is listed."""
    server = start_mock()
    s = sdk(server)
    uploaded = call(s, lambda c: c.files.upload(file=("a.txt", b"abc", "text/plain")))
    assert [e["path"] for e in server.requests()] == [UPLOAD_PATH]
    page = call(s, lambda c: c.files.list())
    assert [(i.file_uuid, i.file_type, i.file_size_bytes) for i in page.items] == [
        (uploaded.file_uuid, "text", 3)
    ]


def test_a_second_put_to_the_same_url_overwrites_as_s3_does(start_mock, sdk):
    """Documented choice: like S3, a presigned URL may be used again until it expires, and the
    last PUT wins; the file is still one file."""
    server = start_mock()
    s = sdk(server)
    upload = announce(s, local_file_path="o.txt")
    for data in (b"first", b"second"):
        assert httpx.put(upload.file_url, content=data).status_code == 200
    assert [u["sha256"] for u in server.uploads()] == [sha256(b"second")]
    assert len(stored_files(server)) == 1
    detail = call(s, lambda c: c.files.get(upload.file_uuid))
    assert httpx.get(detail.file_url, timeout=10).content == b"second"
    assert call(s, lambda c: c.files.list()).count == 1
