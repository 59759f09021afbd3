"""What `pip install aymara-mock` gives: the release binary on PATH, found by the module."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import aymara_mock

CARGO_TOML = Path(__file__).resolve().parents[2] / "Cargo.toml"


def cargo_version() -> str:
    text = CARGO_TOML.read_text()
    package = text.split("[package]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', package, re.MULTILINE)
    assert match, f"no version in {CARGO_TOML}"
    return match.group(1)


def test_binary_on_path_is_the_wheels_and_has_cargos_version():
    on_path = shutil.which("aymara-mock")
    assert on_path is not None
    # Installed by the wheel into this environment's scripts directory, nowhere else.
    assert Path(on_path).parent == Path(sys.executable).parent
    assert aymara_mock.find_binary() == Path(on_path)
    out = subprocess.run([on_path, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"aymara-mock {cargo_version()}"
    assert metadata.version("aymara-mock") == aymara_mock.__version__ == cargo_version()


def test_no_rust_toolchain_and_no_build_tree_needed():
    """The suite runs with a PATH that has no cargo and no target/ directory (run.sh)."""
    assert shutil.which("cargo") is None
    assert shutil.which("rustc") is None
    for entry in os.environ["PATH"].split(os.pathsep):
        assert "target" not in Path(entry).parts, entry
    assert "target" not in Path(aymara_mock.find_binary()).resolve().parts
    assert "AYMARA_MOCK_BIN" not in os.environ


def test_type_hints_are_shipped():
    package_dir = Path(aymara_mock.__file__).parent
    assert (package_dir / "py.typed").is_file()
    assert "target" not in package_dir.resolve().parts  # the installed copy, not the source


def test_pytest_plugin_is_registered_by_entry_point(pytestconfig):
    (entry_point,) = [
        ep for ep in metadata.entry_points(group="pytest11") if ep.name == "aymara_mock"
    ]
    assert entry_point.value == "aymara_mock.pytest_plugin"
    assert pytestconfig.pluginmanager.has_plugin("aymara_mock")
