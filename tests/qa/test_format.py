"""Reading flow-test files: values as typed, defaults, and every error at its line and column."""

from __future__ import annotations

import datetime as dt

import pytest

from ivrkit.qa.expect import VarsMatch
from ivrkit.qa.model import Suite
from tests.qa.conftest import Load


def problems(suite: Suite) -> str:
    """Every diagnostic of the file and of its cases, rendered."""
    parts = [suite.diagnostics.render()] + [case.problems.render() for case in suite.cases]
    return "\n".join(part for part in parts if part)


def test_a_case_is_read_with_its_setup_script_and_expectations(load: Load) -> None:
    suite = load("""\
        flow: demo
        defaults: {caller: {number: "+4930123456", name: Bob}, now: "2026-11-23T10:00:00+01:00"}
        cases:
          thanks:
            caller: {name: Alice}
            press: [1]
            expect: {outcome: done}
        """)
    assert problems(suite) == ""
    (case,) = suite.cases
    assert (case.name, case.flow, case.id) == ("thanks", "demo", "demo.test.yaml::thanks")
    assert (case.location.line, case.location.column) == (4, 3)
    assert (case.setup.caller_number, case.setup.caller_name) == ("+4930123456", "Alice")  # per field
    assert case.setup.now == dt.datetime(2026, 11, 23, 10, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert [step.action.keys for step in case.script] == ["1"]


def test_values_are_taken_as_typed_not_as_yaml_numbers(load: Load) -> None:
    suite = load("""\
        flow: demo
        cases:
          typed:
            caller: {number: +4930123456}
            press: [0123, 3]
            expect: {vars: {account: 0042}}
        """)
    (case,) = suite.cases
    assert case.setup.caller_number == "+4930123456"  # YAML would make it the number 4930123456
    assert [step.action.keys for step in case.script] == ["0123", "3"]  # YAML 1.1 reads 0123 as 83
    (expectation,) = case.expectations
    assert isinstance(expectation, VarsMatch)
    assert [(e.name, e.value, e.raw) for e in expectation.entries] == [("account", 34, "0042")]


def test_the_three_script_forms(load: Load) -> None:
    suite = load("""\
        flow: demo
        cases:
          press: {press: [1, "12#"], expect: {outcome: done}}
          keys: {keys: "1 12# s w10 h", expect: {outcome: done}}
          script:
            script: [silence, hangup, "7", {press: 2, during: demo-menu, gap: 100ms}, {wait: 5s},
                     {hangup: true, in_step: thanks}, {hangup: true, after: 2s}]
            expect: {outcome: done}
        """)
    assert problems(suite) == ""
    described = {case.name: [step.action.describe() for step in case.script] for case in suite.cases}
    assert described == {
        "press": ["press 1", "press 12#"],
        "keys": ["press 1", "press 12#", "silence", "wait 10s", "hangup"],
        "script": ["silence", "hangup", "press 7", "press 2 during demo-menu", "wait 5s", "hangup in step thanks",
                   "hangup after 2s"],
    }


@pytest.mark.parametrize(
    "yaml, expected",
    [
        ("flow: demo\ncases:\n  a:\n    pres: [1]\n    expect: {outcome: done}\n",
         "demo.test.yaml:4:5: error: unknown option 'pres' in test case\n    hint: did you mean 'press'?"),
        ("flow: demo\ncases:\n  a:\n    press: [1]\n    expect: {heared: [demo-menu]}\n",
         "demo.test.yaml:5:14: error: unknown option 'heared' in expectations\n    hint: did you mean 'heard'?"),
        ("flow: demo\ncase:\n  a: {expect: {outcome: done}}\n",
         "demo.test.yaml:2:1: error: unknown key 'case' in a flow-test file\n    hint: did you mean 'cases'?"),
        ("flow: demo\ncases:\n  a:\n    press: [1]\n    expect: {outcome: done}\n    handoffs: [timout]\n",
         "demo.test.yaml:6:16: error: 'timout' is not a hand-off outcome\n    hint: did you mean 'timeout'?"),
        ("flow: demo\ncases:\n  a:\n    state: {queues: {demo: {wating: 3}}}\n    expect: {outcome: done}\n",
         "demo.test.yaml:4:29: error: unknown option 'wating' in queue statistics\n    hint: did you mean 'waiting'?"),
        ("flow: demo\ncases:\n  a:\n    script: [{press: 1, durin: demo-menu}]\n    expect: {outcome: done}\n",
         "demo.test.yaml:4:25: error: unknown option 'durin' in a caller action\n    hint: did you mean 'during'?"),
        ("flow: demo\ncases:\n  a:\n    press: [1]\n    expect: {heard: [demo-thank]}\n",
         "demo.test.yaml:5:22: error: no flow plays a prompt named 'demo-thank'\n"
         "    hint: did you mean 'demo-thanks'?"),
        ("flow: demo\ncases:\n  a:\n    press: [1]\n    expect: {steps_include: [menu, thank]}\n",
         "demo.test.yaml:5:36: error: flow 'demo' has no step named 'thank'\n    hint: did you mean 'thanks'?"),
        ("flow: demo\ncases:\n  a:\n    script: [{press: 1, in_step: tanks}]\n    expect: {outcome: done}\n",
         "demo.test.yaml:4:14: error: no flow has a step named 'tanks'\n    hint: did you mean 'thanks'?"),
        ("flow: dem\ncases:\n  a: {expect: {outcome: done}}\n",
         "demo.test.yaml:1:7: error: there is no flow named 'dem'\n    hint: did you mean 'demo'?"),
    ],
    ids=["case option", "expectation", "top-level key", "hand-off outcome", "queue statistic", "caller action",
         "prompt name", "step name", "in_step", "flow name"],
)
def test_misspelt_names_get_did_you_mean_at_their_position(load: Load, yaml: str, expected: str) -> None:
    rendered = problems(load(yaml))
    first, hint = expected.splitlines()
    assert first in rendered.splitlines()
    assert hint in rendered.split(first)[1].split("demo.test.yaml:")[0]  # the hint belongs to that error


@pytest.mark.parametrize(
    "case, message",
    [
        ("press: [silence]", "4:13: error: expected keys such as 1"),
        ("keys: '1 x'", "4:11: error: 'x' is not keys"),
        ("press: [1]\n    keys: '1'", "5:5: error: a case has one caller script, but both 'press' and 'keys' give one"),
        ("now: 2026-11-23", "4:10: error: expected a date and time such as 2026-12-01T22:00"),
        ("now: '2026-11-31T10:00'", "4:10: error: '2026-11-31T10:00' is not a valid date and time"),
        ("script: [{press: 1, wait: 2s}]", "4:25: error: a caller action does exactly one thing"),
        ("script: [{wait: 2s, after: 1s}]", "4:25: error: `after` does not apply to `wait`"),
        ("script: [{press: 1x}]", "4:14: error: '1x' is not a key sequence"),
        ("handoffs: [{outcome: busy, after: soon}]", "4:39: error: expected a duration"),
        ("language: English", "4:15: error: 'English' is not a valid language code"),
    ],
)
def test_bad_values_point_at_the_value(load: Load, case: str, message: str) -> None:
    suite = load(f"flow: demo\ncases:\n  a:\n    {case}\n    expect: {{outcome: done}}\n")
    assert f"demo.test.yaml:{message}" in problems(suite)


@pytest.mark.parametrize(
    "expect, message",
    [
        (None, "4:5: error: test case needs 'expect': What must come of the call."),
        ("{}", "5:13: error: `expect` is empty, so the case can never fail"),
        ("{not_heard: []}", "5:25: error: `not_heard` is empty, so it can never fail"),
        ("{heard: [digits-1234]}", "hint: spoken values are written number|digits|alpha|date|time|datetime:VALUE"),
    ],
)
def test_expectations_that_can_never_fail_are_errors(load: Load, expect: str | None, message: str) -> None:
    text = "flow: demo\ncases:\n  a:\n    press: [1]\n" + (f"    expect: {expect}\n" if expect else "")
    assert message in problems(load(text))


def test_a_broken_case_does_not_break_the_others(load: Load) -> None:
    suite = load("""\
        flow: demo
        cases:
          good: {press: [1], expect: {outcome: done}}
          bad: {press: [1], expect: {outcom: done}}
        """)
    assert not suite.broken
    assert [(case.name, case.broken) for case in suite.cases] == [("good", False), ("bad", True)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("flow: demo\ncases:\n  a: {press: [*], expect: {outcome: done}}\n",
         "demo.test.yaml:3:16: error: invalid YAML"),
        ("", "demo.test.yaml:1:1: error: the file is empty"),
        ("- flow: demo\n", "demo.test.yaml:1:1: error: a flow-test file is a mapping that starts with 'flow: <name>'"),
        ("flow: demo\n", "demo.test.yaml:1:1: error: a flow-test file needs 'cases'"),
        ("flow: demo\ncases: [a, b]\n", "demo.test.yaml:2:8: error: `cases` must be a mapping of case names to cases"),
        ("flow: demo\ndefaults: {press: [1]}\ncases:\n  a: {expect: {outcome: done}}\n",
         "demo.test.yaml:2:12: error: unknown option 'press' in defaults"),
        ("flow: demo\ncases:\n  a: {expect: {outcome: done}}\n  a: {expect: {outcome: done}}\n",
         "demo.test.yaml:4:3: error: duplicate key 'a' (first defined at line 3)"),
    ],
    ids=["yaml syntax", "empty", "not a mapping", "no cases", "cases not a mapping", "defaults", "duplicate case"],
)
def test_file_level_problems_break_the_file(load: Load, text: str, message: str) -> None:
    suite = load(text)
    assert suite.broken
    assert message in suite.diagnostics.render()


def test_one_run_shows_every_mistake_of_a_case(load: Load) -> None:
    suite = load("""\
        flow: demo
        cases:
          a:
            script: [{press: 1, durin: demo-menu}]
            expect: {heard: [demo-men], steps: [thank]}
        """)
    rendered = problems(suite)
    assert "4:25: error: unknown option 'durin'" in rendered
    assert "5:22: error: no flow plays a prompt named 'demo-men'" in rendered  # names still checked
    assert "5:41: error: flow 'demo' has no step named 'thank'" in rendered
