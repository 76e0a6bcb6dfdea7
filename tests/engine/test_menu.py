"""Menus: choices, no-input and invalid retries with escalating re-prompts, fallback, barge-in."""

from __future__ import annotations

from tests.calls import Call, of_kind

MENU = """
flow: m
start: menu
steps:
  menu:
    menu:
      prompt: menu-prompt
      choices: {"1": one, "2": two}
      no_input: {retries: 2, reprompts: [[say-something], [say-something-louder]]}
      invalid: {retries: 1, reprompt: [wrong-key, menu-prompt]}
      failed: fallback
  one: {hangup: {outcome: chose-one}}
  two: {hangup: {outcome: chose-two}}
  fallback: {hangup: {play: sorry, outcome: fell-back}}
"""


def test_a_choice_leads_to_its_step(call: Call) -> None:
    result = call(MENU, "2")
    assert result.outcome == "chose-two"
    assert result.heard == ["menu-prompt"]
    assert result.steps == ["m.menu", "m.two"]


def test_no_input_escalates_reprompts_then_falls_back(call: Call) -> None:
    result = call(MENU, "s s s")
    assert result.heard == ["menu-prompt", "say-something", "say-something-louder", "sorry"]
    assert [d["tries"] for d in of_kind(result, "no_input")] == [1, 2, 3]
    assert result.outcome == "fell-back"


def test_last_escalating_reprompt_repeats(call: Call) -> None:
    flows = MENU.replace("retries: 2, reprompts", "retries: 3, reprompts")
    result = call(flows, "s s s s")
    assert result.heard[1:4] == ["say-something", "say-something-louder", "say-something-louder"]


def test_invalid_keys_are_counted_apart_from_silence(call: Call) -> None:
    result = call(MENU, "9 s 1")
    assert result.heard == ["menu-prompt", "wrong-key", "menu-prompt", "say-something"]
    assert result.outcome == "chose-one"


def test_invalid_retries_used_up_go_to_failed(call: Call) -> None:
    result = call(MENU, "9 8")
    assert result.outcome == "fell-back"
    assert len(of_kind(result, "invalid")) == 2


def test_menu_without_failed_ends_call_with_menu_failed(call: Call) -> None:
    flows = MENU.replace("      failed: fallback\n", "")
    assert call(flows, "9 8").outcome == "menu-failed"


def test_timeout_waits_the_configured_time(call: Call) -> None:
    flows = MENU.replace("prompt: menu-prompt\n", "prompt: menu-prompt\n      timeout: 7s\n", 1)
    result = call(flows, "s 1")
    silence = [e for e in result.events if e.kind == "silence"]
    played = [e for e in result.events if e.kind == "played"]
    assert silence[0].detail["timeout"] == 7.0
    assert silence[0].at - played[0].at == 7.0


def test_default_timeout_is_five_seconds_and_flow_defaults_override(call: Call) -> None:
    assert of_kind(call(MENU, "s 1"), "silence")[0]["timeout"] == 5.0
    flows = MENU.replace("start: menu", "start: menu\ndefaults: {timeout: 8s}")
    assert of_kind(call(flows, "s 1"), "silence")[0]["timeout"] == 8.0


def test_barge_in_interrupts_the_menu_prompt(call: Call) -> None:
    result = call(MENU, script=[{"press": "1", "during": "menu-prompt"}])
    played = of_kind(result, "played")
    assert played[0] == {"prompt": "menu-prompt", "language": "en", "interrupted_by": "1"}
    assert result.outcome == "chose-one"
    assert result.seconds == 0.5  # half a second into a 2 s prompt


def test_key_pressed_during_non_interruptible_play_is_lost(call: Call) -> None:
    flows = """
    flow: p
    start: info
    steps:
      info: {play: [long-notice], next: menu}
      menu:
        menu: {prompt: menu-prompt, choices: {"1": done}, failed: done}
      done: {hangup: true}
    """
    result = call(flows, script=[{"press": "1", "after": "1s"}, "silence", "silence", "silence"])
    assert of_kind(result, "ignored-key") == [{"key": "1", "at": 1.0}]
    assert of_kind(result, "played")[0]["interrupted_by"] is None
    assert len(of_kind(result, "no_input")) == 3


def test_play_with_barge_in_skips_remaining_prompts(call: Call) -> None:
    flows = """
    flow: p
    start: info
    steps:
      info: {play: [first, second, third], barge_in: true, next: done}
      done: {hangup: true}
    """
    result = call(flows, script=[{"press": "5", "during": "second"}])
    assert result.heard == ["first", "second"]
    assert result.outcome == "completed"
