"""The loader on the YAML traps designers fall into: each mistake is reported once, where it is, with a hint.

A flow with any shape error is not built (``load`` returns None), so the whole-flow checks never add second,
misleading errors about a step that failed to load.
"""

from __future__ import annotations

import pytest

from tests.flow.helpers import check, hints, load, messages

TOP = "flow: support\nstart: a\nsteps:\n"


def step(body: str) -> str:
    """A flow whose steps are ``body`` (indented by two spaces already), plus a hangup step ``end``."""
    return TOP + body + "  end:\n    hangup: true\n"


def test_a_valid_flow_loads_without_diagnostics() -> None:
    flow, diagnostics = load(step("  a:\n    play: welcome\n    next: end\n"))
    assert flow is not None and not diagnostics.items
    assert flow.name == "support" and list(flow.steps) == ["a", "end"]
    assert flow.steps["a"].next == "end"


# -- duplicate keys ---------------------------------------------------------------------------------------------


def test_duplicate_step_option() -> None:
    flow, diagnostics = load(step("  a:\n    play: welcome\n    next: end\n    next: a\n"))
    assert messages(diagnostics) == ["7:5: error: duplicate key 'next' (first defined at line 6)"]
    assert hints(diagnostics) == ["YAML keeps only the last one; remove or rename one of them"]
    assert flow is not None and flow.steps["a"].next == "end"  # the first one is kept, and reported


def test_duplicate_step_name() -> None:
    _, diagnostics = load(step("  a:\n    play: welcome\n    next: end\n  a:\n    hangup: true\n"))
    assert messages(diagnostics) == ["7:3: error: duplicate key 'a' (first defined at line 4)"]


def test_duplicate_menu_key_quoted_and_unquoted() -> None:
    _, diagnostics = load(step('  a:\n    menu: {prompt: m, choices: {1: end, "1": a}}\n'))
    assert messages(diagnostics) == ["5:41: error: duplicate key '1' (first defined at line 5)"]


def test_menu_keys_are_taken_as_typed() -> None:
    flow, diagnostics = load(step("  a:\n    menu: {prompt: m, choices: {1: end, 01: a}}\n"))
    assert messages(diagnostics) == ["5:41: error: expected a DTMF key (0-9, * or #), got '01'"]
    assert flow is None


# -- * and # ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  a:\n    menu: {prompt: m, choices: {*: end}}\n",
         "5:34: error: invalid YAML: expected alphabetic or numeric character, but found ':'"),
        ("  a:\n    menu:\n      prompt: m\n      choices:\n        *: end\n",
         "8:10: error: invalid YAML: expected alphabetic or numeric character, but found ':'"),
        ("  a:\n    play: welcome\n    cancel_key: *\n",
         "6:18: error: invalid YAML: expected alphabetic or numeric character, but found '\\n'"),
    ],
)
def test_unquoted_star_is_an_alias(body: str, expected: str) -> None:
    flow, diagnostics = load(step(body))
    assert flow is None
    assert messages(diagnostics) == [expected]
    assert hints(diagnostics) == ['quote keys such as "*" and "#": in YAML a bare * starts an alias and # a comment']


def test_quoted_star_and_hash_are_keys() -> None:
    flow, diagnostics = load(step('  a:\n    menu: {prompt: m, choices: {"*": end, "#": a}}\n    cancel_key: none\n'))
    assert not diagnostics.items and flow is not None
    assert flow.steps["a"].value.choices == {"*": "end", "#": "a"}
    assert flow.cancel_key_for(flow.steps["a"]) == ""


def test_bare_hash_key_is_a_comment() -> None:
    flow, diagnostics = load(step("  a:\n    menu:\n      prompt: m\n      choices:\n        #: end\n"))
    assert flow is None
    assert messages(diagnostics) == [
        "7:15: error: expected a choices (key: step), got nothing",
        "8:9: error: this '#' starts a comment, so the rest of the line is ignored",
    ]
    assert hints(diagnostics)[1] == 'quote the key: "#": …'


def test_bare_hash_key_in_flow_style() -> None:
    _, diagnostics = load(step('  a:\n    menu: {prompt: m, choices: {"1": end, #: a}}\n'))
    assert messages(diagnostics)[0] == "5:43: error: this '#' starts a comment, so the rest of the line is ignored"


def test_ordinary_comments_are_not_mistaken_for_keys() -> None:
    flow, diagnostics = load(step("  # the greeting\n  a:  # first step\n    play: welcome  # see: catalog\n"
                                  "    next: end\n"))
    assert flow is not None and not diagnostics.items


# -- tabs, numbers, times ---------------------------------------------------------------------------------------


def test_tab_indentation() -> None:
    flow, diagnostics = load(step("  a:\n\tplay: welcome\n"))
    assert flow is None
    assert messages(diagnostics) == ["5:1: error: invalid YAML: found character '\\t' that cannot start any token"]
    assert hints(diagnostics) == ["YAML indentation must use spaces, not tabs"]


