"""The README's "From Python" examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def from_python_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_the_readme_test_passes(pytester):
    test, _ = from_python_blocks()
    assert len(test.strip().splitlines()) <= 10
    pytester.makepyfile(test_from_readme=test)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_the_readme_context_manager_example_runs(monkeypatch):
    _, example = from_python_blocks()
    from aymara_ai import AymaraAI

    def run_the_client_under_test(base_url):
        AymaraAI(api_key="k", base_url=base_url).files.upload(file=b"x")

    monkeypatch.chdir(ROOT)  # its fixture path is relative to the repo
    exec(compile(example, "README.md", "exec"),
         {"run_the_client_under_test": run_the_client_under_test})
