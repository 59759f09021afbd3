"""The installed package's type hints (py.typed) hold for a user's code under mypy --strict."""

from __future__ import annotations

import subprocess
import sys

USER_CODE = '''
from typing import List, Optional
from aymara_mock import AdminClient, AymaraMock, JournalEntry, Scenario, Upload

def statuses(mock: AymaraMock) -> List[Optional[int]]:
    entries: List[JournalEntry] = mock.wait_for_requests(2, path="/v2/files/-/uploads")
    return [e["status"] for e in entries]

def stored_size(admin: AdminClient, data: bytes) -> int:
    upload: Upload = admin.assert_uploaded_once(data=data)
    return upload["size"]

with AymaraMock(seed=1, max_upload_size="1MiB") as mock:
    rule_id: str = mock.add_rule(respond={"status": 503})
    port: int = mock.port

def scenario_rules(mock: AymaraMock) -> List[str]:
    shipped: List[Scenario] = mock.scenarios()
    code: Optional[str] = mock.requests()[0]["error_code"]
    return mock.use_scenario(shipped[0]["name"])

with AymaraMock(scenarios=["retry-then-succeed"], env={"AYMARA_MOCK_SEED": None}) as named:
    names: List[str] = named.scenario_names
'''

MISUSE = '''
from aymara_mock import AymaraMock
mock = AymaraMock(seed="seven")
size: str = mock.uploads()[0]["size"]
'''


def mypy(tmp_path, code: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "user_code.py"
    source.write_text(code)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         str(source)],
        capture_output=True, text=True,
    )


def test_user_code_type_checks(tmp_path):
    result = mypy(tmp_path, USER_CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_misuse_is_caught_by_the_type_checker(tmp_path):
    result = mypy(tmp_path, MISUSE)
    assert result.returncode == 1, result.stdout
    assert 'Argument "seed" to "AymaraMock" has incompatible type "str"' in result.stdout
    assert 'Incompatible types in assignment (expression has type "int"' in result.stdout
