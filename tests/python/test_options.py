"""Any server flag from pytest (the ini key and the option taking extra arguments), the rule for
``AYMARA_MOCK_*`` variables, and shipped scenarios by name: session-wide and per test."""

from __future__ import annotations

import pytest

from aymara_mock import AdminError, AymaraMock, AymaraMockError

VIDEO_TEST = """
from aymara_ai.lib.uploads import upload_file

def test_video_status(aymara_client, aymara_mock):
    ref = upload_file(aymara_client, file_name="clip.mp4", file_content=b"\\0" * 4096)
    file_uuid = ref["remote_file_path"].split("/")[2]
    status = aymara_client.files.get_status(file_uuid)
    print("processing_status:", status.processing_status)
    assert status.processing_status == "completed"
"""


def test_a_server_flag_from_the_ini_file_makes_videos_complete_at_once(pytester):
    pytester.makeini(
        """
        [pytest]
        aymara_mock_args = --video-processing-time 0s
        """
    )
    pytester.makepyfile(test_video=VIDEO_TEST)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_without_the_flag_a_video_is_still_processing(pytester):
    """The control for the test above: the default processing time is seconds."""
    pytester.makepyfile(test_video=VIDEO_TEST)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["processing_status: pending"])


def test_the_command_line_option_replaces_the_ini_key(pytester):
    pytester.makeini(
        """
        [pytest]
        aymara_mock_args = --video-processing-time 1h
        """
    )
    pytester.makepyfile(test_video=VIDEO_TEST)
    result = pytester.runpytest_subprocess(
        "--aymara-mock-args=--video-processing-time 0s --journal-size 50"
    )
    result.assert_outcomes(passed=1)


def test_the_plugins_args_reach_dedicated_servers_too(pytester):
    pytester.makepyfile(
        test_argv="""
        def test_argv(aymara_mock, aymara_mock_factory):
            own = aymara_mock_factory(extra_args=["--bucket", "mine"])
            assert aymara_mock.argv[-2:] == ["--journal-size", "50"]
            assert own.argv[-4:] == ["--journal-size", "50", "--bucket", "mine"]
        """
    )
    pytester.runpytest_subprocess("--aymara-mock-args", "--journal-size 50").assert_outcomes(
        passed=1
    )


def test_aymara_mock_variables_reach_the_server_and_the_header_lists_them(pytester, monkeypatch):
    monkeypatch.setenv("AYMARA_MOCK_VIDEO_PROCESSING_TIME", "0s")
    # Only this key is accepted now: the aymara_client fixture's, so the test still passes.
    monkeypatch.setenv("AYMARA_MOCK_API_KEYS", "aymara-mock-test-key")
    pytester.makepyfile(test_video=VIDEO_TEST)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "aymara-mock environment: AYMARA_MOCK_API_KEYS=?redacted? "
        "AYMARA_MOCK_VIDEO_PROCESSING_TIME=0s",
    ])
    assert "aymara-mock-test-key" not in result.stdout.str()


def test_an_option_given_to_aymara_mock_wins_over_its_variable(monkeypatch):
    monkeypatch.setenv("AYMARA_MOCK_SEED", "5")
    monkeypatch.setenv("AYMARA_MOCK_LOG_FORMAT", "json")  # the seed is read from JSON logs too
    with AymaraMock() as from_env:
        assert from_env.seed == 5
    with AymaraMock(seed=6) as given:
        assert given.seed == 6
    # env= adds variables, and None removes one.
    with AymaraMock(env={"AYMARA_MOCK_SEED": None, "AYMARA_MOCK_BUCKET": "b"}) as unset:
        assert unset.seed != 5  # a random seed, not the variable's


def test_the_admin_token_from_the_environment_is_used_by_the_admin_client(monkeypatch):
    monkeypatch.setenv("AYMARA_MOCK_ADMIN_TOKEN", "from-env")
    with AymaraMock() as mock:
        assert mock.rules() == []  # 401 without the token
        assert mock.admin_token == "from-env"


# -- scenarios by name -----------------------------------------------------------------------


def test_scenarios_by_name_for_a_server_of_ones_own():
    with AymaraMock(scenarios=["retry-then-succeed"]) as mock:
        assert [r["source"] for r in mock.rules()] == ["scenario:retry-then-succeed"]
        names = [s["name"] for s in mock.scenarios()]
        assert "retry-then-succeed" in names and "stored-but-500" in names


def test_an_unknown_scenario_fails_the_start_naming_those_that_exist():
    with pytest.raises(AymaraMockError) as info:
        AymaraMock(scenarios=["retry-then-suceed"]).start()
    assert "exited with code 2" in str(info.value)
    assert "retry-then-succeed" in str(info.value)


SCENARIO_TEST = """
import pytest
from aymara_ai import AymaraAI

def statuses(mock):
    return [e["status"] for e in mock.requests("/v2/files/-/uploads")]

@pytest.mark.aymara_scenario("retry-then-succeed")
def test_marked(aymara_mock):
    AymaraAI(api_key="k", base_url=aymara_mock.url).files.upload(file=b"x")
    assert statuses(aymara_mock) == [503, 503, 200]

def test_not_marked_gets_none_of_it(aymara_mock):
    assert aymara_mock.rules() == []
    AymaraAI(api_key="k", base_url=aymara_mock.url).files.upload(file=b"x")
    assert statuses(aymara_mock)[-1] == 200

def test_switched_on_inside_the_test(aymara_mock):
    ids = aymara_mock.use_scenario("retry-then-succeed")
    assert [r["id"] for r in aymara_mock.rules()][: len(ids)] == ids
    AymaraAI(api_key="k", base_url=aymara_mock.url).files.upload(file=b"x")
    assert statuses(aymara_mock) == [503, 503, 200]

def test_after_it_the_reset_switched_it_off(aymara_mock):
    assert aymara_mock.rules() == []

@pytest.mark.aymara_scenario("no-such-scenario")
def test_unknown_name_is_a_setup_error(aymara_mock):
    pass
"""


def test_a_scenario_per_test_by_marker_or_method_undone_by_the_reset(pytester):
    pytester.makepyfile(test_scenarios=SCENARIO_TEST)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*AdminError*404*no-such-scenario*"])


def test_session_scenarios_from_the_ini_file_and_the_command_line(pytester):
    pytester.makeini(
        """
        [pytest]
        aymara_mock_scenarios =
            stored-but-500
        """
    )
    pytester.makepyfile(
        test_session="""
        def test_session_scenarios(aymara_mock, pytestconfig):
            sources = {r["source"] for r in aymara_mock.rules()}
            assert sources == {"scenario:" + pytestconfig.getoption("expected")}
        """,
        conftest="""
        def pytest_addoption(parser):
            parser.addoption("--expected")
        """,
    )
    pytester.runpytest_subprocess("--expected", "stored-but-500").assert_outcomes(passed=1)
    pytester.runpytest_subprocess(
        "--expected", "forbidden-key", "--aymara-mock-scenario", "forbidden-key"
    ).assert_outcomes(passed=1)


def test_use_scenario_names_the_known_ones_when_the_name_is_wrong():
    with AymaraMock() as mock:
        with pytest.raises(AdminError) as info:
            mock.use_scenario("retry-then-suceed")
    assert info.value.status_code == 404
    assert "retry-then-succeed" in str(info.value)
