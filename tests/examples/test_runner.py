"""The example runner can fail: each broken example below makes it exit 1 (2 for a malformed
file), naming the block's line, and the same example mended passes. Runs in the venv that
tests/examples/run.sh makes (the wheel's `aymara-mock` on PATH)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

RUNNER = Path(__file__).with_name("run_examples.py")
FENCE = "`" * 3


def doc(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(textwrap.dedent(body).replace("```", FENCE))
    return path


def run_on(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUNNER), str(path)], capture_output=True, text=True, timeout=300)


GOOD_AND_BROKEN = {
    "a shell command that fails": (
        "```sh\ntrue\n```\n",
        "```sh\nfalse\n```\n",
    ),
    "output that differs from what the example prints": (
        "```sh\necho hello world\n```\n<!-- example: output -->\n```text\nhello …\n```\n",
        "```sh\necho hello world\n```\n<!-- example: output -->\n```text\ngoodbye …\n```\n",
    ),
    "browser code that does not parse": (
        "<!-- example: skip: runs in a web page -->\n```js\nconst r = await fetch('/health');\n```\n",
        "<!-- example: skip: runs in a web page -->\n```js\nconst r = await fetch('/health';\n```\n",
    ),
    "browser code not marked skip": (
        "<!-- example: skip: runs in a web page -->\n```js\nconsole.log(1);\n```\n",
        "```js\nconsole.log(1);\n```\n",
    ),
    "a compose entrypoint whose folded line starts with &&": (
        """\
        <!-- example: skip: needs a container engine -->
        ```yaml
        services:
          make-bucket:
            image: minio/mc:RELEASE.2025-08-13T08-35-41Z
            entrypoint: >
              sh -c "until true; do sleep 1; done &&
              echo made"
        ```
        """,
        """\
        <!-- example: skip: needs a container engine -->
        ```yaml
        services:
          make-bucket:
            image: minio/mc:RELEASE.2025-08-13T08-35-41Z
            entrypoint: >
              sh -c "until true; do sleep 1; done
                     && echo made"
        ```
        """,
    ),
    "an image without a version": (
        "<!-- example: skip: needs a container engine -->\n```yaml\nservices:\n  s3:\n    image: minio/minio:RELEASE.2025-04-22T22-12-26Z\n```\n",
        "<!-- example: skip: needs a container engine -->\n```yaml\nservices:\n  s3:\n    image: minio/minio\n```\n",
    ),
    "a fixture with a typo": (
        '```json\n{"rules": [{"id": "x", "respond": {"status": 503}}]}\n```\n',
        '```json\n{"rules": [{"id": "x", "respond": {"stauts": 503}}]}\n```\n',
    ),
    "a pytest example that fails": (
        "```python\ndef test_it():\n    assert 1 + 1 == 2\n```\n",
        "```python\ndef test_it():\n    assert 1 + 1 == 3\n```\n",
    ),
    "a skipped shell block with a syntax error": (
        "<!-- example: skip: talks to a real bucket -->\n```sh\nif true; then echo; fi\n```\n",
        "<!-- example: skip: talks to a real bucket -->\n```sh\nif true; then echo\n```\n",
    ),
    "an example that needs a server the runner did not start": (
        "<!-- example: server -->\n```sh\ncurl -sf localhost:8000/health\n```\n",
        "```sh\ncurl -sf --max-time 2 localhost:8000/health\n```\n",
    ),
}


@pytest.mark.parametrize("case", sorted(GOOD_AND_BROKEN))
def test_a_broken_example_fails_and_the_mended_one_passes(case: str, tmp_path: Path) -> None:
    good, broken = GOOD_AND_BROKEN[case]
    ok = run_on(doc(tmp_path, "# Doc\n\n## One\n\n" + textwrap.dedent(good)))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert any(line.startswith(("ok ", "skip ")) for line in ok.stdout.splitlines()), ok.stdout
    bad = run_on(doc(tmp_path, "# Doc\n\n## One\n\n" + textwrap.dedent(broken)))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL " in bad.stdout and "doc.md:" in bad.stdout, bad.stdout
    assert "examples: 0 ran, 1 failed" in bad.stdout or ", 1 failed" in bad.stdout, bad.stdout


def test_a_block_without_a_language_is_refused(tmp_path: Path) -> None:
    done = run_on(doc(tmp_path, "## One\n\n```\necho hi\n```\n"))
    assert done.returncode == 2
    assert "doc.md:3" in done.stderr and "language" in done.stderr


def test_a_skip_needs_a_reason(tmp_path: Path) -> None:
    done = run_on(doc(tmp_path, "## One\n\n<!-- example: skip -->\n```sh\necho hi\n```\n"))
    assert done.returncode == 2
    assert "needs a reason" in done.stderr


def test_examples_run_outside_the_clone_without_cargo(tmp_path: Path) -> None:
    root = RUNNER.parents[2]
    script = (
        f'case "$PWD/" in {root}/*) echo inside the clone;; *) echo outside the clone;; esac\n'
        'command -v cargo > /dev/null && echo cargo on PATH || echo no cargo\n'
        'command -v aymara-mock > /dev/null && echo aymara-mock on PATH\n'
    )
    expected = "outside the clone\nno cargo\naymara-mock on PATH\n"
    done = run_on(doc(tmp_path, f"## One\n\n```sh\n{script}```\n<!-- example: output -->\n```text\n{expected}```\n"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "output as shown" in done.stdout