def test_opening_time_read_as_a_number() -> None:
    _, diagnostics = load(step(
        "  a:\n    hours: {timezone: Europe/Berlin, open: {sat: 10:00}}\n    open: end\n    closed: end\n"
    ))
    assert messages(diagnostics) == ["5:50: error: '10:00' was read as a number"]
    assert hints(diagnostics) == ['quote opening times: "08:00-20:00"']


def test_zero_padded_time_is_text_but_not_a_range() -> None:
    _, diagnostics = load(step(
        "  a:\n    hours: {timezone: Europe/Berlin, open: {sat: 08:00}}\n    open: end\n    closed: end\n"
    ))
    assert messages(diagnostics) == ["5:50: error: '08:00' is not a time range"]


@pytest.mark.parametrize(
    ("value", "number"),
    [("0301234", 98972), ("+4930123456", 4930123456), ("8:00", 480), ("1_000", 1000)],
)
def test_numbers_yaml_changes_are_refused_where_text_is_meant(value: str, number: int) -> None:
    flow, diagnostics = load(step(f"  a:\n    transfer: {value}\n"))
    assert flow is None
    assert messages(diagnostics) == [f"5:15: error: '{value}' was read as the number {number}"]
    assert hints(diagnostics) == [f'quote it to keep it as typed: "{value}"']


def test_plain_and_quoted_numbers_are_kept() -> None:
    flow, diagnostics = load(step('  a:\n    set: {n: 100, code: "0301234"}\n    next: end\n'))
    assert flow is not None and not diagnostics.items
    templates = flow.steps["a"].value
    assert (templates["n"].source, templates["code"].source) == (100, "0301234")


# -- kinds and options ------------------------------------------------------------------------------------------


def test_misspelt_kind() -> None:
    flow, diagnostics = load(step("  a:\n    paly: welcome\n    next: end\n"))
    assert flow is None
    assert messages(diagnostics) == ["5:5: error: unknown step kind 'paly'"]
    assert hints(diagnostics) == ["did you mean 'play'?"]


def test_unknown_kind_with_nothing_close_lists_the_kinds() -> None:
    _, diagnostics = load(step("  a:\n    speak: welcome\n"))
    assert messages(diagnostics) == ["5:5: error: unknown step kind 'speak'"]
    assert hints(diagnostics) == [
        "step kinds are: play, say, menu, language, collect, set, branch, hours, goto, queue, transfer, sms, callback, "
        "hangup"
    ]


def test_step_without_a_kind() -> None:
    _, diagnostics = load(step("  a:\n    next: end\n"))
    assert messages(diagnostics) == ["5:5: error: step 'a' has no kind"]


def test_misspelt_kind_is_not_followed_by_unknown_step_errors() -> None:
    diagnostics = check(step("  a:\n    paly: welcome\n    next: end\n"))
    assert messages(diagnostics) == ["5:5: error: unknown step kind 'paly'"]


def test_two_kinds_in_one_step() -> None:
    flow, diagnostics = load(step("  a:\n    play: welcome\n    hangup: true\n"))
    assert flow is None
    assert messages(diagnostics) == ["6:5: error: step 'a' has two kinds, 'play' and 'hangup'"]
    assert hints(diagnostics) == ["split it into two steps joined by `next`"]


def test_unknown_step_option() -> None:
    flow, diagnostics = load(step("  a:\n    play: welcome\n    nxt: end\n"))
    assert flow is None
    assert messages(diagnostics) == ["6:5: error: unknown option 'nxt' for a play step"]
    assert hints(diagnostics) == ["did you mean 'next'?"]


def test_unknown_option_inside_a_kind() -> None:
    flow, diagnostics = load(step('  a:\n    menu: {prompt: m, choices: {"1": end}, tiemout: 3s}\n'))
    assert flow is None
    assert messages(diagnostics) == ["5:44: error: unknown option 'tiemout' in menu"]
    assert hints(diagnostics) == ["did you mean 'timeout'?"]


