"""Sessions: hand-off and resumption through call variables, hang-up anywhere, errors, loops, other flows."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from ivrkit.engine.state import STATE_VARIABLE, CallState
from ivrkit.sim.session import HandoffResult
from tests.calls import Call, build, of_kind

QUEUE = """
flow: q
start: intro
variables: {tries: 0}
on_hangup: record
steps:
  intro: {play: hello, next: count}
  count: {set: {tries: "{{ vars.tries + 1 }}"}, next: join}
  join:
    queue: {name: support, timeout: 2m, priority: 5}
    outcomes: {timeout: again, full: full}
  again:
    menu: {prompt: still-waiting, choices: {"1": count}, failed: bye}
  full: {hangup: {play: too-busy, outcome: full}}
  bye: {hangup: {outcome: bye}}
  record: {set: {hung_up_after: "{{ vars.tries }}"}}
"""


def test_queue_hand_off_sets_the_dialplan_variables(call: Call) -> None:
    result = call(QUEUE, "")
    assert result.outcome == "queue:support"
    assert result.variables["IVRKIT_RESULT"] == "queue"
    assert result.variables["IVRKIT_TARGET"] == "support"
    assert result.variables["IVRKIT_TIMEOUT"] == "120"
    assert result.variables["IVRKIT_PRIORITY"] == "5"
    state = CallState.from_channel(result.variables[STATE_VARIABLE])
    assert (state.flow, state.step, state.vars) == ("q", "join", {"tries": 1})


def test_resume_after_queue_timeout_keeps_flow_variables(call: Call) -> None:
    result = call(QUEUE, "1", handoffs=[HandoffResult("TIMEOUT", after=120), HandoffResult("FULL")])
    assert result.steps == [
        "q.intro",
        "q.count",
        "q.join",
        "q.join",
        "q.again",
        "q.count",
        "q.join",
        "q.join",
        "q.full",
    ]
    assert result.vars["tries"] == 2
    assert result.outcome == "full"
    assert [h[2] for h in result.handoffs] == ["TIMEOUT", "FULL"]
    assert of_kind(result, "session")[1]["number"] == 2


def test_unmapped_queue_outcome_ends_with_queue_status(call: Call) -> None:
    assert call(QUEUE, "", handoffs=[HandoffResult("joinempty")]).outcome == "queue-joinempty"


def test_caller_hangup_while_queued(call: Call) -> None:
    result = call(QUEUE, script=[{"hangup": True, "after": "30s"}], handoffs=[HandoffResult("timeout", after=120)])
    assert result.outcome == "caller-hangup"
    assert result.seconds == 30.0
    assert result.steps[-1] == "q.record"  # the hang-up handler ran on the state saved at the hand-off
    assert result.vars["hung_up_after"] == 1
    assert result.variables["IVRKIT_RESULT"] == "caller-hangup"


@pytest.mark.parametrize("step", ["intro", "again"])
def test_hangup_at_any_step_runs_the_hangup_handler(call: Call, step: str) -> None:
    script = [{"hangup": True, "in_step": step}]
    result = call(QUEUE, script=script, handoffs=[HandoffResult("timeout")])
    assert result.outcome == "caller-hangup"
    assert result.steps[-1] == "q.record"
    assert result.vars["hung_up_after"] == (1 if step == "again" else 0)
    assert result.variables["IVRKIT_RESULT"] == "caller-hangup"


def test_hangup_during_a_prompt_stops_it(call: Call) -> None:
    result = call(QUEUE, script=[{"hangup": True, "during": "hello"}])
    assert of_kind(result, "hangup") == [{"by": "caller"}]
    assert of_kind(result, "played") == []
    assert result.seconds == 0.5


def test_hangup_handler_cannot_play_audio(call: Call) -> None:
    flows = QUEUE.replace('  record: {set: {hung_up_after: "{{ vars.tries }}"}}', "  record: {play: bye-prompt}")
    result = call(flows, script=[{"hangup": True, "in_step": "intro"}])
    assert "cannot run after the caller hung up" in of_kind(result, "error")[0]["message"]


def test_expression_error_goes_to_on_error_or_ends_with_error(call: Call) -> None:
    flows = """
    flow: e
    start: bad
    steps:
      bad: {set: {x: "{{ vars.missing + 1 }}"}, next: done}
      done: {hangup: true}
      oops: {hangup: {outcome: handled}}
    """
    ended = call(flows)
    assert ended.outcome == "error"
    assert "missing" in of_kind(ended, "error")[0]["message"]
    assert ended.variables["IVRKIT_RESULT"] == "error"
    handled = call(flows.replace("start: bad", "start: bad\n    on_error: oops"))
    assert handled.outcome == "handled"


def test_a_loop_without_input_is_stopped(call: Call) -> None:
    flows = """
    flow: l
    start: a
    steps:
      a: {set: {n: 1}, next: b}
      b: {set: {n: 2}, next: a}
    """
    result = call(flows)
    assert result.outcome == "error"
    assert "looping" in of_kind(result, "error")[-1]["message"]


def test_goto_another_flow_and_its_state_survives_hand_off(call: Call) -> None:
    flows = build(
        """
        flow: front
        start: hop
        steps:
          hop: {goto: {flow: back, step: ask}}
        """,
        """
        flow: back
        start: never
        steps:
          never: {hangup: true}
          ask: {transfer: "PJSIP/{{ caller.number[-3:] }}", outcomes: {busy: sorry}}
          sorry: {hangup: {outcome: busy}}
        """,
    )
    result = call(flows, flow="front", caller_number="+49301234100", handoffs=[HandoffResult("BUSY")])
    assert result.steps == ["front.hop", "back.ask", "back.ask", "back.sorry"]
    assert result.handoffs == [("transfer", "PJSIP/100", "BUSY")]
    assert result.outcome == "busy"


def test_transfer_refuses_a_destination_that_could_inject_dialplan(call: Call) -> None:
    flows = """
    flow: t
    start: go
    steps:
      go: {transfer: "PJSIP/{{ caller.name }}"}
    """
    result = call(flows, caller_name="x,,r)\nHANGUP")
    assert result.outcome == "error"
    assert "is not an endpoint or number" in of_kind(result, "error")[0]["message"]
    assert "IVRKIT_TARGET" not in result.variables


def test_hours_step_uses_the_simulated_clock(call: Call) -> None:
    flows = """
    flow: h
    start: check
    steps:
      check:
        hours: {timezone: Europe/Berlin, open: {mon-fri: "08:00-18:00"}, holidays: [2026-12-25]}
        open: o
        closed: c
        holiday: x
      o: {hangup: {outcome: open}}
      c: {hangup: {outcome: closed}}
      x: {hangup: {outcome: holiday}}
    """
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert call(flows, start=dt.datetime(2026, 11, 23, 9, 0, tzinfo=berlin)).outcome == "open"
    assert call(flows, start=dt.datetime(2026, 11, 23, 7, 59, tzinfo=berlin)).outcome == "closed"
    assert call(flows, start=dt.datetime(2026, 11, 22, 12, 0, tzinfo=berlin)).outcome == "closed"  # Sunday
    assert call(flows, start=dt.datetime(2026, 12, 25, 12, 0, tzinfo=berlin)).outcome == "holiday"


def test_state_round_trips_and_rejects_foreign_text() -> None:
    state = CallState("f", "s", {"a": 1, "b": "x"}, ["m1", "m2"], 2)
    assert CallState.from_json(state.to_json()) == state
    with pytest.raises(ValueError):
        CallState.from_json(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="keep flow variables small"):
        CallState("f", vars={"big": "x" * 5000}).to_json()


def test_on_the_channel_the_state_is_base64url_and_the_json_of_earlier_versions_still_resumes() -> None:
    state = CallState("f", "s", {"name": 'Ann "A", B\n${SHELL(id)}', "ü": "ß"}, ["m1"], 2, language="de")
    encoded = state.to_channel()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", encoded)  # MSet's plain-value alphabet: no comma, quote or ${
    assert CallState.from_channel(encoded) == state
    assert CallState.from_channel(state.to_json()) == state  # written as JSON before this version
    for garbage in ["%%%", "e30", "WzEsMl0"]:  # not base64; {} without a flow; [1,2]
        with pytest.raises(ValueError, match="not an ivrkit call state"):
            CallState.from_channel(garbage)


def test_journal_has_timestamps_and_an_end(call: Call) -> None:
    result = call(QUEUE, "")
    kinds = [e.kind for e in result.events]
    assert kinds[0] == "session" and "end" in kinds
    times = [e.at for e in result.events]
    assert times == sorted(times)
    assert of_kind(result, "played")[0]["prompt"] == "hello"


def test_variables_named_like_dict_methods_and_read_only_vars(call: Call) -> None:
    flows = """
    flow: v
    start: a
    variables: {items: 3, keys: "k"}
    steps:
      a:
        branch:
          - if: "vars.items == 3 and vars['keys'] == 'k' and 'items' in vars and vars.missing is not defined"
            then: ok
        else: bad
      ok: {hangup: {outcome: ok}}
      bad: {hangup: {outcome: bad}}
    """
    assert call(flows).outcome == "ok"
    mutate = flows.replace("vars.items == 3 and", "vars.update({'items': 4}) and")
    result = call(mutate)
    assert result.outcome == "error"
    assert result.vars["items"] == 3
