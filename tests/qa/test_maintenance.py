"""Maintenance in flow tests: faked maintenance under `state:`, and `expect: {maintenance: ...}`."""

from __future__ import annotations

import pytest

from ivrkit.qa.runner import FAILED, PASSED, describe_setup, failure_report
from tests.qa.conftest import Load, Run
from tests.qa.test_expect import one

# the demo flow (tests/qa/conftest.py) has no `maintenance:` block: the gate's prompt, then a hang-up


def case(state: str, expect: str, now: str = "2026-11-23T10:00") -> str:
    return f"flow: demo\ncases:\n  a:\n    now: '{now}'\n    state: {{maintenance: {state}}}\n" \
           f"    expect: {expect}\n"


@pytest.mark.parametrize(
    ("state", "expect"),
    [
        ("planned", "{maintenance: planned, outcome: maintenance-planned}"),
        ("{'*': emergency}", "{maintenance: {mode: emergency, scope: '*', action: hangup}}"),
        ("{global: emergency}", "{maintenance: {scope: '*'}}"),  # `global` is read as "*"
        ("{demo: {mode: closed, until: '2026-11-23T14:00'}}",
         "{maintenance: {mode: closed, scope: demo, until: '2026-11-23T14:00'}}"),  # Berlin time, as written
        ("{demo: {mode: closed, until: '2026-11-23T14:00'}}", "{maintenance: {until: '2026-11-23T13:00:00Z'}}"),
        ("{demo: {mode: closed, until: '2026-11-23T10:00'}}", "{maintenance: none}"),  # ended at its end
        ("{demo: {mode: closed, from: '2026-11-23T10:01'}}", "{maintenance: none}"),  # not started
        ("{other: planned}", "{maintenance: none}"),
    ],
)
def test_faked_maintenance_and_what_the_call_met(run: Run, state: str, expect: str) -> None:
    result = one(run(case(state, expect)))
    assert result.status == PASSED, failure_report(result)


@pytest.mark.parametrize(
    ("state", "expect", "lines"),
    [
        ("planned", "{maintenance: emergency}", [
            "demo.test.yaml:6:27: expect.maintenance: the maintenance differs in mode",
            "    expected: mode=emergency",
            "    actual:   mode=planned, scope=*, action=hangup",
        ]),
        ("{other: planned}", "{maintenance: {mode: planned, scope: demo}}", [
            "demo.test.yaml:6:27: expect.maintenance: the call met no maintenance",
            "    expected: mode=planned, scope=demo",
            "    actual:   none",
        ]),
        ("planned", "{maintenance: none}", [
            "demo.test.yaml:6:27: expect.maintenance: the call met maintenance",
            "    expected: none",
            "    actual:   mode=planned, scope=*, action=hangup",
        ]),
        ("{demo: {mode: closed, until: '2026-11-23T14:00'}}", "{maintenance: {until: '2026-11-23T15:00'}}", [
            "demo.test.yaml:6:27: expect.maintenance: the maintenance differs in until",
            "    expected: until=2026-11-23T15:00:00",
            "    actual:   mode=closed, scope=demo, until=2026-11-23T14:00+01:00, action=hangup",
        ]),
    ],
)
def test_a_maintenance_expectation_fails_with_expected_and_actual(run: Run, state: str, expect: str,
                                                                   lines: list[str]) -> None:
    result = one(run(case(state, expect)))
    assert result.status == FAILED
    report = failure_report(result, transcript=False).splitlines()
    start = report.index("  " + lines[0])
    assert [line.removeprefix("  ") for line in report[start:start + 5] if not line.startswith("        ")] == lines


@pytest.mark.parametrize(
    ("state", "expect", "message", "hint"),
    [
        ("planed", "{outcome: closed}", "5:26: error: 'planed' is not one of: planned, emergency, closed",
         "did you mean 'planned'?"),
        ("{demo: {mode: closed, until: tomorrow}}", "{outcome: closed}",
         "5:55: error: expected a date and time such as 2026-12-01T22:00, got 'tomorrow'",
         "write YYYY-MM-DDTHH:MM, in the flow's timezone, or with an offset such as +01:00"),
        ("{demo: {mode: closed, til: '2026-11-23T14:00'}}", "{outcome: closed}",
         "5:48: error: unknown option 'til' in maintenance", "did you mean 'until'?"),
        ("{'demo flow': planned}", "{outcome: closed}", "5:27: error: 'demo flow' is not a valid flow name or \"*\"",
         'a flow name, or "*" (quoted) for every flow'),
        ("planned", "{maintenance: {}}", "6:27: error: `maintenance: {}` can never fail",
         "write `none`, a mode, or the fields to check"),
        ("planned", "{maintenance: {action: dial}}", "6:36: error: 'dial' is not one of: hangup, goto, transfer, "
         "queue", None),
    ],
)
def test_mistakes_in_maintenance_are_reported_where_written(load: Load, state: str, expect: str, message: str,
                                                            hint: str | None) -> None:
    suite = load(case(state, expect))
    problems = suite.cases[0].problems
    found = [(f"{d.location.line}:{d.location.column}: {d.severity.value}: {d.message}", d.hint) for d in problems]
    assert found == [(message, hint)]


def test_the_setup_says_which_maintenance_was_faked(load: Load) -> None:
    suite = load(case("{demo: {mode: closed, from: '2026-11-23T08:00', until: '2026-11-23T14:00'}, '*': planned}",
                      "{outcome: closed}"))
    assert describe_setup(suite.cases[0]).splitlines()[0] == (
        "flow demo; now 2026-11-23T10:00:00; maintenance closed in demo from 2026-11-23 08:00:00 until 2026-11-23 "
        "14:00:00; maintenance planned"
    )
