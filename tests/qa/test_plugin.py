"""The pytest plugin, run in a throw-away pytest session with ``pytester``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.qa.conftest import write_project

CASES = """\
flow: demo
cases:
  thanks:
    press: [1]
    expect: {outcome: done}
  wrong outcome:
    press: [1]
    expect: {outcome: closed}
"""


# Plugins installed next to ivrkit are loaded in each inner session too; hypothesis's costs about 2 s there.
FAST = ("-p", "no:hypothesispytest")


def write_tests(root: Path, text: str, name: str = "demo.test.yaml", folder: str = "flows/tests") -> Path:
    path = root / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    return write_project(pytester.path)


def test_cases_are_collected_and_run(pytester: pytest.Pytester, project: Path) -> None:
    write_tests(project, CASES)
    result = pytester.runpytest("-v", *FAST)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "flows/tests/demo.test.yaml::thanks PASSED*",
        "flows/tests/demo.test.yaml::wrong outcome FAILED*",
    ])


def test_a_failure_shows_expected_actual_the_yaml_line_and_the_transcript(pytester: pytest.Pytester,
                                                                          project: Path) -> None:
    write_tests(project, CASES)
    result = pytester.runpytest(*FAST)
    result.stdout.fnmatch_lines([
        "*_ demo: wrong outcome _*",
        "FAIL flows/tests/demo.test.yaml::wrong outcome (flows/tests/demo.test.yaml:6:3)",
        "  flows/tests/demo.test.yaml:8:23: expect.outcome: the call ended differently",
        "          expect: {outcome: closed}",
        "                            ^",
        "      expected: 'closed'",
        "      actual:   'done'",
        "*caller script: press 1",
        "*transcript:",
        '*played     demo.thanks_play             prompt=demo-thanks language=en  "Thank you."',
        "FAILED flows/tests/demo.test.yaml::wrong outcome*",
    ])


def test_reportinfo_gives_the_yaml_file_and_the_case_line(pytester: pytest.Pytester, project: Path) -> None:
    write_tests(project, CASES)
    reports = pytester.inline_run(*FAST).getreports("pytest_runtest_logreport")
    locations = {report.location for report in reports if report.when == "call"}
    assert locations == {
        ("flows/tests/demo.test.yaml", 2, "demo: thanks"),  # 0-based: the case is on line 3
        ("flows/tests/demo.test.yaml", 5, "demo: wrong outcome"),
    }


def test_a_broken_file_is_a_collection_error_at_its_line(pytester: pytest.Pytester, project: Path) -> None:
    write_tests(project, "flow: demo\ncase:\n  thanks:\n    press: [1]\n    expect: {outcome: done}\n",
                name="broken.test.yaml")
    write_tests(project, "flow: demo\ncases:\n  ok: {press: [1], expect: {outcome: done}}\n")
    result = pytester.runpytest("--continue-on-collection-errors", *FAST)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR collecting flows/tests/broken.test.yaml*",
        "flows/tests/broken.test.yaml:1:1: error: a flow-test file needs 'cases': The cases, by name.",
        "    flow: demo",
        "    ^",
        "flows/tests/broken.test.yaml:2:1: error: unknown key 'case' in a flow-test file",
        "    case:",
        "    ^",
        "    hint: did you mean 'cases'?",
    ])


def test_a_broken_case_fails_alone(pytester: pytest.Pytester, project: Path) -> None:
    write_tests(project, "flow: demo\ncases:\n  ok: {press: [1], expect: {outcome: done}}\n"
                         "  typo: {press: [1], expect: {heard: [demo-thank]}}\n")
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*the case cannot run:",
        "*flows/tests/demo.test.yaml:4:39: error: no flow plays a prompt named 'demo-thank'",
        "*hint: did you mean 'demo-thanks'?",
    ])


def test_flows_with_errors_are_reported_once_per_file(pytester: pytest.Pytester, project: Path) -> None:
    (project / "flows" / "demo.yaml").write_text("flow: demo\nstart: nowhere\nsteps:\n  a: {hangup: true}\n")
    write_tests(project, CASES)
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the flows in * have errors, so no flow test can run:", "*unknown step 'nowhere'*"])


def test_directories_from_the_ini_file(pytester: pytest.Pytester, project: Path) -> None:
    (project / "flows").rename(project / "callflows")
    (project / "prompts").rename(project / "audio")
    pytester.makeini("[pytest]\nivrkit_flows = callflows\nivrkit_prompts = audio\n")
    write_tests(project, CASES, folder="qa")
    pytester.runpytest("-k", "thanks", *FAST).assert_outcomes(passed=1, deselected=1)


def test_directories_from_the_command_line(pytester: pytest.Pytester, project: Path) -> None:
    (project / "flows").rename(project / "callflows")
    write_tests(project, CASES, folder="qa")
    pytester.runpytest("--ivrkit-flows", "callflows", *FAST).assert_outcomes(passed=1, failed=1)
    pytester.runpytest(*FAST).assert_outcomes(errors=1)  # the default flows/ does not exist here


def test_other_yaml_files_are_left_alone(pytester: pytest.Pytester, project: Path) -> None:
    write_tests(project, "not: a flow test\n", name="settings.yaml")
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    pytester.runpytest(*FAST).assert_outcomes(passed=1)
