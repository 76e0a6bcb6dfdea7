"""Whole-flow checks on keys, hang-up handlers, prompts and values, on small inline flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrkit.flow.checks import check_flows
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.prompts.catalog import PromptCatalog, PromptEntry
from tests.flow.helpers import check, flow, hints, load, messages

# -- keys -------------------------------------------------------------------------------------------------------


def test_choice_on_the_cancel_key() -> None:
    diagnostics = check(flow("  a:\n    menu: {prompt: p, choices: {'1': end, '*': end}, failed: end}\n"))
    assert messages(diagnostics) == ["5:43: error: key '*' is the cancel key here, so this choice can never be made"]
    assert hints(diagnostics) == [
        "use another key, or turn the cancel key off for this step with `cancel_key: none`"
    ]


@pytest.mark.parametrize(
    ("top", "step_option", "clash"),
    [
        ('cancel_key: "#"\n', "", "#"),
        ("", '    cancel_key: "#"\n', "#"),
        ("cancel_key: 0\n", "", "0"),
        ("cancel_key: none\n", "", None),
        ("", "    cancel_key: none\n", None),
        ('cancel_key: "#"\n', '    cancel_key: "*"\n', None),
    ],
)
def test_the_cancel_key_in_force_at_a_menu(top: str, step_option: str, clash: str | None) -> None:
    steps = f"  a:\n    menu: {{prompt: p, choices: {{'1': end, '#': end, '0': end}}, failed: end}}\n{step_option}"
    found = [m for m in messages(check(flow(steps, top))) if "cancel key" in m]
    assert found == ([] if clash is None else [f"{found[0].split(': ')[0]}: error: key '{clash}' is the cancel key "
                                               "here, so this choice can never be made"])


def test_terminator_on_the_cancel_key() -> None:
    steps = "  a:\n    collect: {into: x, prompt: p, terminator: '*', failed: end}\n    next: end\n"
    assert messages(check(flow(steps))) == [
        "5:47: error: the terminator '*' is also the cancel key here: pressing it would cancel the entry instead "
        "of ending it"
    ]


def test_terminator_clash_is_shown_where_the_cancel_key_is_set() -> None:
    steps = "  a:\n    collect: {into: x, prompt: p, failed: end}\n    next: end\n"
    assert messages(check(flow(steps, 'cancel_key: "#"\n')))[0].startswith("3:13: error: the terminator '#'")
    on_step = steps + '    cancel_key: "#"\n'
    assert messages(check(flow(on_step)))[0].startswith("7:17: error: the terminator '#'")


def test_no_terminator_no_clash() -> None:
    steps = "  a:\n    collect: {into: x, prompt: p, terminator: none, max_digits: 4, failed: end}\n    next: end\n"
    assert messages(check(flow(steps, 'cancel_key: "#"\n'))) == []


def test_digit_cancel_key_at_a_collect() -> None:
    steps = "  a:\n    collect: {into: x, prompt: p, failed: end}\n    next: end\n"
    diagnostics = check(flow(steps, "cancel_key: 0\n"))
    assert messages(diagnostics) == [
        "3:13: error: the cancel key '0' is a digit, so callers could not enter it in step 'a'"
    ]


def test_confirmation_keys() -> None:
    steps = "  a:\n    collect: {into: x, prompt: p, confirm: {prompt: p, yes: 1, no: 1}, failed: end}\n    next: end\n"
    assert messages(check(flow(steps))) == ["5:68: error: the confirmation keys for yes and no are both '1'"]
    steps = "  a:\n    collect: {into: x, prompt: p, confirm: {prompt: p, yes: '*'}, failed: end}\n    next: end\n"
    assert messages(check(flow(steps))) == ["5:61: error: the confirmation key '*' is also the cancel key here"]


@pytest.mark.parametrize(
    ("options", "hint"),
    [
        ("", "add `failed: <step>`, for example a transfer to an operator"),
        (", no_input: {failed: end}",
         "add `failed: <step>` or `invalid: {failed: <step>}`, for example a transfer to an operator"),
        (", invalid: {failed: end}",
         "add `failed: <step>` or `no_input: {failed: <step>}`, for example a transfer to an operator"),
    ],
)
def test_menu_without_failed(options: str, hint: str) -> None:
    diagnostics = check(flow(f"  a:\n    menu: {{prompt: p, choices: {{'1': end}}{options}}}\n"))
    assert messages(diagnostics) == ["4:3: warning: callers who fail this menu are disconnected"]
    assert hints(diagnostics) == [hint]


@pytest.mark.parametrize(
    "options", [", failed: end", ", no_input: {failed: end}, invalid: {failed: end}"]
)
def test_menu_with_somewhere_to_fail_to(options: str) -> None:
    assert messages(check(flow(f"  a:\n    menu: {{prompt: p, choices: {{'1': end}}{options}}}\n"))) == []


def test_collect_without_failed() -> None:
    diagnostics = check(flow("  a:\n    collect: {into: x, prompt: p}\n    next: end\n"))
    assert messages(diagnostics) == ["4:3: warning: callers who fail this entry are disconnected"]


# -- hang-up handler --------------------------------------------------------------------------------------------


def test_hangup_handler_starting_with_a_prompt() -> None:
    diagnostics = check(flow("  a:\n    goto: end\n  bye:\n    play: p\n", "on_hangup: bye\n"))
    assert messages(diagnostics) == [
        "3:12: error: the on_hangup handler leads to step 'bye', but a play step cannot run after the caller hung up"
    ]
    assert hints(diagnostics) == ["after a hang-up only branch, goto, hours and set steps can run (no audio, no keys)"]


def test_hangup_handler_reaching_a_menu_and_stopping_there() -> None:
    steps = ("  a:\n    goto: end\n  h:\n    branch: [{if: 'vars.x', then: m}]\n    else: done\n"
             "  done:\n    set: {y: 1}\n  m:\n    menu: {prompt: p, choices: {'1': bye}, failed: bye}\n"
             "  bye:\n    play: p\n")
    diagnostics = check(flow(steps, "on_hangup: h\n"))
    assert messages(diagnostics) == [
        "8:35: error: the on_hangup handler leads to step 'm', but a menu step cannot run after the caller hung up",
    ]


def test_hangup_handler_may_leave_for_another_flow() -> None:
    support = flow("  a:\n    goto: end\n  h:\n    goto: {flow: billing}\n", "on_hangup: h\n")
    billing = flow("  a:\n    play: p\n    next: end\n", name="billing")
    assert messages(check(support, billing)) == []


# -- prompts ----------------------------------------------------------------------------------------------------


def catalog(*ids: str, language: str = "en") -> PromptCatalog:
    return PromptCatalog(Path("prompts"), {language: {i: PromptEntry(i, i) for i in ids}})


def test_missing_prompts_are_reported_wherever_they_are_used() -> None:
    steps = ("  a:\n    play: [welcome, welcom]\n    next: b\n"
             "  b:\n    menu: {prompt: menu, choices: {'1': end}, no_input: {reprompt: sorry}, failed: c}\n"
             "  c:\n    hangup: {play: goodbye}\n")
    diagnostics = check(flow(steps), catalog=catalog("welcome", "menu", "goodby"))
    assert messages(diagnostics) == [
        "5:21: error: prompt 'welcom' is not in the 'en' catalog",
        "8:68: error: prompt 'sorry' is not in the 'en' catalog",
        "10:20: error: prompt 'goodbye' is not in the 'en' catalog",
    ]
    assert hints(diagnostics) == ["did you mean 'welcome'?", "add it to prompts/en/catalog.yaml",
                                  "did you mean 'goodby'?"]


def test_prompts_are_looked_up_in_the_flows_language() -> None:
    text = flow("  a:\n    play: welcome\n    next: end\n", "language: de\n")
    assert messages(check(text, catalog=catalog("welcome"))) == [
        "6:11: error: prompt 'welcome' is not in the 'de' catalog"
    ]
    assert messages(check(text, catalog=catalog("welcome", language="de"))) == []


def test_no_catalog_no_prompt_check() -> None:
    assert messages(check(flow("  a:\n    play: anything\n    next: end\n"))) == []


# -- values -----------------------------------------------------------------------------------------------------


def test_min_digits_above_max_digits() -> None:
    steps = "  a:\n    collect: {into: x, prompt: p, min_digits: 9, max_digits: 4, failed: end}\n    next: end\n"
    assert messages(check(flow(steps))) == ["5:47: error: min_digits (9) is more than max_digits (4)"]
    steps = steps.replace("min_digits: 9", "min_digits: 4")
    assert messages(check(flow(steps))) == []


@pytest.mark.parametrize(
    "destination",
    ["PJSIP/op;x", "PJSIP/a&PJSIP/b", "PJSIP/op,30,U(sub)", "Local/s@ctx/n", "operator", "+49 30 123", "0030)"],
)
def test_transfer_destinations_that_would_inject_dialplan(destination: str) -> None:
    diagnostics = check(flow(f"  a:\n    transfer: {{to: '{destination}'}}\n    outcomes: {{busy: end}}\n"))
    assert messages(diagnostics) == [f"5:20: error: '{destination}' is not an endpoint or a number"]


@pytest.mark.parametrize("destination", ["PJSIP/operator", "PJSIP/100@trunk", "'+4930123456'", "'{{ vars.x }}'"])
def test_good_and_templated_transfer_destinations(destination: str) -> None:
    assert messages(check(flow(f"  a:\n    transfer: {destination}\n    outcomes: {{busy: end}}\n"))) == []


# -- positions without the source -------------------------------------------------------------------------------


def test_positions_fall_back_to_the_step_when_the_source_is_gone() -> None:
    loaded, _ = load(flow("  a:\n    menu: {prompt: p, choices: {'*': end}, failed: end}\n"), "not-on-disk.yaml")
    assert loaded is not None
    loaded.node = None  # a flow built without its YAML nodes
    diagnostics = Diagnostics()
    check_flows({loaded.name: loaded}, diagnostics)
    assert messages(diagnostics) == ["4:3: error: key '*' is the cancel key here, so this choice can never be made"]


def test_transfer_without_a_destination() -> None:
    diagnostics = check(flow("  a:\n    transfer:\n    outcomes: {busy: end}\n"))
    assert messages(diagnostics) == ["5:14: error: the transfer has no destination"]
