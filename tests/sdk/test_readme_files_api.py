"""The README's files-API shell example runs as written: announce a file, PUT its bytes to
the presigned URL, ask for its status (bash, curl and python3, as a reader would run it;
only `localhost:8000` becomes the test server's address)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sidecar import REPO_ROOT


def files_api_example() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## The files API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks, "no sh block in the README's files API section"
    return blocks[0]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the example uses curl")
def test_the_readme_files_api_example_runs(start_mock, tmp_path: Path) -> None:
    server = start_mock()
    script = files_api_example()
    assert "localhost:8000" in script
    host_port = server.url.removeprefix("http://")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace("localhost:8000", host_port)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    # What the README shows, line for line where it is not a uuid or a signature.
    assert '"processing_status":"pending"' in out, out
    assert "HTTP/1.1 200 OK" in out, out
    etag = hashlib.sha256(b"hello").hexdigest()[:32]
    assert re.search(rf'(?im)^etag: "{etag}"\r?$', out), out
    assert etag == "2cf24dba5fb0a30e26e83b2ac5b9e29e" and f'etag: "{etag}"' in script
    (stored,) = server.uploads()
    assert (stored["filename"], stored["content_type"], stored["size"]) == ("clip.mp4", "video/mp4", 5)
    assert stored["sha256"] == hashlib.sha256(b"hello").hexdigest()
    status_line = out.strip().splitlines()[-1]
    assert status_line.startswith(f'{{"file_uuid":"{stored["file_uuid"]}","processing_status":'), out
