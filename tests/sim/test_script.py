"""Caller scripts: the compact and YAML forms, and how their timing plays out on the simulated clock."""

from __future__ import annotations

import pytest

from ivrkit.sim.script import Action, ScriptError, action_from, parse_keys
from tests.calls import Call, of_kind

MENU = """
flow: s
start: menu
steps:
  menu:
    menu: {prompt: menu-prompt, choices: {"1": done}, timeout: 5s, failed: done}
  done: {hangup: true}
"""


def test_compact_form() -> None:
    actions = parse_keys("1 12# s w2.5 h *").actions
    assert actions == [
        Action("press", keys="1"),
        Action("press", keys="12#"),
        Action("silence"),
        Action("wait", seconds=2.5),
        Action("hangup"),
        Action("press", keys="*"),
    ]


@pytest.mark.parametrize("text, message", [("1x", "'1x' is not keys"), ("wfoo", "'foo' is not a duration")])
def test_compact_form_errors(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_keys(text)


def test_yaml_form_and_errors() -> None:
    assert action_from({"press": 12, "during": "menu-prompt"}) == Action("press", keys="12", during="menu-prompt")
    assert action_from({"hangup": True, "after": "2m"}) == Action("hangup", after=120.0)
    with pytest.raises(ScriptError, match="unknown option"):
        action_from({"press": "1", "durin": "x"})
    with pytest.raises(ScriptError, match="expected one of"):
        action_from({"pres": "1"})


def test_wait_delays_the_next_key_into_the_listening_window(call: Call) -> None:
    result = call(MENU, "w3 1")
    key = next(e for e in result.events if e.kind == "key")
    assert key.at == 3.0  # the 2 s prompt ended at 2.0; the caller waited until 3.0
    assert result.outcome == "completed"


def test_wait_longer_than_the_timeout_causes_no_input(call: Call) -> None:
    result = call(MENU, "w8 1")
    assert len(of_kind(result, "no_input")) == 1
    assert result.steps[-1] == "s.done"


def test_after_presses_at_an_absolute_time(call: Call) -> None:
    result = call(MENU, script=[{"press": "1", "after": "4s"}])
    assert next(e for e in result.events if e.kind == "key").at == 4.0


def test_a_silent_caller_gives_up_after_the_call_limit(call: Call) -> None:
    flows = """
    flow: forever
    start: menu
    steps:
      menu:
        menu: {prompt: p, choices: {"1": menu}, no_input: {retries: 20}, failed: menu}
    """
    result = call(flows, max_seconds=100)
    assert result.outcome == "caller-hangup"
    assert result.seconds == 100.0
    assert of_kind(result, "caller-gives-up") == [{"after": 100.0}]
