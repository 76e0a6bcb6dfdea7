"""Flow tests of callbacks: callbacks the faked world starts with (or a store that fails), and the `callbacks` and
`callbacks_cancelled` expectations passing, failing at their YAML line, and refusing what makes no sense."""

from __future__ import annotations

import textwrap

import pytest

from ivrkit.qa.format import load_suite_text, resolve
from ivrkit.qa.runner import FAILED, PASSED, CaseResult, Project, describe_setup, failure_report, run_case
from tests.qa.conftest import write_project

FLOW = """\
flow: cb
start: offer
queues:
  support: {callback: {country: DE}}
steps:
  offer:
    callback: {queue: support, number: caller, wait: false, reason: {prompt: why, choices: {"1": billing}}}
    outcomes: {cancelled: again}
    next: bye
  again:
    callback: {queue: support, number: caller, wait: false}
    next: bye
  bye: {hangup: {outcome: bye}}
"""
PROMPTS = "why: \"Why?\"\n" + "".join(
    f"{prompt}: \"{prompt}\"\n" for prompt in (
        "callback-existing", "callback-kept", "callback-cancelled", "callback-confirm-number",
        "callback-confirm-or-change", "callback-enter-number", "callback-invalid-number", "callback-requested",
        "callback-unavailable", "callback-intro", "callback-press-to-connect", "callback-connecting", "goodbye",
    )
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = write_project(tmp_path_factory.mktemp("callbacks"), FLOW, PROMPTS)
    (root / "flows" / "demo.yaml").rename(root / "flows" / "cb.yaml")
    loaded = Project.load(root / "flows", root / "prompts")
    assert loaded.ok, loaded.diagnostics.render()
    return loaded


def run(project: Project, case: str) -> CaseResult:
    suite = load_suite_text(f"flow: cb\ncases:\n  a:\n{textwrap.indent(textwrap.dedent(case), '    ')}", "cb.test.yaml")
    resolve(suite, project.flows, project.catalog)
    assert not suite.broken and not suite.cases[0].broken, suite.cases[0].problems.render()
    return run_case(project, suite.cases[0])


def test_a_registered_callback_passes_and_each_field_given_is_compared(project: Project) -> None:
    result = run(project, """\
        press: [1]
        expect:
          callbacks: [{number: "+4930123456", queue: support, origin: request, reason: billing}]
          callbacks_cancelled: []
        """)
    assert (result.status, result.failures) == (PASSED, [])
    assert run(project, "press: [1]\nexpect: {callbacks: [{queue: support}]}\n").status == PASSED


def test_a_preset_callback_is_found_and_cancelled(project: Project) -> None:
    result = run(project, """\
        state: {callbacks: [{number: "+4930123456", queue: support, state: dialing, id: x1}]}
        press: [2]
        expect:
          heard: [callback-existing, callback-cancelled, callback-requested]
          callbacks_cancelled: [{number: "+4930123456", queue: support}]
          callbacks: [{number: "+4930123456", reason: null}]
        """)
    assert (result.status, result.failures) == (PASSED, [])
    assert "callback x1 to +4930123456 for support (dialing)" in describe_setup(result.case)


def test_a_failing_store_is_set_up_with_unavailable(project: Project) -> None:
    result = run(project, "state: {callbacks: unavailable}\npress: [1]\n"
                          "expect: {heard: [why, callback-unavailable], callbacks: [], outcome: bye}\n")
    assert (result.status, result.failures) == (PASSED, [])
    assert "callback store unavailable" in describe_setup(result.case)


@pytest.mark.parametrize(
    ("expect", "label", "line_col", "message", "actual"),
    [
        ("callbacks: []", "expect.callbacks", "6:18", "0 callback(s) registered expected, 1 were",
         "[number=+4930123456, queue=support, origin=request, reason=billing]"),
        ("callbacks: [{number: '+4930999999', reason: other}]", "expect.callbacks[1]", "6:19",
         "callback 1: number is '+4930123456', not '+4930999999'; reason is 'billing', not 'other'",
         "number=+4930123456, queue=support, origin=request, reason=billing"),
        ("callbacks: [{origin: automatic}]", "expect.callbacks[1]", "6:19",
         "callback 1: origin is 'request', not 'automatic'", None),
        ("callbacks_cancelled: [{queue: support}]", "expect.callbacks_cancelled", "6:28",
         "1 callback(s) cancelled expected, 0 were", "none"),
    ],
)
def test_a_wrong_callback_fails_at_its_yaml_position(project: Project, expect: str, label: str, line_col: str,
                                                    message: str, actual: str | None) -> None:
    result = run(project, f"press: [1]\nexpect:\n  {expect}\n")
    assert result.status == FAILED
    (failure,) = result.failures
    assert (failure.label, failure.message) == (label, message)
    assert f"{failure.location.line}:{failure.location.column}" == line_col
    if actual is not None:
        assert failure.actual == actual
    assert f"cb.test.yaml:{line_col}: {label}: {message}" in failure_report(result)


@pytest.mark.parametrize(
    ("case", "message", "hint"),
    [
        ("state: {callbacks: [{number: '+4930123456'}]}", "5:25: callback needs 'queue': The queue it is for.", None),
        ("state: {callbacks: [{number: '+49301', queue: support, state: failed}]}",
         "5:67: 'failed' is not one of: pending, dialing, connected", None),
        ("state: {callbacks: down}", "5:24: expected a list of callbacks such as [{number: \"+4930123456\", queue: "
         "support}], or unavailable, got 'down'", None),
        ("expect: {callbacks: [{numbr: '+49'}]}", "5:27: unknown option 'numbr' in expected callback",
         "did you mean 'number'?"),
        ("expect: {callbacks: [{origin: hangup}]}", "5:35: 'hangup' is not one of: request, opt-in, automatic", None),
        ("expect: {callbacks_cancelled: [{number: '+49', reason: x}]}",
         "5:36: a cancelled callback is described by its number and queue only", None),
        ("expect: {callbacks: none}", "5:25: expected a list of callbacks such as [{number: \"+49…\", queue: "
         "support}], got 'none'", "write `[]` for none"),
    ],
)
def test_callback_setups_and_expectations_that_make_no_sense_are_errors(
    project: Project, case: str, message: str, hint: str | None
) -> None:
    text = f"flow: cb\ncases:\n  a:\n    press: [1]\n    {case}\n"
    if "expect" not in case:
        text += "    expect: {outcome: bye}\n"
    suite = load_suite_text(text, "cb.test.yaml")
    resolve(suite, project.flows, project.catalog)
    (problem,) = suite.cases[0].problems.errors
    assert f"{problem.location.line}:{problem.location.column}: {problem.message}" == message
    assert problem.hint == hint

