"""A session that starts while its flow is in maintenance: each mode, action, scope, precedence and spoken end."""

from __future__ import annotations

import datetime as dt
import doctest
import json
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from ivrkit.engine import maintenance as engine_maintenance
from ivrkit.engine.channel import CallInfo
from ivrkit.engine.maintenance import InScope, in_force_for
from ivrkit.engine.state import STATE_VARIABLE, CallState
from ivrkit.engine.world import StaticWorld, preset_maintenance
from ivrkit.maintenance.model import GLOBAL, Maintenance, Mode
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.sim.channel import SimulatedChannel
from ivrkit.sim.script import CallerScript
from ivrkit.sim.session import HandoffResult, Simulation
from tests.calls import Call, build, of_kind

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=BERLIN)

LINE = """
flow: line
timezone: Europe/Berlin
start: hello
on_hangup: note
maintenance:
  planned: {prompt: [upgrade, later], then: hangup}
  emergency: {prompt: fault, reopening: back, then: {goto: offer}}
  closed: {prompt: shut, then: {transfer: {to: PJSIP/standby, timeout: 20s}}}
  windows:
    - {mode: planned, from: "2026-12-01T22:00", until: "2026-12-02T02:00", reason: database upgrade}
steps:
  hello: {play: welcome, next: bye}
  offer:
    branch:
      - {if: "maintenance == 'emergency' and maintenance.until", then: told}
    else: bye
  told:
    set: {mode: "{{ maintenance.mode }}", until: "{{ maintenance.until.strftime('%H:%M') }}",
          reason: "{{ maintenance.reason }}", scope: "{{ maintenance.scope }}"}
    next: bye
  bye: {hangup: {play: goodbye, outcome: done}}
  note: {set: {left: "yes"}}
"""


def world(maintenance: Any) -> StaticWorld:
    return StaticWorld({}, preset_maintenance(maintenance))


def heard(result: Any) -> list[str]:
    return list(result.heard)


def met(result: Any) -> dict[str, Any]:
    events = of_kind(result, "maintenance")
    assert len(events) == 1
    return events[0]


# -- modes and actions -------------------------------------------------------------------------------------------


def test_planned_plays_its_prompts_and_hangs_up_before_the_first_step(call: Call) -> None:
    result = call(LINE, world=world("planned"), start=MONDAY_10)
    assert heard(result) == ["upgrade", "later"]
    assert result.steps == []  # the start step never ran
    assert result.outcome == "maintenance-planned"
    assert met(result) == {"mode": "planned", "scope": GLOBAL, "until": None, "reason": None, "action": "hangup",
                           "target": None}
    assert result.variables["IVRKIT_RESULT"] == "hangup"


def test_the_end_is_spoken_today_tomorrow_or_on_a_date(call: Call) -> None:
    def spoken(until: str) -> list[str]:
        return heard(call(LINE, world=world({"line": {"mode": "planned", "until": until}}), start=MONDAY_10))

    assert spoken("2026-11-23T14:00:00+01:00") == ["upgrade", "later", "we-reopen", "reopen-today", "time:14:00"]
    assert spoken("2026-11-24T08:00:00+01:00") == ["upgrade", "later", "we-reopen", "reopen-tomorrow", "time:08:00"]
    assert spoken("2026-11-26T08:30:00+01:00") == ["upgrade", "later", "we-reopen", "reopen-on", "date:2026-11-26",
                                                   "reopen-at", "time:08:30"]
    assert spoken("2026-11-24T00:30:00Z")[-2:] == ["reopen-tomorrow", "time:01:30"]  # in the flow's timezone
    assert spoken("2027-03-29T06:00:00Z")[-3:] == ["date:2027-03-29", "reopen-at", "time:08:00"]  # summer time


def test_emergency_goes_to_a_step_that_runs_as_usual_and_reads_maintenance(call: Call) -> None:
    until = "2026-11-23T11:30:00+01:00"
    result = call(LINE, world=world({"*": {"mode": "emergency", "until": until, "reason": "fibre cut"}}),
                  start=MONDAY_10)
    assert heard(result) == ["fault", "back", "reopen-today", "time:11:30", "goodbye"]
    assert result.steps == ["line.offer", "line.told", "line.bye"]
    assert result.vars == {"mode": "emergency", "until": "11:30", "reason": "fibre cut", "scope": "*"}
    assert met(result)["action"] == "goto" and met(result)["target"] == "offer"
    assert met(result)["until"] == "2026-11-23T11:30+01:00"
    assert result.outcome == "done"


