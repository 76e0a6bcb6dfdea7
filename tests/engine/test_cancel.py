"""The cancel key: one model for every step (back out to a declared target, default the previous menu)."""

from __future__ import annotations

from tests.calls import Call, of_kind

FLOW = """
flow: c
start: main
steps:
  main:
    menu: {prompt: main-prompt, choices: {"1": sub, "2": account, "3": info}, failed: bye}
  sub:
    menu: {prompt: sub-prompt, choices: {"1": account}, failed: bye}
  account:
    collect: {into: account, prompt: enter-account, min_digits: 4, failed: bye}
    next: done
  info:
    play: [long-info]
    cancel_to: bye
    next: done
  done: {hangup: {outcome: done}}
  bye: {hangup: {outcome: bye}}
"""


def test_cancel_during_collection_discards_digits_and_returns_to_previous_menu(call: Call) -> None:
    result = call(FLOW, "1 1 12* 1 5678#")
    assert of_kind(result, "cancel") == [{"to": "sub"}]
    assert result.steps == ["c.main", "c.sub", "c.account", "c.sub", "c.account", "c.done"]
    assert result.vars["account"] == "5678"
    assert not any(d.get("digits") == "12" for d in of_kind(result, "collected"))


def test_cancel_in_a_menu_goes_back_to_the_menu_before(call: Call) -> None:
    result = call(FLOW, "1 * 3")
    assert result.steps[:3] == ["c.main", "c.sub", "c.main"]


def test_cancel_at_the_first_menu_has_nowhere_to_go_and_is_an_invalid_key(call: Call) -> None:
    result = call(FLOW, "* 2 1234#")
    assert of_kind(result, "cancel") == []
    assert of_kind(result, "invalid")[0]["key"] == "*"
    assert result.outcome == "done"


def test_cancel_interrupts_a_play_step_towards_its_declared_target(call: Call) -> None:
    result = call(FLOW, script=[{"press": "3"}, {"press": "*", "during": "long-info"}])
    assert of_kind(result, "cancel") == [{"to": "bye"}]
    assert result.outcome == "bye"


def test_step_can_change_or_turn_off_the_cancel_key(call: Call) -> None:
    changed = FLOW.replace(
        "    collect: {into: account", "    cancel_key: '#'\n    collect: {terminator: none, into: account"
    )
    assert of_kind(call(changed, "2 12#"), "cancel") == [{"to": "main"}]
    off = FLOW.replace("    collect: {into: account", "    cancel_key: none\n    collect: {into: account")
    result = call(off, "2 12*4#")
    assert of_kind(result, "cancel") == []
    assert result.vars["account"] == "12*4"


def test_flow_level_cancel_key(call: Call) -> None:
    flows = FLOW.replace("start: main", "start: main\ncancel_key: '0'")
    result = call(flows, "1 0")
    assert of_kind(result, "cancel") == [{"to": "main"}]
