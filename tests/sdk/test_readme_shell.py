"""The README's shell examples run as written (bash, curl and python3, as a reader would run
them): "Try it" (an upload) and the files API's (announce a file, PUT its bytes to the
presigned URL, ask for its status). Only the address changes: `localhost:8000` and
`127.0.0.1:8000` become the test server's, and "Try it"'s `cargo run --release &` line is left
out (the test server is already running, built from the same source)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sidecar import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the examples use curl")


def first_sh_block(heading: str) -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks, f"no sh block in the README's {heading!r} section"
    return blocks[0]


def run_example(script: str, server, cwd: Path) -> str:
    host_port = server.url.removeprefix("http://")
    script = script.replace("localhost:8000", host_port).replace("127.0.0.1:8000", host_port)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def test_the_readme_try_it_example_runs(start_mock, tmp_path: Path) -> None:
    script = first_sh_block("Try it")
    lines = script.splitlines()
    assert lines[0].startswith("cargo run --release &"), lines[0]
    server = start_mock()
    out = run_example("\n".join(lines[1:]), server, tmp_path)
    answer = json.loads(out)
    # The fields the README shows under it, in its order.
    assert list(answer)[:4] == ["local_file_path", "file_uuid", "file_url", "remote_file_path"]
    assert answer["remote_file_path"] == f"uploads/ws1/{answer['file_uuid']}/video.mp4"
    assert answer["content_type"] == "video/mp4"
    assert answer["processing_status"] == "completed"
    sent = (tmp_path / "video.mp4").read_bytes()
    assert len(sent) == 100_000
    assert Path(answer["local_file_path"]).read_bytes() == sent
    (stored,) = server.uploads()
    assert stored["sha256"] == hashlib.sha256(sent).hexdigest()


def test_the_readme_files_api_example_runs(start_mock, tmp_path: Path) -> None:
    server = start_mock()
    script = first_sh_block("The files API")
    assert "localhost:8000" in script
    out = run_example(script, server, tmp_path)
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