def test_closed_transfers_and_a_transfer_nobody_answers_ends_the_call(call: Call) -> None:
    maintenance = world({"line": {"mode": "closed", "until": "2026-11-24T08:00:00+01:00"}})
    result = call(LINE, world=maintenance, start=MONDAY_10)
    assert heard(result) == ["shut", "we-reopen", "reopen-tomorrow", "time:08:00"]
    assert result.outcome == "transfer:PJSIP/standby"
    assert (result.variables["IVRKIT_RESULT"], result.variables["IVRKIT_TIMEOUT"]) == ("transfer", "20")
    state = CallState.from_channel(result.variables[STATE_VARIABLE])
    assert (state.step, state.maintenance) == (None, "closed")  # no step handed off: the mode did

    busy = call(LINE, world=maintenance, start=MONDAY_10, handoffs=[HandoffResult("BUSY", after=5)])
    assert busy.outcome == "maintenance-transfer-busy"
    assert of_kind(busy, "maintenance-returned") == [{"mode": "closed", "action": "transfer", "outcome": "busy"}]
    assert len(of_kind(busy, "maintenance")) == 1  # the second session does not meet it again
    assert heard(busy) == heard(result)


QUEUED = """
flow: queued
start: hello
on_hangup: note
maintenance:
  emergency: {prompt: fault, then: {queue: {name: backup, timeout: 5m, priority: 7}}}
steps:
  hello: {hangup: {play: welcome}}
  note: {set: {left: "yes"}}
"""


def test_a_queue_action_hands_off_and_a_timeout_ends_the_call(call: Call) -> None:
    result = call(QUEUED, world=world("emergency"))
    assert heard(result) == ["fault"]
    assert result.outcome == "queue:backup"
    assert [result.variables[f"IVRKIT_{name}"] for name in ("RESULT", "TARGET", "TIMEOUT", "PRIORITY")] == [
        "queue", "backup", "300", "7"]
    timed_out = call(QUEUED, world=world("emergency"), handoffs=[HandoffResult("TIMEOUT", after=300)])
    assert timed_out.outcome == "maintenance-queue-timeout"


def test_a_caller_who_hangs_up_in_the_maintenance_queue_gets_the_hangup_handler(call: Call) -> None:
    result = call(QUEUED, world=world("emergency"), script=[{"hangup": True, "after": 60}],
                  handoffs=[HandoffResult("TIMEOUT", after=300)])
    assert result.outcome == "caller-hangup"
    assert result.vars == {"left": "yes"}
    assert result.steps[-1] == "queued.note"


def test_a_caller_who_hangs_up_during_the_announcement(call: Call) -> None:
    result = call(LINE, world=world("planned"), script=[{"hangup": True, "after": 1}], start=MONDAY_10)
    assert result.outcome == "caller-hangup"
    assert result.vars == {"left": "yes"}  # on_hangup ran


def test_without_a_maintenance_block_the_gate_prompt_plays_and_the_call_ends(call: Call) -> None:
    plain = "flow: plain\nstart: hello\ndialplan: {maintenance: {closed: gate-closed}}\nsteps:\n" \
            "  hello: {hangup: {play: welcome}}\n"
    result = call(plain, world=world({"plain": {"mode": "closed", "until": "2026-11-23T14:00:00+01:00"}}),
                  start=MONDAY_10)
    assert heard(result) == ["gate-closed"]  # no end spoken: the prompts for it may not exist
    assert result.outcome == "maintenance-closed"
    assert heard(call(plain, world=world("planned"))) == ["maintenance-planned"]


def test_a_transfer_template_that_fails_ends_the_call_with_an_error(call: Call) -> None:
    broken = "flow: b\nstart: hello\nmaintenance:\n  planned: {then: {transfer: '{{ vars.backup }}'}}\n" \
             "steps:\n  hello: {hangup: {play: welcome}}\n"
    result = call(broken, world=world("planned"))
    assert result.outcome == "error"
    assert "backup" in of_kind(result, "error")[0]["message"]


