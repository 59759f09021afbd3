"""aymara-mock from Python: the emulator's binary, a sidecar runner, an admin client and a
pytest plugin.

>>> from aymara_mock import AymaraMock
>>> with AymaraMock(seed=7) as mock:                               # doctest: +SKIP
...     mock.add_rule(respond={"status": 503}, when={"times": 1})
...     ...                                                        # the client under test
...     assert [r["status"] for r in mock.requests()] == [503, 200]

The pytest plugin (``aymara_mock.pytest_plugin``, loaded by pytest on its own once this package
is installed) gives the fixtures ``aymara_mock``, ``aymara_mock_factory`` and ``aymara_client``.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from ._admin import UPLOAD_PATH, AdminClient, AdminError, format_journal
from ._server import AymaraMock, AymaraMockError, find_binary
from ._types import CorsRecord, JournalEntry, Rule, RuleInfo, Scenario, Upload

try:
    #: The package's version, which is the binary's (Cargo.toml's).
    __version__ = _metadata.version("aymara-mock")
except _metadata.PackageNotFoundError:  # imported from the source tree (tests/sdk)
    __version__ = "0+source"

__all__ = [
    "UPLOAD_PATH",
    "AdminClient",
    "AdminError",
    "AymaraMock",
    "AymaraMockError",
    "CorsRecord",
    "JournalEntry",
    "Rule",
    "RuleInfo",
    "Scenario",
    "Upload",
    "find_binary",
    "format_journal",
]
