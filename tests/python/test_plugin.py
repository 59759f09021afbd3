"""The plugin as a user meets it, checked by running test files of its own with pytester: the
report of a failing test, the options, the reset between tests."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def test_failing_test_report_shows_its_journal(pytester):
    pytester.makepyfile(
        test_upload="""
        def test_upload_fails_after_an_outage(aymara_client, aymara_mock):
            aymara_mock.add_rule(id="one-outage", when={"times": 1},
                                 respond={"status": 503, "headers": {"retry-after-ms": "1"}})
            aymara_client.files.upload(file=("hello.txt", b"hello", "text/plain"))
            assert len(aymara_mock.requests()) == 1   # wrong: the SDK retried

        def test_passing(aymara_client, aymara_mock):
            aymara_client.health.check()
        """
    )
    result = pytester.runpytest_subprocess("--aymara-mock-seed", "99")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "aymara-mock: */aymara-mock",  # the report header: which binary is tested
        "*_ test_upload_fails_after_an_outage _*",
        "*- aymara-mock journal (http://127.0.0.1:*, seed 99) -*",
        # status and error.code, the rule that decided, the SDK's retry count
        "  1. POST /v2/files/-/uploads -> 503 server.unavailable  rule=one-outage  retry=0",
        "*x-api-key: ?redacted?",  # fnmatch: [..] is a character class
        "*content-type: multipart/form-data; boundary=*",
        # the retry: which attempt of which call, what was stored, why the rule let it through
        "  2. POST /v2/files/-/uploads -> 200  retry=1  attempt 2 of #1"
        "  stored hello.txt (5 B, text/plain, sha256 2cf24dba5fb0a30e…)",
        "       near miss one-outage: when.times: expected 1, actual 1",
    ])
    # Only the failing test's requests, and no section for the test that passed.
    assert "/health/" not in result.stdout.str()
    assert result.stdout.str().count("aymara-mock journal") == 1


def test_report_of_a_dedicated_server_and_of_an_empty_journal(pytester):
    pytester.makepyfile(
        test_two="""
        def test_two_servers(aymara_mock, aymara_mock_factory):
            own = aymara_mock_factory(api_keys=["k"], seed=5)
            assert own.url != aymara_mock.url
            assert False
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*- aymara-mock journal (http://127.0.0.1:*, seed *) -*",
        "no request received",
        "*- aymara-mock journal (http://127.0.0.1:*, seed 5) -*",
        "no request received",
    ])


def test_session_server_is_shared_and_reset_between_tests(pytester):
    pytester.makepyfile(
        test_reset="""
        urls = []

        def test_first(aymara_mock):
            urls.append(aymara_mock.url)
            aymara_mock.add_rule(id="left-behind", respond={"status": 500})
            import httpx
            httpx.post(aymara_mock.url + "/v2/files/-/uploads", headers={"x-api-key": "k"},
                       files={"file": ("a.txt", b"a")})
            assert len(aymara_mock.requests()) == 1

        def test_second(aymara_mock):
            assert urls == [aymara_mock.url]          # the same server...
            assert aymara_mock.requests() == []       # ...with a clean journal
            assert aymara_mock.rules() == []          # and no rule left from test_first
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_options_from_the_ini_file(pytester, monkeypatch):
    pytester.makeini(
        """
        [pytest]
        aymara_mock_fixtures =
            fixtures/outage.json
        aymara_mock_seed = 31
        """
    )
    (pytester.path / "fixtures").mkdir()
    (pytester.path / "fixtures" / "outage.json").write_text((FIXTURES / "outage.json").read_text())
    pytester.makepyfile(
        test_ini="""
        def test_fixture_rules_and_seed(aymara_mock):
            assert [r["id"] for r in aymara_mock.rules()] == ["outage"]
            assert aymara_mock.seed == 31
        """
    )
    # From another directory: ini paths are relative to the ini file, not to the cwd.
    monkeypatch.chdir(pytester.mkdir("elsewhere"))
    result = pytester.runpytest_subprocess(str(pytester.path))
    result.assert_outcomes(passed=1)


def test_command_line_options_win_over_the_ini_file(pytester):
    pytester.makeini(
        """
        [pytest]
        aymara_mock_seed = 31
        """
    )
    pytester.makepyfile(
        test_cli="""
        def test_fixture_rules_and_seed(aymara_mock):
            assert [r["id"] for r in aymara_mock.rules()] == ["outage"]
            assert aymara_mock.seed == 8
        """
    )
    result = pytester.runpytest_subprocess(
        "--aymara-mock-seed", "8", "--aymara-mock-fixtures", str(FIXTURES / "outage.json")
    )
    result.assert_outcomes(passed=1)


def test_a_wrong_binary_is_a_clear_setup_error(pytester):
    pytester.makepyfile(
        test_bin="""
        def test_needs_the_server(aymara_mock):
            pass
        """
    )
    result = pytester.runpytest_subprocess("--aymara-mock-bin", "/nonexistent/aymara-mock")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*/nonexistent/aymara-mock*"])


def test_dedicated_server_that_cannot_stop_cleanly_fails_the_test(pytester):
    pytester.makepyfile(
        test_kill="""
        import os, signal

        def test_server_killed(aymara_mock_factory):
            server = aymara_mock_factory()
            os.kill(server.pid, signal.SIGKILL)
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*exited with code -9*"])


def test_a_failing_fixture_of_ones_own_gets_the_journal_too(pytester):
    pytester.makepyfile(
        test_setup="""
        import httpx, pytest

        @pytest.fixture
        def uploaded(aymara_mock):
            r = httpx.post(aymara_mock.url + "/v2/files/-/uploads", files={"file": ("a", b"a")})
            assert r.status_code == 200   # fails: no API key

        def test_uses_it(uploaded):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*- aymara-mock journal (http://127.0.0.1:*, seed *) -*",
        "  1. POST /v2/files/-/uploads -> 401 auth.invalid_key",
    ])