# -- scope, precedence, time -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("presets", "expected"),
    [
        ({"line": "planned"}, ("planned", "line")),
        ({"*": "planned"}, ("planned", GLOBAL)),
        ({"other": "planned"}, None),
        ({"line": "planned", "*": "emergency"}, ("emergency", GLOBAL)),  # mode first, even global
        ({"line": "closed", "*": "planned"}, ("planned", GLOBAL)),
        ({"line": {"mode": "closed", "until": "2026-11-23T12:00:00+01:00"},
          "*": {"mode": "closed", "until": "2026-11-23T18:00:00+01:00"}}, ("closed", "line")),  # the flow's own
        ({"line": {"mode": "planned", "until": "2026-11-23T10:00:00+01:00"}}, None),  # ended: the end is not in it
        ({"line": {"mode": "planned", "from": "2026-11-23T10:30:00+01:00"}}, None),  # not started yet
    ],
)
def test_scope_and_precedence(presets: dict[str, Any], expected: tuple[str, str] | None) -> None:
    flow = build(LINE)["line"]
    found = in_force_for(world(presets), flow, MONDAY_10)
    assert (None if found is None else (found.mode.value, found.scope)) == expected


def test_the_flows_own_windows_meet_the_worlds_by_the_same_rules() -> None:
    flow = build(LINE)["line"]
    upgrade = dt.datetime(2026, 12, 1, 23, 0, tzinfo=BERLIN)
    found = in_force_for(world({}), flow, upgrade)
    assert found is not None
    assert (found.mode, found.scope, found.reason) == (Mode.PLANNED, "line", "database upgrade")
    assert found.until == dt.datetime(2026, 12, 2, 2, 0, tzinfo=BERLIN)
    assert in_force_for(world({}), flow, dt.datetime(2026, 12, 2, 2, 0, tzinfo=BERLIN)) is None  # ended
    emergency = in_force_for(world("emergency"), flow, upgrade)  # a global emergency beats the flow's window
    assert emergency is not None and (emergency.mode, emergency.scope) == (Mode.EMERGENCY, GLOBAL)
    closed = in_force_for(world({"line": "closed"}), flow, upgrade)  # planned beats closed, whoever set it
    assert closed is not None and closed.mode is Mode.PLANNED and closed.reason == "database upgrade"
    planned = in_force_for(world({"*": {"mode": "planned", "reason": "everything"}}), flow, upgrade)
    assert planned is not None and planned.reason == "database upgrade"  # the same mode: the flow's own window


def test_a_window_starting_during_a_call_does_not_change_the_call(call: Call) -> None:
    """Maintenance is met when the session starts; a call already in the flow carries on."""
    flow = build(LINE)
    result = call(flow, world=world({}), start=dt.datetime(2026, 12, 1, 21, 59, 59, tzinfo=BERLIN))
    assert of_kind(result, "maintenance") == [] and result.outcome == "done"


def test_a_call_resumed_after_a_queue_does_not_meet_maintenance_switched_on_meanwhile() -> None:
    flows = build("flow: q\nstart: join\nsteps:\n  join: {queue: support, outcomes: {timeout: bye}}\n"
                  "  bye: {hangup: {play: goodbye, outcome: bye}}\n")
    channel = SimulatedChannel(CallInfo("1.1", "+4930123456"), MONDAY_10, CallerScript([]))
    first = Simulation(flows).engine.run(channel, "q")
    assert first.handoff is not None
    later = Simulation(flows, world=world("emergency")).engine
    resumed = later.run(channel, "q", resume_outcome="TIMEOUT")
    assert resumed.outcome == "bye" and resumed.journal.of_kind("maintenance") == []


def test_a_goto_into_another_flow_in_maintenance_goes_on() -> None:
    """Only the flow a call starts in is checked: another flow's maintenance is met by calls that start there."""
    flows = build("flow: a\nstart: go\nsteps:\n  go: {goto: {flow: b}}\n",
                  "flow: b\nstart: hi\nsteps:\n  hi: {hangup: {play: hi, outcome: in-b}}\n")
    result = Simulation(flows, world=world({"b": "planned"})).run("a", CallerScript([]))
    assert result.outcome == "in-b"


