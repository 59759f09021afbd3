"""aymara-mock's S3 storage backend (`--storage s3://BUCKET/PREFIX --s3-endpoint URL`) against a
real S3-compatible server (moto), checked from the outside with boto3."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import socket
import struct
import time
import uuid
from typing import Any, Iterator

import httpx
import pytest
from aymara_ai import AsyncAymaraAI, AymaraAI
from aymara_ai.lib.uploads import upload_file, upload_file_async

from conftest import API_KEY, UPLOAD_PATH, Emulator, Moto, empty_bucket, poll, unique_bucket

MiB = 1024 * 1024
PART = 8 * MiB  # the emulator's multipart part size
PREFIX = "aymara"


# -- helpers ---------------------------------------------------------------------------------


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every object key under `prefix`."""
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def multipart_uploads(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Multipart uploads in progress in the bucket (neither completed nor aborted)."""
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def record_key(prefix: str, file_uuid: str) -> str:
    return f"{prefix}/.aymara-mock/uploads/{file_uuid}.json"


def get_bytes(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def csv_bytes(size: int) -> bytes:
    rng = random.Random(1)
    lines = [b"id,name,score\n"]
    n = 0
    while sum(map(len, lines)) < size:
        n += 1
        lines.append(f"{n},name-{rng.randrange(10**6)},{rng.random():.6f}\n".encode())
    return b"".join(lines)[:size]


def multipart_framing(filename: str, content_type: str) -> tuple[str, bytes, bytes]:
    """(boundary, bytes before the file's content, bytes after it) of a one-part form."""
    boundary = f"s3suite{uuid.uuid4().hex}"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return boundary, head, tail


def raw_upload_head(
    emu: Emulator, boundary: str, framing: str, query: str = ""
) -> tuple[str, int, bytes]:
    """The host, port and head of a multipart POST to the upload endpoint sent over a raw socket;
    `framing` is its Content-Length or Transfer-Encoding header line."""
    host, port = emu.url.removeprefix("http://").split(":")
    head = (
        f"POST {UPLOAD_PATH}{query} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"x-api-key: {API_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"{framing}\r\n\r\n"
    ).encode()
    return host, int(port), head


def assert_nothing_stored(s3: Any, emulator: Emulator, what: str) -> None:
    """No multipart upload in progress, no object or record under the prefix, nothing listed."""
    bucket, prefix = emulator.bucket, emulator.prefix
    poll(
        lambda: not multipart_uploads(s3, bucket),
        timeout=15,
        what=f"{what}: the multipart upload to be aborted (list_multipart_uploads empty); "
        f"emulator stderr:\n{emulator.stderr()}",
    )
    assert keys(s3, bucket, f"{prefix}/") == [], f"{what}: objects left; stderr:\n{emulator.stderr()}"
    assert emulator.uploads() == []


# -- 1. uploads land in the bucket -----------------------------------------------------------


@pytest.mark.parametrize(
    "size, filename, content_type, parts",
    [
        pytest.param(5 * 1024 + 17, "report.csv", "text/csv", 0, id="small-csv-one-put"),
        pytest.param(20 * MiB + 123, "scan.pdf", "application/pdf", 3, id="20MiB-pdf-multipart"),
    ],
)
def test_upload_is_stored_in_the_bucket(
    s3: Any, bucket: str, moto: Moto, start_emulator: Any,
    size: int, filename: str, content_type: str, parts: int,
) -> None:
    emu = start_emulator(moto.endpoint, bucket, PREFIX)
    data = csv_bytes(size) if content_type == "text/csv" else random.Random(size).randbytes(size)

    r = emu.upload(data, filename, content_type, workspace="ws-42")
    assert r.status_code == 200, f"{r.status_code} {r.text}\nstderr:\n{emu.stderr()}"
    body = r.json()
    file_uuid = body["file_uuid"]
    assert str(uuid.UUID(file_uuid)) == file_uuid
    key = f"{PREFIX}/uploads/ws-42/{file_uuid}/{filename}"
    assert body["remote_file_path"] == key
    assert body["remote_uri"] == f"s3://{bucket}/{key}"
    assert body["local_file_path"] is None
    assert body["content_type"] == content_type
    assert body["processing_status"] == "completed"
    assert body["file_url"] == f"{emu.url}/__files/{file_uuid}/{filename}"

    # The bucket, seen by another client: exactly the bytes, with the part's content type.
    obj = s3.get_object(Bucket=bucket, Key=key)
    assert obj["ContentType"] == content_type
    assert obj["ContentLength"] == size
    stored = obj["Body"].read()
    assert stored == data, "the object's bytes differ from the bytes uploaded"
    etag = obj["ETag"].strip('"')
    if parts:
        assert etag.endswith(f"-{parts}"), f"expected a {parts}-part multipart object, ETag {etag}"
    else:
        assert "-" not in etag, f"expected a single PUT, ETag {etag}"
    assert multipart_uploads(s3, bucket) == []

    # The record object next to it.
    record = json.loads(get_bytes(s3, bucket, record_key(PREFIX, file_uuid)))
    sha = hashlib.sha256(data).hexdigest()
    assert record["file_uuid"] == file_uuid
    assert record["filename"] == filename
    assert record["content_type"] == content_type
    assert record["size"] == size
    assert record["sha256"] == sha
    assert record["local_file_path"] is None
    assert record["remote_file_path"] == key
    assert record["remote_uri"] == body["remote_uri"]
    assert record["file_url"] == body["file_url"]
    assert keys(s3, bucket, "") == sorted([key, record_key(PREFIX, file_uuid)])

    # Served back from the store, whole and by range (across a part boundary for the large one).
    with httpx.Client(timeout=60, trust_env=False) as client:
        got = client.get(body["file_url"])
        assert got.status_code == 200, got.text
        assert got.content == data
        assert got.headers["content-type"].startswith(content_type)
        start = PART - 100 if size > PART else 100
        end = start + 1000
        ranged = client.get(body["file_url"], headers={"Range": f"bytes={start}-{end}"})
        assert ranged.status_code == 206, ranged.text
        assert ranged.content == data[start : end + 1]
        assert ranged.headers["content-range"] == f"bytes {start}-{end}/{size}"

    # The admin API and the journal.
    (listed,) = emu.uploads()
    assert listed["sha256"] == sha
    assert listed["size"] == size
    assert listed["remote_file_path"] == key
    assert listed["local_file_path"] is None
    (entry,) = emu.journal()
    assert entry["status"] == 200
    assert entry["upload"]["sha256"] == sha


# -- 2. a client that goes away mid-upload leaves nothing ------------------------------------


@pytest.mark.parametrize("close", ["fin", "rst"])
def test_cut_off_upload_leaves_nothing(
    s3: Any, bucket: str, moto: Moto, start_emulator: Any, close: str
) -> None:
    emu = start_emulator(moto.endpoint, bucket, PREFIX)
    announced, sent = 30 * MiB, 20 * MiB
    boundary, head, tail = multipart_framing("cut.mp4", "video/mp4")
    host, port, request_head = raw_upload_head(
        emu, boundary, f"Content-Length: {len(head) + announced + len(tail)}", "?workspace_uuid=cut"
    )
    rng = random.Random(2)
    sock = socket.create_connection((host, port), timeout=30)
    try:
        sock.sendall(request_head + head)
        for _ in range(sent // MiB):
            sock.sendall(rng.randbytes(MiB))
        # The emulator has read most of those 20 MiB: its multipart upload is under way.
        poll(
            lambda: multipart_uploads(s3, bucket),
            timeout=15,
            what=f"a multipart upload in progress while the body streams in; stderr:\n{emu.stderr()}",
        )
        in_flight = multipart_uploads(s3, bucket)
        assert [u["Key"].split("/")[:3] for u in in_flight] == [[PREFIX, "uploads", "cut"]]
    finally:
        if close == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    assert_nothing_stored(s3, emu, f"upload cut off ({close}) after {sent} of {announced} bytes")
    assert emu.alive()
    (entry,) = poll(emu.journal, timeout=5, what="the cut-off request in the journal")
    assert entry["upload"] is None
    # Still works.
    r = emu.upload(b"after", "after.txt", "text/plain")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("close", ["half-close", "close"])
def test_body_cut_after_the_closing_boundary_leaves_nothing(
    s3: Any, bucket: str, moto: Moto, start_emulator: Any, close: str
) -> None:
    """The whole multipart body arrives, closing boundary included, but the HTTP body ends 1000
    bytes short of its Content-Length: a cut request, so no object and no multipart upload."""
    emu = start_emulator(moto.endpoint, bucket, PREFIX)
    boundary, head, tail = multipart_framing("whole.mp4", "video/mp4")
    data = random.Random(5).randbytes(20 * MiB)  # 8 MiB parts: a multipart upload under way
    body = head + data + tail
    host, port, request_head = raw_upload_head(
        emu, boundary, f"Content-Length: {len(body) + 1000}", "?workspace_uuid=cut"
    )
    sock = socket.create_connection((host, port), timeout=30)
    answer = b""
    try:
        sock.sendall(request_head + body)
        poll(
            lambda: multipart_uploads(s3, bucket),
            timeout=15,
            what=f"a multipart upload in progress; stderr:\n{emu.stderr()}",
        )
        if close == "half-close":
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                answer += chunk
    finally:
        sock.close()

    assert answer == b"", f"answered {answer[:200]!r}"
    assert_nothing_stored(s3, emu, f"body cut after the closing boundary ({close})")
    (entry,) = poll(emu.journal, timeout=5, what="the cut request in the journal")
    assert (entry["status"], entry["upload"], entry["cut"]) == (None, None, True)
    assert entry["body_bytes"] == len(body)


# -- 3. an upload refused by a rule leaves nothing -------------------------------------------


@pytest.mark.parametrize(
    "rule, expect",
    [
        pytest.param({"phase": "complete", "respond": {"status": 500}}, 500, id="respond-500-at-complete"),
        pytest.param({"fault": {"kind": "reset", "after_bytes": 10_000_000}}, "reset", id="reset-after-10MB"),
    ],
)
def test_rejected_upload_leaves_nothing(
    s3: Any, bucket: str, moto: Moto, start_emulator: Any, rule: dict[str, Any], expect: Any
) -> None:
    emu = start_emulator(moto.endpoint, bucket, PREFIX)
    emu.add_rules([rule])
    data = random.Random(3).randbytes(20 * MiB)  # 8 MiB parts: two sent before the body ends

    if expect == "reset":
        with pytest.raises(httpx.TransportError):
            emu.upload(data, "big.bin", "application/octet-stream")
    else:
        r = emu.upload(data, "big.bin", "application/octet-stream")
        assert r.status_code == expect, r.text
        assert r.json()["error"]["code"] == "server.internal_error"

    assert_nothing_stored(s3, emu, f"upload refused by {rule}")
    (entry,) = poll(emu.journal, timeout=5, what="the refused request in the journal")
    assert entry["upload"] is None
    assert emu.alive()


# -- 4. two emulators sharing a bucket and prefix --------------------------------------------


def test_two_emulators_share_a_prefix(s3: Any, bucket: str, moto: Moto, start_emulator: Any) -> None:
    unrelated = {
        f"{PREFIX}/notes/keep.txt": b"not an upload",
        f"{PREFIX}/uploads/default/{uuid.uuid4()}/manual.txt": b"put there by hand",
    }
    for key, value in unrelated.items():
        s3.put_object(Bucket=bucket, Key=key, Body=value)
    a = start_emulator(moto.endpoint, bucket, PREFIX)
    b = start_emulator(moto.endpoint, bucket, PREFIX)
    data_a, data_b = b"from A " * 1000, random.Random(4).randbytes(9 * MiB)

    ra, rb = a.upload(data_a, "a.txt", "text/plain"), b.upload(data_b, "b.bin", "image/png")
    assert ra.status_code == 200, ra.text
    assert rb.status_code == 200, rb.text
    up_a, up_b = ra.json(), rb.json()
    # More of A's uploads, so that clearing deletes many objects at once.
    extra = [a.upload(f"extra {i}".encode(), f"x{i}.txt", "text/plain") for i in range(20)]
    assert all(r.status_code == 200 for r in extra), [r.text for r in extra]
    extra_ids = [r.json()["file_uuid"] for r in extra]

    for server in (a, b):
        for up, data in ((up_a, data_a), (up_b, data_b)):
            got = server.http.get(f"/__files/{up['file_uuid']}/{up['remote_file_path'].rsplit('/', 1)[1]}")
            assert got.status_code == 200, (
                f"{server.url} serving {up['file_url']}: {got.status_code} {got.text}\n{server.stderr()}"
            )
            assert got.content == data
    assert [u["file_uuid"] for u in a.uploads()] == [up_a["file_uuid"], *extra_ids]
    assert [u["file_uuid"] for u in b.uploads()] == [up_b["file_uuid"]]

    r = a.http.delete("/__admin/uploads")
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": 21}

    left = keys(s3, bucket, "")
    assert up_a["remote_file_path"] not in left
    assert record_key(PREFIX, up_a["file_uuid"]) not in left
    assert up_b["remote_file_path"] in left
    assert record_key(PREFIX, up_b["file_uuid"]) in left
    for key, value in unrelated.items():
        assert get_bytes(s3, bucket, key) == value, key
    assert sorted(left) == sorted(
        [up_b["remote_file_path"], record_key(PREFIX, up_b["file_uuid"]), *unrelated]
    )
    assert get_bytes(s3, bucket, up_b["remote_file_path"]) == data_b
    assert a.uploads() == []
    assert [u["file_uuid"] for u in b.uploads()] == [up_b["file_uuid"]]
    # A's file is gone for both; B's is still served by both.
    for server in (a, b):
        gone = server.http.get(f"/__files/{up_a['file_uuid']}/a.txt")
        assert gone.status_code == 404, gone.text
        kept = server.http.get(f"/__files/{up_b['file_uuid']}/b.bin")
        assert kept.status_code == 200 and kept.content == data_b

    # Stopping the emulators leaves the bucket as it is: the objects outlive them.
    for server in (a, b):
        assert server.stop() == 0, server.stderr()
    assert keys(s3, bucket, "") == left


# -- 5. the store goes down and comes back ---------------------------------------------------


def test_store_down_then_back(own_moto: Moto, start_emulator: Any) -> None:
    s3 = own_moto.client()
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    emu = start_emulator(own_moto.endpoint, name, PREFIX)
    port = own_moto.port
    small, large = b"x" * 4096, random.Random(5).randbytes(10 * MiB)

    r = emu.upload(small, "before.txt", "text/plain")
    assert r.status_code == 200, r.text

    own_moto.stop()
    for data, label in ((small, "small (one PUT)"), (large, "10 MiB (multipart)")):
        t0 = time.monotonic()
        r = emu.upload(data, "down.bin", "application/octet-stream")
        elapsed = time.monotonic() - t0
        print(f"store down, {label}: {r.status_code} after {elapsed:.2f}s")
        assert r.status_code == 503, f"{label} with the store down: {r.status_code} {r.text}\n{emu.stderr()}"
        assert r.json()["error"]["code"] == "server.unavailable", r.text
        assert elapsed < 15, f"{label}: 503 took {elapsed:.1f}s"
        assert emu.alive(), f"emulator exited with the store down; stderr:\n{emu.stderr()}"
    health = emu.http.get("/health")
    assert health.status_code == 200, health.text

    own_moto.start(port)  # same port: the emulator is not told anything
    assert own_moto.port == port
    s3 = own_moto.client()
    s3.create_bucket(Bucket=name)  # moto's state did not survive the restart
    for data, filename in ((small, "after.txt"), (large, "after.bin")):
        r = emu.upload(data, filename, "application/octet-stream")
        assert r.status_code == 200, f"after the store came back: {r.status_code} {r.text}\n{emu.stderr()}"
        assert get_bytes(s3, name, r.json()["remote_file_path"]) == data
    assert multipart_uploads(s3, name) == []


# -- 6. memory stays flat on a large streamed upload -----------------------------------------


def test_256mib_upload_streams_in_bounded_memory(
    s3: Any, bucket: str, moto: Moto, start_emulator: Any
) -> None:
    emu = start_emulator(moto.endpoint, bucket, PREFIX)
    size, chunk = 256 * MiB, MiB
    boundary, head, tail = multipart_framing("huge.bin", "application/octet-stream")
    sha = hashlib.sha256()

    def body() -> Iterator[bytes]:
        yield head
        rng = random.Random(6)
        for _ in range(size // chunk):
            block = rng.randbytes(chunk)
            sha.update(block)
            yield block
        yield tail

    r = emu.http.post(
        UPLOAD_PATH,
        headers={
            "x-api-key": API_KEY,
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(len(head) + size + len(tail)),
        },
        content=body(),
        timeout=300,
    )
    assert r.status_code == 200, f"{r.status_code} {r.text}\nstderr:\n{emu.stderr()}"
    peak_kib = emu.vm_hwm_kib()
    print(f"emulator peak RSS after a 256 MiB upload: {peak_kib / 1024:.1f} MiB")
    assert peak_kib < 64 * 1024, f"emulator peak RSS {peak_kib / 1024:.1f} MiB (limit 64 MiB)"

    key = r.json()["remote_file_path"]
    head_obj = s3.head_object(Bucket=bucket, Key=key)
    assert head_obj["ContentLength"] == size
    assert head_obj["ETag"].strip('"').endswith(f"-{size // PART}")
    (listed,) = emu.uploads()
    assert listed["size"] == size
    assert listed["sha256"] == sha.hexdigest()
    # And the bytes in the bucket are those hashed, read back in chunks.
    stored = hashlib.sha256()
    for piece in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(4 * MiB):
        stored.update(piece)
    assert stored.hexdigest() == sha.hexdigest()
    assert multipart_uploads(s3, bucket) == []


def test_a_body_in_tiny_chunks_stays_small_in_memory(
    s3: Any, bucket: str, moto: Moto, start_emulator: Any
) -> None:
    """A client may send its body in chunks of a few bytes (the SDK's upload_file_async sends a
    file line by line; a hostile one sends 16 bytes a chunk). 24 MiB of 16-byte HTTP chunks is
    1.5 million pieces: the emulator copies them into its 8 MiB parts instead of keeping each
    piece (each would cost more than its bytes, and pin the read buffer it was cut from)."""
    emu = start_emulator(moto.endpoint, bucket, PREFIX)
    boundary, head, tail = multipart_framing("tiny.bin", "application/octet-stream")
    piece_size, size = 16, 24 * MiB
    rng = random.Random(9)
    # 64 KiB of distinct 16-byte pieces, sent over and over: the body is that block repeated.
    block = rng.randbytes(64 * 1024)
    framed = b"".join(
        b"10\r\n" + block[i : i + piece_size] + b"\r\n" for i in range(0, len(block), piece_size)
    )
    sha = hashlib.sha256()
    for _ in range(size // len(block)):
        sha.update(block)
    host, port, request_head = raw_upload_head(emu, boundary, "Transfer-Encoding: chunked")
    chunk = lambda data: b"%x\r\n" % len(data) + data + b"\r\n"  # noqa: E731
    with socket.create_connection((host, port), timeout=120) as sock:
        sock.sendall(request_head + chunk(head))
        for _ in range(size // len(block)):
            sock.sendall(framed)
        sock.sendall(chunk(tail) + b"0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            got = sock.recv(65536)
            if not got:
                break
            answer += got
    assert answer.startswith(b"HTTP/1.1 200 "), f"{answer[:300]!r}\nstderr:\n{emu.stderr()}"
    peak_kib = emu.vm_hwm_kib()
    print(f"emulator peak RSS after 24 MiB in 16-byte chunks: {peak_kib / 1024:.1f} MiB")
    assert peak_kib < 48 * 1024, f"emulator peak RSS {peak_kib / 1024:.1f} MiB (limit 48 MiB)"
    (listed,) = emu.uploads()
    assert (listed["size"], listed["sha256"]) == (size, sha.hexdigest())
    stored = s3.get_object(Bucket=bucket, Key=listed["remote_file_path"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == sha.hexdigest()
    assert multipart_uploads(s3, bucket) == []


# -- 7. the bucket does not exist ------------------------------------------------------------


def test_missing_bucket_answers_500(s3: Any, moto: Moto, start_emulator: Any) -> None:
    name = unique_bucket()  # never created
    emu = start_emulator(moto.endpoint, name, PREFIX)
    for data, label in ((b"hello", "small"), (random.Random(7).randbytes(10 * MiB), "10 MiB")):
        r = emu.upload(data, "x.bin", "application/octet-stream")
        assert r.status_code == 500, f"{label}: {r.status_code} {r.text}\nstderr:\n{emu.stderr()}"
        error = r.json()["error"]
        assert error["code"] == "server.internal_error", r.text
        assert isinstance(error["message"], str) and error["message"]
        assert emu.alive(), f"emulator exited; stderr:\n{emu.stderr()}"
    assert emu.uploads() == []
    assert all(e["upload"] is None for e in emu.journal())

    # Once the bucket exists, uploads work without a restart.
    s3.create_bucket(Bucket=name)
    try:
        r = emu.upload(b"hello", "x.txt", "text/plain")
        assert r.status_code == 200, f"{r.status_code} {r.text}\nstderr:\n{emu.stderr()}"
        assert get_bytes(s3, name, r.json()["remote_file_path"]) == b"hello"
    finally:
        empty_bucket(s3, name)


# -- 8. the files API's presigned PUT on S3 --------------------------------------------------


def announce(emu: Emulator, local_file_path: str) -> dict[str, Any]:
    """POST /v2/files with one local_file_path: its FileUpload, pending, with a PUT URL."""
    r = emu.http.post(
        "/v2/files", headers={"x-api-key": API_KEY}, json={"files": [{"local_file_path": local_file_path}]}
    )
    assert r.status_code == 200, f"{r.status_code} {r.text}\nstderr:\n{emu.stderr()}"
    (upload,) = r.json()["files"]
    assert upload["processing_status"] == "pending", upload
    return upload


def processing_status(emu: Emulator, file_uuid: str) -> str:
    r = emu.http.get(f"/v2/files/{file_uuid}/status", headers={"x-api-key": API_KEY})
    assert r.status_code == 200, r.text
    return r.json()["processing_status"]


@pytest.mark.parametrize("source", ["bytes", "path"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sdk_upload_helpers_store_in_the_bucket(
    s3: Any, bucket: str, moto: Moto, start_emulator: Any, tmp_path: Any, kind: str, source: str
) -> None:
    """The official SDK's upload_file / upload_file_async (POST /v2/files, then a PUT of the bytes
    to the presigned file_url) with the emulator storing in S3: the object in the bucket is the
    client's bytes, uploaded in 8 MiB parts, and no multipart upload is left."""
    emu = start_emulator(moto.endpoint, bucket, PREFIX)
    data = random.Random(8).randbytes(20 * MiB + 5)  # three parts: a multipart upload
    if source == "bytes":
        kw: dict[str, Any] = {"file_name": "clip.mp4", "file_content": data}
        name, content_type = "clip.mp4", "video/mp4"
    else:
        # A Path without a name: the helper sends it as "file.png", image/png (its defaults);
        # the async helper streams it through aiofiles, chunked.
        path = tmp_path / "notes.bin"
        path.write_bytes(data)
        kw, name, content_type = {"file_content": path}, "file.png", "image/png"

    client_kw = {"api_key": API_KEY, "base_url": emu.url, "max_retries": 0}
    if kind == "sync":
        with AymaraAI(**client_kw) as client:
            ref = upload_file(client, **kw)
    else:

        async def main() -> Any:
            async with AsyncAymaraAI(**client_kw) as client:
                return await upload_file_async(client, **kw)

        ref = asyncio.run(main())

    key = ref["remote_file_path"]
    parts = key.split("/")
    assert parts[:3] == [PREFIX, "uploads", "default"] and parts[4:] == [name], key
    file_uuid = parts[3]
    obj = s3.get_object(Bucket=bucket, Key=key)
    assert obj["ContentType"] == content_type
    assert obj["ContentLength"] == len(data)
    assert hashlib.sha256(obj["Body"].read()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert obj["ETag"].strip('"').endswith("-3"), obj["ETag"]
    assert multipart_uploads(s3, bucket) == []
    (listed,) = emu.uploads()
    assert (listed["file_uuid"], listed["size"]) == (file_uuid, len(data))
    assert listed["sha256"] == hashlib.sha256(data).hexdigest()
    # Stored: the video is processed over time (the default), the image at once.
    poll(
        lambda: processing_status(emu, file_uuid) == "completed",
        timeout=15,
        what=f"{file_uuid} to be completed; stderr:\n{emu.stderr()}",
    )


@pytest.mark.parametrize("close", ["fin", "rst"])
def test_put_cut_mid_body_leaves_nothing(
    s3: Any, bucket: str, moto: Moto, start_emulator: Any, close: str
) -> None:
    """A presigned PUT whose client goes away after 20 of its 30 MiB: no object, no multipart
    upload left in the bucket, the file still pending; the same URL then takes the whole body."""
    emu = start_emulator(moto.endpoint, bucket, PREFIX)
    upload = announce(emu, "cut.bin")
    file_uuid, url = upload["file_uuid"], httpx.URL(upload["file_url"])
    announced, sent = 30 * MiB, 20 * MiB
    sock = socket.create_connection((url.host, url.port), timeout=30)
    try:
        sock.sendall(
            (
                f"PUT {url.raw_path.decode()} HTTP/1.1\r\n"
                f"Host: {url.host}:{url.port}\r\n"
                "Content-Type: application/octet-stream\r\n"
                f"Content-Length: {announced}\r\n\r\n"
            ).encode()
        )
        rng = random.Random(9)
        for _ in range(sent // MiB):
            sock.sendall(rng.randbytes(MiB))
        poll(
            lambda: multipart_uploads(s3, bucket),
            timeout=15,
            what=f"a multipart upload in progress while the PUT streams in; stderr:\n{emu.stderr()}",
        )
        (in_flight,) = multipart_uploads(s3, bucket)
        assert in_flight["Key"] == f"{PREFIX}/uploads/default/{file_uuid}/cut.bin", in_flight
    finally:
        if close == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    poll(
        lambda: not multipart_uploads(s3, bucket),
        timeout=15,
        what=f"the multipart upload to be aborted after the cut ({close}); stderr:\n{emu.stderr()}",
    )
    assert keys(s3, bucket, f"{PREFIX}/uploads/") == [], emu.stderr()
    assert emu.uploads() == []
    assert processing_status(emu, file_uuid) == "pending"
    assert emu.alive()

    # The client tries again with the same URL and the whole body.
    data = random.Random(10).randbytes(announced)
    r = emu.http.put(upload["file_url"], content=data, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, f"{r.status_code} {r.text}\nstderr:\n{emu.stderr()}"
    key = f"{PREFIX}/uploads/default/{file_uuid}/cut.bin"
    assert hashlib.sha256(get_bytes(s3, bucket, key)).hexdigest() == hashlib.sha256(data).hexdigest()
    assert multipart_uploads(s3, bucket) == []
    assert processing_status(emu, file_uuid) == "completed"
