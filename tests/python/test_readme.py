"""The README's "From Python" examples run as written, from a folder outside the clone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def from_python_blocks(language: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def test_the_readme_tests_pass(pytester):
    tests = [block for block in from_python_blocks("python") if "def test_" in block]
    assert len(tests) == 2
    assert all(len(test.strip().splitlines()) <= 10 for test in tests)
    pytester.makepyfile(**{f"test_readme_{n}": test for n, test in enumerate(tests)})
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_the_readme_ini_makes_videos_complete_at_once(pytester):
    (ini,) = from_python_blocks("ini")
    pytester.makeini(ini)
    pytester.makepyfile(
        test_video="""
        from aymara_ai.lib.uploads import upload_file

        def test_video_is_completed_at_once(aymara_client):
            ref = upload_file(aymara_client, file_name="clip.mp4", file_content=b"\\0" * 4096)
            file_uuid = ref["remote_file_path"].split("/")[2]
            assert aymara_client.files.get_status(file_uuid).processing_status == "completed"
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_the_readme_context_manager_example_runs(tmp_path, monkeypatch):
    (example,) = [block for block in from_python_blocks("python") if "def test_" not in block]
    from aymara_ai import AymaraAI

    def run_the_client_under_test(base_url):
        AymaraAI(api_key="k", base_url=base_url).files.upload(file=b"x")

    monkeypatch.chdir(tmp_path)  # nothing of the clone is needed
    exec(compile(example, "README.md", "exec"),
         {"run_the_client_under_test": run_the_client_under_test})