def test_the_expression_value_equals_its_mode_and_says_nothing_when_open() -> None:
    value = InScope(Maintenance(Mode.CLOSED, "line", dt.datetime(2026, 11, 23, 13, tzinfo=dt.UTC), "night"),
                    "Europe/Berlin")
    assert value == "closed" and value != "planned" and value in ["planned", "closed"]  # `in` compares str == value
    assert (str(value), value.until, value.reason) == ("closed", dt.datetime(2026, 11, 23, 14, tzinfo=BERLIN),
                                                       "night")
    assert repr(value) == "<maintenance closed (line) until 2026-11-23T14:00+01:00>"
    flow = """
    flow: e
    start: which
    steps:
      which:
        branch: [{if: "maintenance is none", then: open}]
        else: open
      open: {set: {seen: "{{ maintenance }}"}, next: bye}
      bye: {hangup: true}
    """
    result = Simulation(build(flow)).run("e", CallerScript([]))
    assert result.vars == {"seen": None} and result.steps[:2] == ["e.which", "e.open"]


# -- the caller's language ---------------------------------------------------------------------------------------


class _Recording(SimulatedChannel):
    said: list[tuple[str, str, str]] = []

    def say(self, kind: str, value: str, language: str, escape: str) -> str | None:
        self.said.append((kind, value, language))
        return super().say(kind, value, language, escape)


def test_the_prompts_and_the_time_are_in_the_callers_language(tmp_path: Path) -> None:
    for language, words in (("en", ["upgrade", "later", "we-reopen", "reopen-today"]),
                            ("de", ["upgrade", "we-reopen", "reopen-today"])):  # `later` only in English
        (tmp_path / language).mkdir()
        (tmp_path / language / "catalog.yaml").write_text("".join(f"{word}: {language} {word}\n" for word in words))
    catalog = PromptCatalog.load(tmp_path)
    simulation = Simulation(build(LINE.replace("timezone:", "languages: [en, de]\ntimezone:", 1)), catalog)
    presets = world({"line": {"mode": "planned", "until": "2026-11-23T14:00:00+01:00"}})
    _Recording.said = []
    result = simulation.run("line", CallerScript([]), language="de", world=presets, start=MONDAY_10,
                            channel_factory=_Recording)
    played = [(e.detail.get("prompt"), e.detail.get("language")) for e in result.journal.of_kind("played")]
    assert played == [("upgrade", "de"), ("later", "en"), ("we-reopen", "de"), ("reopen-today", "de"), (None, "de")]
    assert _Recording.said == [("time", "14:00", "de")]  # the channel says 14:00 the German way (24 hours)


# -- the call state and the faked world --------------------------------------------------------------------------


def test_the_call_state_keeps_the_mode_of_a_maintenance_hand_off() -> None:
    state = CallState("line", maintenance="closed")
    assert json.loads(state.to_json())["x"] == "closed"
    assert CallState.from_json(state.to_json()).maintenance == "closed"
    assert "x" not in json.loads(CallState("line").to_json())


def test_preset_maintenance_reads_what_flow_tests_and_simulate_give() -> None:
    presets = preset_maintenance({"support": {"mode": "closed", "until": "2026-11-23T14:00", "reason": "night"},
                                  "*": "planned"})
    assert presets["*"] == Maintenance(Mode.PLANNED, GLOBAL, None)
    assert presets["support"].until == dt.datetime(2026, 11, 23, 14, 0)  # read in the call's timezone later
    localized = StaticWorld({}, presets).fresh("Europe/Berlin").maintenance_presets["support"]
    assert localized.until == dt.datetime(2026, 11, 23, 14, 0, tzinfo=BERLIN)
    for bad, message in (
        ({"support": "planed"}, "maintenance of support: 'planed' is not one of: planned, emergency, closed"),
        ({"support": {"mode": "closed", "til": "x"}}, "maintenance of support: unknown field(s) til; known: mode, "
         "until, from, reason"),
        (["planned"], "maintenance: expected a mode or {flow: mode}, got ['planned']"),
    ):
        with pytest.raises(ValueError) as error:
            preset_maintenance(bad)
        assert str(error.value) == message
    assert StaticWorld.from_mapping({"maintenance": "closed"}).maintenance("x", MONDAY_10) == Maintenance(
        Mode.CLOSED, GLOBAL, None)


def test_doctests() -> None:
    failures, tried = doctest.testmod(engine_maintenance)
    assert tried > 0 and failures == 0
