"""Each expectation kind passing and failing, the checks that come with every case, and the setup reaching the call."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from ivrkit.flow.diagnostics import Location
from ivrkit.qa.expect import VarExpected
from ivrkit.qa.runner import BROKEN, CRASHED, FAILED, PASSED, CaseResult, Project, failure_report, matches, run_case
from tests.qa.conftest import Load, Run

ALL_KINDS = """\
flow: demo
cases:
  thanks:
    press: [1]
    expect:
      heard: [demo-menu, demo-thanks]
      heard_includes: [demo-thanks]
      not_heard: [demo-invalid]
      interrupted: []
      steps: [hours_check, menu, thanks, thanks_play]
      steps_include: [menu, demo.thanks_play]
      steps_exclude: [queue_it]
      vars: {choice: one, count: 3, left: null}
      outcome: done
"""


def one(results: dict[str, CaseResult]) -> CaseResult:
    (result,) = results.values()
    return result


def test_every_kind_passes_when_the_call_matches(run: Run) -> None:
    result = one(run(ALL_KINDS))
    assert (result.status, result.failures) == (PASSED, [])
    assert result.result is not None and result.result.outcome == "done"


@pytest.mark.parametrize(
    "expect, label, line_col, message, shown",
    [
        ("heard: [demo-menu, demo-invalid, demo-thanks]", "expect.heard", "6:14",
         "the prompts heard differ (- expected, + actual)", " demo-menu\n-demo-invalid\n demo-thanks"),
        ("heard_includes: [demo-thanks, demo-menu]", "expect.heard_includes", "6:37",
         "'demo-menu' was not heard after 'demo-thanks'", "actual: [demo-menu, demo-thanks]"),
        ("heard_includes: [demo-invalid]", "expect.heard_includes", "6:24", "'demo-invalid' was never heard", ""),
        ("not_heard: [demo-invalid, demo-thanks]", "expect.not_heard", "6:33", "'demo-thanks' was heard (1x)", ""),
        ("interrupted: [demo-menu]", "expect.interrupted", "6:20",
         "the prompts interrupted differ (- expected, + actual)", "-demo-menu"),
        ("steps: [hours_check, menu, thanks]", "expect.steps", "6:14",
         "the steps entered differ (- expected, + actual)", " thanks\n+thanks_play"),
        ("steps_include: [thanks, menu]", "expect.steps_include", "6:31", "'menu' was not entered after 'thanks'",
         "actual: [hours_check, menu, thanks, thanks_play]"),
        ("steps_exclude: [thanks]", "expect.steps_exclude", "6:23", "'thanks' was entered (1x)", ""),
        ("vars: {choice: two}", "expect.vars.choice", "6:22", "vars.choice is 'one'",
         "expected: 'two'\nactual: 'one'"),
        ("vars: {count: 4}", "expect.vars.count", "6:21", "vars.count is 3", "expected: 4"),
        ("vars: {account: '1234'}", "expect.vars.account", "6:23", "vars.account is (not set)", "expected: '1234'"),
        ("vars: {choice: null}", "expect.vars.choice", "6:22", "vars.choice is 'one'", "expected: (not set)"),
        ("outcome: closed", "expect.outcome", "6:16", "the call ended differently",
         "expected: 'closed'\nactual: 'done'"),
    ],
)
def test_each_kind_fails_at_its_yaml_position(run: Run, expect: str, label: str, line_col: str, message: str,
                                              shown: str) -> None:
    result = one(run(f"flow: demo\ncases:\n  thanks:\n    press: [1]\n    expect:\n      {expect}\n"))
    assert result.status == FAILED
    (failure,) = result.failures
    assert (failure.label, failure.message) == (label, message)
    assert f"{failure.location.line}:{failure.location.column}" == line_col
    details = [failure.diff, f"expected: {failure.expected}", f"actual: {failure.actual}"]
    assert shown in "\n".join(filter(None, details))
    rendered = failure.render(result.case.problems.sources["demo.test.yaml"])
    source_line = " " * 4 + f"      {expect}"  # the YAML line, indented under the message, then a caret
    assert rendered.startswith(f"demo.test.yaml:{line_col}: {label}: {message}\n{source_line}\n")
    assert textwrap.indent(rendered, "  ") in failure_report(result)


def test_a_report_shows_the_yaml_line_setup_and_transcript(run: Run) -> None:
    report = failure_report(one(run("flow: demo\ncases:\n  thanks:\n    press: [1]\n    expect: {outcome: closed}\n")))
    assert report.startswith("FAIL demo.test.yaml::thanks (demo.test.yaml:3:3)")
    line, caret = "    expect: {outcome: closed}", " " * 22 + "^"  # the YAML line and a caret under the value
    assert f"\n      {line}\n      {caret}\n" in report
    assert "caller script: press 1" in report
    assert 'prompt=demo-thanks language=en  "Thank you."' in report  # transcript with prompt texts
    assert failure_report(one(run(ALL_KINDS))) == ""


@pytest.mark.parametrize(
    "value, raw, actual, ok",
    [
        ("12345678", "12345678", "12345678", True),
        (12345678, "12345678", "12345678", True),  # written unquoted, held as text by the flow
        (34, "0042", "0042", True),  # YAML 1.1 octal, compared as typed
        (7, "7", 7.0, True),
        ("7", "7", 8, False),
        (True, "true", True, True),
        (True, "yes", "yes", True),
        (True, "true", 1, False),  # a boolean is not a number here
        (1, "1", True, False),
        (None, None, None, True),
        (None, None, "", False),
        ([1, 2], None, [1, 2], True),
        ({"a": 1}, None, {"a": 2}, False),
    ],
)
def test_variable_values_compare_as_written(value: Any, raw: str | None, actual: Any, ok: bool) -> None:
    assert VarExpected("x", value, raw, Location("t.yaml", 1, 1)).matches(actual) is ok


def test_caller_actions_that_never_happened_fail_the_case(run: Run) -> None:
    result = one(run("flow: demo\ncases:\n  a:\n    press: [1, 2, 3]\n    expect: {outcome: done}\n"))
    (failure,) = result.failures
    assert failure.label == "script"
    assert (failure.location.line, failure.location.column) == (4, 16)  # the first action left over: 2
    assert failure.message == "the call ended before 2 caller action(s) happened: press 2, press 3"


def test_handoff_results_never_asked_for_fail_the_case(run: Run) -> None:
    result = one(run("flow: demo\ncases:\n  a:\n    press: [1]\n    handoffs: [timeout]\n"
                     "    expect: {outcome: done}\n"))
    (failure,) = result.failures
    assert (failure.label, failure.location.line) == ("handoffs", 5)
    assert failure.message == "1 hand-off result(s) given, but the flow handed off 0 time(s)"


def test_handoffs_resume_the_flow_and_default_to_answered(run: Run) -> None:
    results = run("""\
        flow: demo
        cases:
          answered: {press: [2], expect: {outcome: "queue:demo", steps: [hours_check, menu, queue_it]}}
          timeout:
            press: [2]
            handoffs: [{outcome: TIMEOUT, after: 1m}]
            expect: {outcome: done, steps: [hours_check, menu, queue_it, queue_it, thanks, thanks_play]}
        """)
    assert {name: r.status for name, r in results.items()} == {"answered": PASSED, "timeout": PASSED}
    timed_out = results["timeout"].result
    assert timed_out is not None and timed_out.seconds > 60


@pytest.mark.parametrize(
    "now, outcome",
    [
        ("2026-11-23T19:30", "done"),  # no offset: Berlin, the flow's timezone
        ("2026-11-23T19:30:00Z", "closed"),  # 20:30 in Berlin
        ("2026-11-23T07:59:00+01:00", "closed"),
        ("2026-12-25T10:00:00+01:00", "closed"),
    ],
)
def test_now_sets_the_simulated_clock(run: Run, now: str, outcome: str) -> None:
    keys = "[1]" if outcome == "done" else "[]"  # a key the closed line never asks for would fail the case
    result = one(run(f"flow: demo\ncases:\n  a:\n    now: '{now}'\n    press: {keys}\n"
                     f"    expect: {{outcome: {outcome}}}\n"))
    assert result.status == PASSED, failure_report(result)


@pytest.mark.parametrize(
    "state, press, outcome",
    [
        ("{}", "[4]", "queue:demo"),
        ("{queues: {demo: {waiting: 5}}}", "[4]", "queue:demo"),
        ("{queues: {demo: {waiting: 6}}}", "[4]", "closed"),
        # a call that starts in maintenance meets it before the first step (the demo has no `maintenance:`
        # block: the gate's prompt, then a hang-up)
        ("{maintenance: planned}", "[]", "maintenance-planned"),
        ("{maintenance: {demo: planned}}", "[]", "maintenance-planned"),
        ("{maintenance: {'*': emergency}}", "[]", "maintenance-emergency"),
        ("{maintenance: {other: planned}}", "[4]", "queue:demo"),
    ],
)
def test_state_fakes_queues_and_maintenance(run: Run, state: str, press: str, outcome: str) -> None:
    result = one(run(f"flow: demo\ncases:\n  a:\n    state: {state}\n    press: {press}\n"
                     f"    expect: {{outcome: '{outcome}'}}\n"))
    assert result.status == PASSED, failure_report(result)


def test_caller_and_language_reach_the_flow(run: Run) -> None:
    results = run("""\
        flow: demo
        defaults: {caller: {number: "+4930111", name: Bob}, language: de}
        cases:
          defaults: {press: [1], expect: {vars: {who: +4930111/Bob, lang: de}}}
          own: {caller: {name: Alice}, language: en, press: [1], expect: {vars: {who: +4930111/Alice, lang: en}}}
        """)
    assert {name: r.status for name, r in results.items()} == {"defaults": PASSED, "own": PASSED}


def test_broken_and_crashing_cases_are_reported_not_raised(demo: Project, load: Load,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    suite = load("flow: demo\ncases:\n  bad: {press: [1], expect: {outcom: done}}\n"
                 "  good: {expect: {outcome: closed}}\n")
    broken = run_case(demo, suite.cases[0])
    assert broken.status == BROKEN
    assert "demo.test.yaml:3:30: error: unknown option 'outcom' in expectations" in failure_report(broken)

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulator bug")

    monkeypatch.setattr(demo.simulation, "run", explode)
    crashed = run_case(demo, suite.cases[1])
    assert crashed.status == CRASHED
    assert "RuntimeError: simulator bug" in failure_report(crashed)


def test_keyword_matches_file_and_case_name(load: Load) -> None:
    case = load("flow: demo\ncases:\n  Billing Balance: {press: [1], expect: {outcome: done}}\n").cases[0]
    assert matches(case, None) and matches(case, "billing") and matches(case, "demo.test") and matches(case, "::bill")
    assert not matches(case, "support")