def test_unknown_flow_option() -> None:
    flow, diagnostics = load("flow: support\nstart: a\nlanguge: de\nsteps:\n  a: {hangup: true}\n")
    assert flow is None
    assert messages(diagnostics) == ["3:1: error: unknown option 'languge' in flow"]
    assert hints(diagnostics) == ["did you mean 'language'?"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  a:\n    collect: {into: acc, prompt: p, max_digits: ten}\n    next: end\n",
         "5:49: error: expected a whole number, got 'ten'"),
        ("  a:\n    play: welcome\n    next: 5\n", "6:11: error: expected a step name, got the number 5"),
        ("  a:\n    play: welcome\n    barge_in: maybe\n    next: end\n",
         "6:15: error: expected true or false, got 'maybe'"),
        ("  a:\n    menu: {prompt: m, choices: [end]}\n",
         "5:32: error: expected a choices (key: step), got a list"),
        ('  a:\n    menu: {prompt: m, choices: {"1": end}, timeout: soon}\n',
         "5:53: error: expected a duration such as 5s, 500ms or 2m, got 'soon'"),
        ('  a:\n    menu: {prompt: m, choices: {"12": end}}\n',
         "5:33: error: expected a DTMF key (0-9, * or #), got '12'"),
        ("  a:\n    collect: {into: acc, prompt: p, max_digits: 0}\n    next: end\n",
         "5:49: error: 0 is too small: the minimum is 1"),
        ("  a:\n    play: {welcome: 1}\n    next: end\n",
         "5:12: error: unknown spoken value 'welcome'"),
    ],
)
def test_wrong_types(body: str, expected: str) -> None:
    flow, diagnostics = load(step(body))
    assert flow is None
    assert messages(diagnostics) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (step("  a:\n    menu: {prompt: m}\n"),
         "5:11: error: menu needs 'choices': Each key and the step it leads to; quote \"*\" and \"#\"."),
        (step("  a:\n    branch:\n      - {if: 'true', then: end}\n"),
         "5:5: error: a branch step needs 'else': Where to go when no condition is true."),
        (step("  a:\n    collect: {prompt: p}\n    next: end\n"),
         "5:14: error: collect needs 'into': Variable that receives the digits."),
        ("flow: support\nsteps:\n  a: {hangup: true}\n", "1:1: error: flow needs 'start': The first step."),
        ("flow: support\nstart: a\n", "1:1: error: flow needs 'steps': The steps, by name."),
        ("flow: support\nstart: a\nsteps:\n", "3:7: error: `steps` must be a mapping of step names to steps"),
    ],
)
def test_missing_required_options(text: str, expected: str) -> None:
    flow, diagnostics = load(text)
    assert flow is None
    assert messages(diagnostics) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (step("  a b:\n    hangup: true\n"), "4:3: error: 'a b' is not a valid step name"),
        ("flow: my support\nstart: a\nsteps:\n  a: {hangup: true}\n",
         "1:7: error: 'my support' is not a valid flow name"),
        (step("  a:\n    set: {Account: 1}\n    next: end\n"),
         "5:11: error: 'Account' is not a valid variable name (lower case, digits, _)"),
        (step("  a:\n    play: Welcome\n    next: end\n"), "5:11: error: 'Welcome' is not a valid prompt id"),
        (step("  a:\n    goto: {flow: billing, step: 'two words'}\n"),
         "5:33: error: 'two words' is not a valid step name"),
    ],
)
def test_invalid_names(text: str, expected: str) -> None:
    flow, diagnostics = load(text)
    assert flow is None
    assert messages(diagnostics) == [expected]


def test_unknown_timezone_and_language() -> None:
    flow, diagnostics = load("flow: support\nstart: a\ntimezone: Europe/Berln\nlanguage: english\n"
                             "steps:\n  a: {hangup: true}\n")
    assert flow is None
    assert messages(diagnostics) == [
        "3:11: error: unknown timezone 'Europe/Berln'",
        "4:11: error: 'english' is not a valid language code such as en or de",
    ]
    assert hints(diagnostics)[0] == "did you mean 'Europe/Berlin'?"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  a:\n    branch:\n      - if: 'vars.x =='\n        then: end\n    else: end\n",
         "6:13: error: expression syntax error: unexpected 'end of print statement'"),
        ("  a:\n    set: {x: '{{ vars.x + }}'}\n    next: end\n",
         "5:14: error: template syntax error: unexpected 'end of print statement'"),
        ("  a:\n    say: {number: '{{ vars.x'}\n    next: end\n",
         "5:19: error: template syntax error: unexpected end of template, expected 'end of print statement'."),
    ],
)
def test_expression_syntax_errors(body: str, expected: str) -> None:
    flow, diagnostics = load(step(body))
    assert flow is None
    assert messages(diagnostics) == [expected]


def test_every_mistake_in_a_file_is_reported() -> None:
    _, diagnostics = load(step(
        "  a:\n    paly: welcome\n  b:\n    play: welcome\n    nxt: end\n  c:\n    menu: {prompt: m}\n"
    ))
    assert [m.split(": error: ")[0] for m in messages(diagnostics)] == ["5:5", "8:5", "10:11"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1:1: error: the file is empty"),
        ("- play: welcome\n", "1:1: error: a flow file is a mapping that starts with 'flow: <name>'"),
        ("flow: support\nstart: a\nsteps: [a]\n",
         "3:8: error: `steps` must be a mapping of step names to steps"),
        (step("  a: play\n"), "4:6: error: step 'a' must be a mapping such as {play: welcome, next: menu}"),
    ],
)
def test_wrong_file_shapes(text: str, expected: str) -> None:
    flow, diagnostics = load(text)
    assert flow is None
    assert messages(diagnostics) == [expected]


def test_references_remember_where_they_are_written() -> None:
    flow, _ = load(step('  a:\n    menu: {prompt: m, choices: {"1": end}, failed: a}\n'))
    assert flow is not None
    found = {(ref.kind, ref.name, ref.owner, ref.label, ref.location.line, ref.location.column)
             for ref in flow.references}
    assert found == {
        ("step", "a", None, "start", 2, 8),
        ("prompt", "m", "a", "menu.prompt.0", 5, 20),
        ("step", "end", "a", "menu.choices.1", 5, 38),
        ("step", "a", "a", "menu.failed", 5, 52),
    }
