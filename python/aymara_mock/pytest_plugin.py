"""pytest plugin of aymara-mock, registered through the ``pytest11`` entry point.

Fixtures:

- ``aymara_mock``: an :class:`~aymara_mock.AymaraMock` shared by the whole session (one per
  xdist worker), reset (``POST /__admin/reset``) before each test that uses it, then with the
  scenarios of the test's ``@pytest.mark.aymara_scenario("NAME", …)`` marks switched on
  (``aymara_mock.use_scenario("NAME")`` does the same from inside a test);
- ``aymara_mock_session``: the same server, not reset (for session-scoped fixtures of your own);
- ``aymara_mock_factory``: ``aymara_mock_factory(**options)`` starts a dedicated server with its
  own options (the keyword arguments of ``AymaraMock``), stopped after the test, which fails if
  it does not exit 0 or printed more than its ready line on stdout;
- ``aymara_client``: an ``aymara_ai.AymaraAI`` pointed at ``aymara_mock`` (skips the test when
  the SDK is not installed).

Options (command line, or the ini key in pytest.ini / pyproject.toml):

- ``--aymara-mock-bin`` / ``aymara_mock_bin``: the binary (the option, else ``$AYMARA_MOCK_BIN``,
  else the ini key, else the one the wheel installed);
- ``--aymara-mock-fixtures`` / ``aymara_mock_fixtures``: fixture files or directories of the
  session server (repeatable; ini: one a line, relative to the ini file);
- ``--aymara-mock-scenario`` / ``aymara_mock_scenarios``: shipped scenarios of the session
  server, by name (repeatable; ini: one a line or space-separated);
- ``--aymara-mock-args`` / ``aymara_mock_args``: any other ``serve`` flags, split like a shell
  line (``--video-processing-time 0s --log-level debug``), for every server the plugin starts;
- ``--aymara-mock-seed`` / ``aymara_mock_seed``: RNG seed of every server the plugin starts
  (to replay a flaky run: the seed in use is in each failing test's report).

An option on the command line replaces its ini key. ``AYMARA_MOCK_*`` environment variables
reach the servers (flags win over them); the report header lists those it sees.

A failing test that used one of these servers gets a report section "aymara-mock journal": every
request it received during the test (what the client sent, the status and ``error.code``, the
rule that fired or the near misses, retries, ``duplicate_of``; credentials redacted).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, List, Optional

import pytest

from ._admin import format_journal
from ._server import (
    AymaraMock,
    AymaraMockError,
    describe_environment,
    find_binary,
    server_environment,
)

__all__ = ["AymaraMockFactory"]

#: The servers a test used, for its failure report.
_USED = pytest.StashKey[List[AymaraMock]]()

#: The API key the ``aymara_client`` fixture sends (any non-empty key is accepted by default).
CLIENT_API_KEY = "aymara-mock-test-key"

AymaraMockFactory = Callable[..., AymaraMock]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aymara-mock", "aymara-mock emulator")
    group.addoption(
        "--aymara-mock-bin",
        dest="aymara_mock_bin",
        metavar="PATH",
        help="aymara-mock binary (default: $AYMARA_MOCK_BIN, else the one the wheel installed)",
    )
    group.addoption(
        "--aymara-mock-fixtures",
        dest="aymara_mock_fixtures",
        action="append",
        metavar="PATH",
        help="fixture file or directory for the session server (repeatable)",
    )
    group.addoption(
        "--aymara-mock-seed",
        dest="aymara_mock_seed",
        type=int,
        metavar="N",
        help="seed of the rule probabilities' RNG in every server the plugin starts",
    )
    group.addoption(
        "--aymara-mock-scenario",
        dest="aymara_mock_scenarios",
        action="append",
        metavar="NAME",
        help="shipped scenario for the session server, by name (repeatable; "
        "`aymara-mock scenarios` lists them)",
    )
    group.addoption(
        "--aymara-mock-args",
        dest="aymara_mock_args",
        metavar="ARGS",
        help="other serve flags for every server the plugin starts, one shell-quoted string: "
        "--aymara-mock-args='--video-processing-time 0s'",
    )
    parser.addini("aymara_mock_bin", "aymara-mock binary (relative to the ini file)", default="")
    parser.addini(
        "aymara_mock_scenarios",
        "shipped scenarios of the session server, by name (one a line, or space-separated)",
        type="args",
        default=[],
    )
    parser.addini(
        "aymara_mock_args",
        "other serve flags for every server the plugin starts (shell-quoted)",
        type="args",
        default=[],
    )
    parser.addini(
        "aymara_mock_fixtures",
        "fixture files or directories of the session server, one a line (relative to the ini file)",
        type="linelist",
        default=[],
    )
    parser.addini("aymara_mock_seed", "seed of the rule probabilities' RNG", default="")


def _ini_path(config: pytest.Config, value: str) -> Path:
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return base / value


def _binary(config: pytest.Config) -> Optional[Path]:
    """The command line, else $AYMARA_MOCK_BIN, else the ini file, else the installed one."""
    cli = config.getoption("aymara_mock_bin")
    if cli:
        return Path(cli)
    if os.environ.get("AYMARA_MOCK_BIN"):
        return Path(os.environ["AYMARA_MOCK_BIN"])
    ini = str(config.getini("aymara_mock_bin")).strip()
    if ini:
        return _ini_path(config, ini)
    return None  # AymaraMock finds the installed one


def _seed(config: pytest.Config) -> Optional[int]:
    cli = config.getoption("aymara_mock_seed")
    if cli is not None:
        return int(cli)
    ini = str(config.getini("aymara_mock_seed")).strip()
    return int(ini) if ini else None


def _scenarios(config: pytest.Config) -> List[str]:
    cli = config.getoption("aymara_mock_scenarios")
    if cli:
        return [str(name) for name in cli]
    return [str(name) for name in config.getini("aymara_mock_scenarios")]


def _args(config: pytest.Config) -> List[str]:
    cli = config.getoption("aymara_mock_args")
    if cli is not None:
        try:
            return shlex.split(cli)
        except ValueError as exc:  # an unclosed quote
            raise pytest.UsageError(f"--aymara-mock-args {cli!r}: {exc}") from None
    return [str(arg) for arg in config.getini("aymara_mock_args")]


def _fixtures(config: pytest.Config) -> List[Path]:
    cli = config.getoption("aymara_mock_fixtures")
    if cli:
        return [Path(p) for p in cli]
    return [_ini_path(config, p) for p in config.getini("aymara_mock_fixtures")]


def _used(node: pytest.Item) -> List[AymaraMock]:
    return node.stash.setdefault(_USED, [])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "aymara_scenario(*names): switch these shipped scenarios on in the aymara_mock fixture "
        "for this test (undone by the reset before the next one)",
    )


def pytest_report_header(config: pytest.Config) -> List[str]:
    binary = _binary(config)
    if binary is None:
        try:
            binary = find_binary()
        except AymaraMockError as exc:
            return [f"aymara-mock: {exc}"]
    lines = [f"aymara-mock: {binary}"]
    env = describe_environment(server_environment())
    if env:
        lines.append(f"aymara-mock environment: {env}")
    return lines


@pytest.fixture(scope="session")
def aymara_mock_session(pytestconfig: pytest.Config) -> Iterator[AymaraMock]:
    """The session's server (fixtures and seed from the plugin's options), not reset."""
    server = AymaraMock(
        fixtures=_fixtures(pytestconfig),
        scenarios=_scenarios(pytestconfig),
        seed=_seed(pytestconfig),
        binary=_binary(pytestconfig),
        extra_args=_args(pytestconfig),
    )
    with server:
        yield server


@pytest.fixture
def aymara_mock(aymara_mock_session: AymaraMock, request: pytest.FixtureRequest) -> AymaraMock:
    """The session's server, reset before this test: only the fixture rules, counters at 0, an
    empty journal and storage; then the scenarios of the test's ``aymara_scenario`` marks
    switched on, in order (an unknown name is an error of the test's setup)."""
    aymara_mock_session.reset()
    _used(request.node).append(aymara_mock_session)
    for mark in request.node.iter_markers("aymara_scenario"):
        for name in mark.args:
            aymara_mock_session.use_scenario(str(name))
    return aymara_mock_session


@pytest.fixture
def aymara_mock_factory(
    pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> Iterator[AymaraMockFactory]:
    """``aymara_mock_factory(**options)``: a started server of its own for this test.

    ``options`` are ``AymaraMock``'s keyword arguments; the binary and the seed default to the
    plugin's options, and the plugin's ``aymara_mock_args`` come before ``extra_args``; the
    fixtures and scenarios do not (give ``fixtures=`` / ``scenarios=`` yourself). Every server
    is stopped after the test; one that does not exit 0 on SIGTERM fails it.
    """
    servers: List[AymaraMock] = []

    def start(**options: Any) -> AymaraMock:
        options.setdefault("binary", _binary(pytestconfig))
        options.setdefault("seed", _seed(pytestconfig))
        options["extra_args"] = _args(pytestconfig) + list(options.get("extra_args", ()))
        server = AymaraMock(**options).start()
        servers.append(server)
        _used(request.node).append(server)
        return server

    yield start

    problems = []
    for server in servers:
        already_stopped = server.returncode is not None
        code = server.stop(check=False)
        if already_stopped:
            continue  # the test stopped it and saw the code
        if code != 0:
            problems.append(f"{server!r} exited with code {code}; stderr:\n{server.stderr()}")
        elif server.extra_stdout:
            problems.append(f"{server!r} printed on stdout after its ready line: "
                            f"{server.extra_stdout!r}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def aymara_client(aymara_mock: AymaraMock) -> Iterator[Any]:
    """An ``aymara_ai.AymaraAI`` client of ``aymara_mock`` (skipped without the SDK)."""
    aymara_ai = pytest.importorskip("aymara_ai", reason="the aymara-ai-sdk package is not installed")
    with aymara_ai.AymaraAI(api_key=CLIENT_API_KEY, base_url=aymara_mock.url) as client:
        yield client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    # Setup too: a fixture of the user's that talks to the emulator may be what failed.
    if report.when not in ("setup", "call") or not report.failed:
        return
    for server in item.stash.get(_USED, []):
        title = f"aymara-mock journal ({server.url}, seed {server.seed})"
        if not server.alive():
            text = f"the server is not running (exit code {server.returncode})\n{server.stderr()}"
        else:
            try:
                entries = server.requests()
                text = format_journal(entries) or "no request received"
            except Exception as exc:  # the report must not fail because the server did
                text = f"could not read the journal: {exc!r}\n{server.stderr()}"
        report.sections.append((title, text))
