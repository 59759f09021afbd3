"""Copied by tests/sdk/upstream.sh --seed-files into the unpacked sdist as tests/upstream_seed.py.

The SDK's generated tests call `files.get`, `get_status`, `get_frames` and `delete` with the
placeholder uuid "file_uuid", which Prism (the mock they were written for) answers with an
example whatever the uuid. A stateful emulator answers 404 for a file it never stored, so
--seed-files puts `seeded_file_uuid()` in place of each placeholder: a video uploaded for that
one call (as a client would, POST /v2/files then a PUT to its presigned URL) and, with the
server's --video-processing-time 0s, processed at once, so that its frames exist too.
"""

from __future__ import annotations

import os

import httpx

SEED_NAME = "seed.mp4"
SEED_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(1000)


def seeded_file_uuid() -> str:
    """The file_uuid of a freshly stored video on the server at TEST_API_BASE_URL."""
    base_url = os.environ["TEST_API_BASE_URL"]
    with httpx.Client(timeout=10) as http:
        created = http.post(
            f"{base_url}/v2/files",
            headers={"x-api-key": "seed"},
            json={"files": [{"local_file_path": SEED_NAME, "content_type": "video/mp4"}]},
        )
        created.raise_for_status()
        (upload,) = created.json()["files"]
        put = http.put(upload["file_url"], content=SEED_BYTES, headers={"content-type": "video/mp4"})
        put.raise_for_status()
    return upload["file_uuid"]
