"""The callback step and the queue step's callback on hang-up, on simulated calls: what the world is asked to
register, what the call keeps, what the caller hears, and what `ivrkit check` says about the YAML."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from ivrkit.callbacks.model import Mode, Origin
from ivrkit.callbacks.settings import CallbackSettings
from ivrkit.engine.channel import CallInfo
from ivrkit.engine.runner import Engine
from ivrkit.engine.state import STATE_VARIABLE, CallbackOptIn, CallState
from ivrkit.engine.world import (
    PRESET_REQUESTED_AT,
    CallbackRequest,
    PendingCallback,
    QueueStats,
    StaticWorld,
    preset_callbacks,
)
from ivrkit.flow.segments import PromptSegment
from ivrkit.prompts.catalog import PromptCatalog, PromptEntry
from ivrkit.prompts.languages import say_words, spoken_seconds
from ivrkit.sim.channel import SimulatedChannel
from ivrkit.sim.script import parse_keys
from ivrkit.sim.session import DEFAULT_START, HandoffResult
from ivrkit.steps.callback import PROMPTS, Callback, CallbackSpec, WaitSpec
from tests.calls import Call, build, of_kind
from tests.flow.helpers import check, hints, load, messages

FLOW = """
flow: cb
languages: [en, de]
timezone: Europe/Berlin
start: offer
queues:
  support: {callback: {country: DE}}
steps:
  offer:
    callback: {queue: support, priority: 3}
    outcomes: {cancelled: menu}
  menu:
    menu: {prompt: main-menu, choices: {"1": offer}, failed: bye}
  bye: {hangup: {outcome: bye}}
"""
QUEUED = """
flow: cb
timezone: Europe/Berlin
start: join
queues:
  support: {exit_keys: {"1": callback}, callback: {country: DE}}
steps:
  join:
    queue: {name: support, priority: 4}
    outcomes: {callback: offer}
    callback_on_hangup: {when: automatic, min_wait: 1m}
  offer:
    callback: {queue: support, reason: {prompt: why, choices: {"1": billing, "2": tech}}}
    next: bye
  bye: {hangup: {outcome: bye}}
"""
CALLER = "+4930123456"
BUSY = QueueStats(waiting=3, logged_in=4, avg_talk=240, answered=20)  # 4th in line: 4 * 240 s / 4 = 4 minutes


def world(*presets: dict[str, str], down: bool = False, **queues: QueueStats) -> StaticWorld:
    callbacks, _ = preset_callbacks(list(presets))
    return StaticWorld(dict(queues), {}, preset_callbacks=callbacks, callbacks_down=down)


def with_flow(**changes: str) -> str:
    """FLOW with the offer step's callback options replaced (``callback="{queue: support, number: ask}"``)."""
    text = FLOW
    for option, value in changes.items():
        old = {"callback": "{queue: support, priority: 3}", "outcomes": "{cancelled: menu}"}[option]
        text = text.replace(f"{option}: {old}", f"{option}: {value}")
    return text


# -- asking for a callback ------------------------------------------------------------------------------------


def test_a_confirmed_caller_id_is_registered_with_everything_the_dispatcher_needs(call: Call) -> None:
    place = world(support=BUSY)
    result = call(FLOW, "1", world=place, language="de")
    assert result.heard == ["callback-confirm-number", "digits:030123456", "callback-confirm-or-change",
                            "callback-requested", "wait-about", "number:4", "minutes"]
    assert result.outcome == "callback-requested"  # no step for it, no `next`: the call ends, labelled
    said = spoken_seconds(say_words("digits", "030123456", "de"))  # the number, in German
    asked = DEFAULT_START + dt.timedelta(seconds=2 + said + 2)  # two prompts and nine digits in
    assert place.callback_requests == [
        CallbackRequest(CALLER, "support", "cb", Origin.REQUEST, "sim-1", asked, asked, None, "de", 3)
    ]
    assert place.callbacks == [PendingCallback("cb-1", CALLER, "support", "pending", asked)]
    assert of_kind(result, "callback-requested") == [
        {"id": "cb-1", "number": CALLER, "queue": "support", "origin": "request", "reason": None, "new": True}
    ]


def test_a_caller_queued_earlier_keeps_the_place_they_joined_at(call: Call) -> None:
    place = world(support=BUSY)
    result = call(QUEUED, "1 2", world=place, handoffs=[HandoffResult("callback", after=180)])
    (request,) = place.callback_requests
    assert request.joined_at == DEFAULT_START  # joined at once: no announce, no overflow rules
    assert request.requested_at > DEFAULT_START + dt.timedelta(seconds=180)
    assert (request.reason, request.priority) == ("tech", 0)
    assert result.steps == ["cb.join", "cb.join", "cb.offer", "cb.bye"]


def test_number_ask_types_a_number_even_with_a_caller_id(call: Call) -> None:
    place = world()
    result = call(with_flow(callback="{queue: support, number: ask}"), "030987654# 1", world=place)
    assert result.heard[:4] == ["callback-enter-number", "callback-confirm-number", "digits:030987654",
                                "callback-confirm-or-change"]
    assert [c.number for c in place.callbacks] == ["+4930987654"]


def test_number_caller_takes_the_caller_id_without_asking(call: Call) -> None:
    place = world()
    result = call(with_flow(callback="{queue: support, number: caller, wait: false}"), world=place)
    assert result.heard == ["callback-requested"]
    assert [c.number for c in place.callbacks] == [CALLER]


def test_an_unusable_caller_id_is_typed_instead(call: Call) -> None:
    place = world()
    result = call(with_flow(callback="{queue: support, number: caller}"), "0301111# 1", world=place,
                  caller_number="030123456")  # national, but the flow has a country: usable
    assert result.heard[0] == "callback-requested"
    place = world()
    result = call(with_flow(callback="{queue: support, number: caller}"), "030987654# 1", world=place,
                  caller_number="Restricted")
    assert result.heard[0] == "callback-enter-number"
    assert of_kind(result, "callback-caller-id") == [{"usable": False, "why": "anonymous"}]
    assert [c.number for c in place.callbacks] == ["+4930987654"]


def test_a_caller_who_keeps_changing_the_number_is_failed(call: Call) -> None:
    place = world()
    result = call(FLOW, "2 030987654# 2 030987655# 2 030987656# 2", world=place)
    assert result.outcome == "callback-failed"
    assert result.heard.count("callback-enter-number") == 3  # the caller ID, then three typed numbers
    assert of_kind(result, "callback-number")[-1]["why"] == "the caller changed the number too often"
    assert place.callbacks == []


def test_silence_at_the_read_back_fails_after_the_tries(call: Call) -> None:
    result = call(FLOW, world=world())
    assert result.heard.count("callback-confirm-or-change") == 3
    assert result.outcome == "callback-failed"


def test_invalid_entries_are_re_prompted_with_the_invalid_prompt(call: Call) -> None:
    place = world()
    result = call(FLOW, "2 12# 030987654# 1", world=place)
    assert result.heard[3:7] == ["callback-enter-number", "callback-invalid-number", "callback-enter-number",
                                 "callback-confirm-number"]
    assert of_kind(result, "invalid")[0] == {"digits": "12", "tries": 1, "why": "invalid"}
    assert [c.number for c in place.callbacks] == ["+4930987654"]


def test_a_typed_number_stops_at_the_longest_e164_number(call: Call) -> None:
    result = call(with_flow(callback="{queue: support, number: ask}"), "0099999999999999999", world=world())
    assert of_kind(result, "invalid")[0]["digits"] == "00999999999999999"  # 17 keys: 00 and 15 digits


def test_other_prompts_and_the_wait_wording_can_be_chosen(call: Call) -> None:
    flow = with_flow(callback="{queue: support, number: caller, wait: {wording: less_than}, "
                              "prompts: {requested: main-menu}}")
    result = call(flow, world=world(support=BUSY))
    assert result.heard == ["main-menu", "wait-less-than", "number:5", "minutes"]


def test_the_store_failing_is_said_and_is_an_outcome(call: Call) -> None:
    result = call(with_flow(outcomes="{unavailable: menu}"), "1", world=world(down=True))
    assert result.heard[3:5] == ["callback-unavailable", "main-menu"]
    assert of_kind(result, "callback-unavailable") == [
        {"message": "the callback store is unavailable (simulated)"}
    ]


class RacingWorld(StaticWorld):
    """Finds no callback when asked, then has one when the request comes (the caller's other phone was quicker)."""

    def pending_callback(self, number: str, queue: str | None) -> PendingCallback | None:
        return None

    def request_callback(self, request: CallbackRequest) -> PendingCallback:
        return PendingCallback("cb-9", request.number, request.queue, "pending", PRESET_REQUESTED_AT, new=False)


def test_a_request_that_finds_an_active_callback_keeps_that_one(call: Call) -> None:
    result = call(FLOW, "1", world=RacingWorld({}, {}))
    assert result.heard[-1] == "callback-kept"
    assert result.outcome == "callback-kept"
    assert of_kind(result, "callback-requested")[0]["new"] is False


def test_next_takes_the_outcomes_not_mapped(call: Call) -> None:
    flow = FLOW.replace("    outcomes: {cancelled: menu}\n", "    outcomes: {cancelled: menu}\n    next: bye\n")
    assert call(flow, "1", world=world()).outcome == "bye"


# -- a caller who already has one -------------------------------------------------------------------------------


def test_an_existing_callback_is_kept_on_silence(call: Call) -> None:
    place = world({"number": CALLER, "queue": "support"})
    result = call(FLOW, world=place)
    assert result.heard == ["callback-existing"] * 3 + ["callback-kept"]
    assert result.outcome == "callback-kept"
    assert [c.state for c in place.callbacks] == ["pending"]


def test_an_existing_callback_is_cancelled_with_2(call: Call) -> None:
    place = world({"number": CALLER, "queue": "support", "state": "connected", "id": "abc"})
    result = call(FLOW, "2", world=place)
    assert result.heard[:3] == ["callback-existing", "callback-cancelled", "main-menu"]
    assert place.callbacks == [PendingCallback("abc", CALLER, "support", "cancelled", PRESET_REQUESTED_AT, False)]
    assert of_kind(result, "callback-cancelled") == [
        {"id": "abc", "number": CALLER, "queue": "support", "cancelled": True}
    ]


def test_a_callback_for_another_queue_is_not_a_duplicate(call: Call) -> None:
    place = world({"number": CALLER, "queue": "billing"})
    call(FLOW, "1", world=place)
    assert [(c.queue, c.state) for c in place.callbacks] == [("billing", "pending"), ("support", "pending")]


# -- opting in, and the queue step's callback on hang-up ----------------------------------------------------------

OPT_IN = """
flow: cb
start: opt_in
queues:
  support: {callback: {country: DE}}
steps:
  opt_in:
    callback: {queue: support, when: on_hangup, reason: {prompt: why, choices: {"1": billing}}}
    next: join
  join:
    queue: {name: support, priority: 2}
    callback_on_hangup: {when: opted_in}
"""


def test_an_opt_in_is_kept_in_the_call_and_nothing_is_stored(call: Call) -> None:
    place = world()
    result = call(OPT_IN, "1 1", world=place)
    assert result.heard[-1] == "callback-opted-in"
    assert "callback-requested" not in result.heard and place.callbacks == []
    state = CallState.from_channel(result.variables[STATE_VARIABLE])
    assert state.callback == CallbackOptIn("support", CALLER, "billing")
    assert result.outcome == "queue:support"


def hung_up(flow: str, waited: float, caller: str = CALLER, place: StaticWorld | None = None,
            keys: str = "", everything: bool = False, **variables: str) -> tuple[StaticWorld, list[dict[str, Any]]]:
    """A first session that queues the caller, then the hang-up handler's session on the dead channel; the world
    and the events of that second session (only the callback ones unless ``everything``)."""
    place = place if place is not None else world()
    engine = Engine(build(flow), place)
    channel = SimulatedChannel(CallInfo("live-7", caller), DEFAULT_START, parse_keys(keys))
    assert engine.run(channel, "cb").handoff is not None
    channel.pass_time(waited)
    channel.variables.update(variables)
    result = engine.run_hangup(channel, "cb")
    events = [{"kind": e.kind, **e.detail} for e in result.journal.events]
    return place, [e for e in events if everything or e["kind"].startswith("callback")]


def test_an_opted_in_caller_who_hangs_up_waiting_is_registered_with_their_place() -> None:
    place, events = hung_up(OPT_IN, 300, keys="1 1")
    (request,) = place.callback_requests
    assert (request.number, request.origin, request.reason, request.priority) == (CALLER, Origin.OPT_IN, "billing", 2)
    said = spoken_seconds(say_words("digits", "030123456", "en"))
    assert request.joined_at == DEFAULT_START + dt.timedelta(seconds=2 + said + 2 + 2 + 2)  # after the prompts
    assert request.requested_at == request.joined_at + dt.timedelta(seconds=300)
    assert request.uniqueid == "live-7"
    assert events[-1] == {"kind": "callback-requested", "id": "cb-1", "number": CALLER, "queue": "support",
                          "origin": "opt-in", "reason": "billing", "new": True}


def test_opted_in_only_registers_callers_who_opted_in() -> None:
    flow = OPT_IN.replace("start: opt_in", "start: join")
    place, events = hung_up(flow, 300)
    assert place.callbacks == []
    assert events == [{"kind": "callback-skipped", "queue": "support", "why": "the caller did not opt in"}]


def test_automatic_normalises_the_caller_id_with_the_queues_country() -> None:
    place, _ = hung_up(QUEUED, 120, caller="030123456")
    (request,) = place.callback_requests
    assert (request.number, request.origin, request.reason, request.priority) == (CALLER, Origin.AUTOMATIC, None, 4)
    assert request.joined_at == DEFAULT_START


def test_automatic_takes_an_opt_ins_number_and_reason() -> None:
    flow = QUEUED.replace("start: join", "start: opt_in").replace(
        "  offer:", "  opt_in:\n    callback: {queue: support, when: on_hangup, number: ask}\n    next: join\n  offer:"
    )
    place, _ = hung_up(flow, 120, keys="030987654# 1")
    (request,) = place.callback_requests
    assert (request.number, request.origin) == ("+4930987654", Origin.OPT_IN)


@pytest.mark.parametrize(
    ("waited", "caller", "variables", "why"),
    [
        (59, CALLER, {}, "waited 59s, less than 60s"),
        (120, "anonymous", {}, "'anonymous' cannot be called back: the caller ID is withheld or not a number"),
        (120, CALLER, {"ANSWEREDTIME_MS": "30000"}, None),  # answered: nothing to call back
    ],
)
def test_no_callback_without_a_usable_number_or_a_long_enough_wait(
    waited: float, caller: str, variables: dict[str, str], why: str | None
) -> None:
    place, events = hung_up(QUEUED, waited, caller, **variables)
    assert place.callbacks == []
    assert events == ([{"kind": "callback-skipped", "queue": "support", "why": why}] if why else [])


def test_a_store_failure_on_hang_up_is_logged_and_the_handler_goes_on() -> None:
    flow = QUEUED.replace("start: join", "start: join\non_hangup: note") + "  note: {set: {noted: yes}}\n"
    _, events = hung_up(flow, 120, place=world(down=True), everything=True)
    assert [e for e in events if e["kind"] == "callback-unavailable"] == [
        {"kind": "callback-unavailable", "queue": "support",
         "message": "the callback store is unavailable (simulated)"},
    ]
    assert {"kind": "set", "noted": True} in events  # the flow's hang-up handler still ran


def test_the_call_state_keeps_an_opt_in_compactly_and_reads_old_states() -> None:
    state = CallState("cb", joined={"support": 1.5}, callback=CallbackOptIn("support", CALLER))
    assert state.to_json() == ('{"f":"cb","s":null,"v":{},"m":[],"n":0,"j":{"support":1.5},'
                               '"c":["support","+4930123456"]}')
    assert CallState.from_json(state.to_json()) == state
    with_reason = CallState("cb", callback=CallbackOptIn("support", CALLER, "billing"))
    assert CallState.from_json(with_reason.to_json()) == with_reason
    old = CallState.from_json('{"f":"q","s":"join","v":{},"m":[],"n":1,"q":["support",12.5]}')
    assert (old.joined, old.callback) == ({}, None)
    assert '"c"' not in CallState("cb").to_json() and '"j"' not in CallState("cb").to_json()


# -- caller.callback in expressions ----------------------------------------------------------------------------

RECOGNISE = """
flow: cb
timezone: Europe/Berlin
start: check
queues:
  support: {callback: {country: DE}}
steps:
  check:
    branch:
      - if: "caller.callback and caller.callback.state == 'dialing'"
        then: dialing
      - if: caller.callback
        then: offer
    else: none
  offer:
    callback: {queue: support, number: caller}
    next: again
  again:
    branch:
      - if: caller.callback
        then: dialing
    else: none
  none:
    set: {seen: "{{ caller.callback }}"}
    next: bye
  dialing:
    set: {seen: "{{ caller.callback.queue }} {{ caller.callback.requested_at.strftime('%H:%M') }}"}
    next: bye
  bye: {hangup: true}
"""


class CountingWorld(StaticWorld):
    reads = 0

    def pending_callback(self, number: str, queue: str | None) -> PendingCallback | None:
        self.reads += 1
        return super().pending_callback(number, queue)


def test_caller_callback_reads_the_callers_callback_in_the_flows_timezone(call: Call) -> None:
    result = call(RECOGNISE, caller_number="030123456",
                  world=world({"number": CALLER, "queue": "support", "state": "dialing"}))
    assert result.vars["seen"] == "support 09:00"  # 08:00 UTC


def test_caller_callback_is_read_once_and_again_after_a_cancel(call: Call) -> None:
    place = CountingWorld({}, {}, preset_callbacks=world({"number": CALLER, "queue": "support"}).preset_callbacks)
    result = call(RECOGNISE, "2", world=place)
    assert result.steps == ["cb.check", "cb.offer", "cb.again", "cb.none", "cb.bye"]
    assert result.vars["seen"] is None  # cancelled: none left
    assert place.reads == 3  # the first branch (both conditions), the step's own check, and after the cancel


def test_caller_callback_is_not_read_when_no_expression_uses_it(call: Call) -> None:
    place = CountingWorld({}, {})
    call("flow: cb\nstart: a\nsteps:\n  a: {set: {x: '{{ caller.number }}'}, next: b}\n  b: {hangup: true}\n",
         world=place)
    assert place.reads == 0


def test_an_anonymous_caller_has_no_callback(call: Call) -> None:
    place = CountingWorld({}, {})
    result = call(RECOGNISE, caller_number="anonymous", world=place)
    assert result.vars["seen"] is None and place.reads == 0


# -- the YAML, and what `ivrkit check` says -------------------------------------------------------------------

STEP = "  a:\n    callback: support\n    next: end\n"


def test_a_queue_name_is_a_callback_with_the_defaults_and_its_prompts_are_referenced() -> None:
    loaded, diagnostics = load(f"flow: s\nstart: a\nsteps:\n{STEP}  end: {{hangup: true}}\n")
    assert loaded is not None and not diagnostics.items, diagnostics.render()
    step = loaded.steps["a"]
    assert isinstance(step, Callback) and step.spec == CallbackSpec("support")
    prompts = {ref.name for ref in loaded.references if ref.kind == "prompt"}
    assert prompts == {*PROMPTS.values(), "wait-about", "minute", "minutes", "wait-less-than-a-minute",
                       "wait-longer-than-usual"} - {"callback-opted-in"}
    on_hangup = "  a:\n    callback: {queue: support, when: on_hangup, prompts: {kept: goodbye}}\n    next: end\n"
    loaded, _ = load(f"flow: s\nstart: a\nsteps:\n{on_hangup}  end: {{hangup: true}}\n")
    assert loaded is not None
    prompts = {ref.name for ref in loaded.references if ref.kind == "prompt"}
    assert "callback-opted-in" in prompts and "goodbye" in prompts
    assert not prompts & {"callback-requested", "callback-unavailable", "callback-kept", "wait-about"}


def test_the_mapping_form_is_read_whole() -> None:
    text = ("  a:\n    callback:\n      queue: support\n      when: on_hangup\n      number: ask\n"
            "      reason: {prompt: why, choices: {'1': billing, '2': a tech question}}\n"
            "      wait: false\n      priority: 7\n    outcomes: {opted-in: end, failed: end}\n")
    loaded, diagnostics = load(f"flow: s\nstart: a\nsteps:\n{text}  end: {{hangup: true}}\n")
    assert loaded is not None, diagnostics.render()
    spec = loaded.steps["a"].value
    assert (spec.queue, spec.when, spec.number, spec.wait, spec.priority) == ("support", "on_hangup", "ask", None, 7)
    assert spec.reason.choices == {"1": "billing", "2": "a tech question"}
    assert spec.reason.prompt == [PromptSegment("why", spec.reason.prompt[0].location)]
    assert CallbackSpec("q").wait == WaitSpec()


def test_mistakes_in_the_step_are_reported_where_they_are_written() -> None:
    text = ("  a:\n    callback: {queue: support, numbr: ask, when: later, "
            "reason: {prompt: why, choices: {'1': 'no!'}}, prompts: {requestd: x}}\n    outcomes: {request: end}\n")
    _, diagnostics = load(f"flow: s\nstart: a\nsteps:\n{text}  end: {{hangup: true}}\n")
    assert messages(diagnostics) == [
        "5:32: error: unknown option 'numbr' in callback",
        "5:50: error: 'later' is not one of: now, on_hangup",
        "5:94: error: 'no!' is not a valid reason label",
        "5:113: error: 'requestd' is not one of: existing, kept, cancelled, confirm_number, confirm_or_change, "
        "enter_number, invalid_number, requested, opted_in, unavailable",
        "6:16: error: 'request' is not one of: requested, opted-in, kept, cancelled, failed, unavailable",
    ]
    assert hints(diagnostics) == [
        "did you mean 'number'?", None,
        "a reason has up to 40 letters, digits, spaces, '_', '.' and '-', e.g. billing",
        "did you mean 'requested'?", "did you mean 'requested'?",
    ]


def test_queue_callback_settings_are_read_into_callback_settings() -> None:
    text = ("flow: s\nstart: a\nschedules: {office: {timezone: UTC, open: {daily: '08:00-18:00'}}}\n"
            "queues:\n  support:\n    callback:\n      mode: agent-first\n      priority: 20\n      attempts: 5\n"
            "      retry_after: [1m, 5m, 1h]\n      ring_timeout: 25s\n      agent_timeout: 15m\n      hours: office\n"
            "      caller_id: '\"Example\" <+4930555000>'\n      country: de\n      confirm_key: '5'\n"
            "      confirm_tries: 3\n      confirm_seconds: 8s\n      detect_machine: true\n"
            "      prompts: {agent: callback-intro}\n"
            f"steps:\n{STEP}  end: {{hangup: true}}\n")
    loaded, diagnostics = load(text)
    assert loaded is not None and not diagnostics.errors, diagnostics.render()
    settings = loaded.queues["support"].callback
    assert settings == replace(
        CallbackSettings(), mode=Mode.AGENT_FIRST, priority=20, attempts=5, retry_after=(60.0, 300.0, 3600.0),
        ring_timeout=25.0, agent_timeout=900.0, hours="office", caller_id='"Example" <+4930555000>', country="DE",
        confirm_key="5", confirm_tries=3, confirm_seconds=8.0, detect_machine=True,
        prompts=tuple({**dict(CallbackSettings().prompts), "agent": "callback-intro"}.items()),
    )
    assert settings.prompt("agent") == "callback-intro" and settings.retry_delay(2) == 300.0
    refs = [ref.name for ref in loaded.references if ref.kind == "prompt" and ref.owner is None]
    assert refs == ["callback-intro"]  # agent-first plays only the agent prompt: the one named


def test_queue_callback_mistakes_point_at_the_value() -> None:
    text = ("flow: s\nstart: a\nqueues:\n  support:\n    callback: {mode: agent_first, country: UK, caller_id: 'x\\ny',"
            " hours: 9to5}\n  other: {callback: {country: XX}}\n"
            f"steps:\n{STEP}  end: {{hangup: true}}\n")
    _, diagnostics = load(text)
    assert messages(diagnostics) == [
        "5:22: error: 'agent_first' is not one of: customer-first, agent-first",
        "5:44: error: 'UK' is not a country phonenumbers knows",
        "5:59: error: 'x\\ny' is not a valid caller ID",
        "5:74: error: '9to5' is not a valid schedule name",
        "6:31: error: 'XX' is not a country phonenumbers knows",
    ]
    assert hints(diagnostics) == [
        "did you mean 'agent-first'?", "did you mean 'GB'? (the ISO 3166 code)",
        'write a number such as +4930123456 or "Example" <+4930123456>', None,
        "write the two-letter ISO 3166 code of the country, e.g. DE, GB, FR or US",
    ]


def test_check_reports_an_unknown_calling_window_with_a_guess() -> None:
    text = ("flow: s\nstart: a\nschedules: {office: {timezone: UTC, open: {daily: '08:00-18:00'}}}\n"
            f"queues:\n  support: {{callback: {{hours: ofice}}}}\nsteps:\n{STEP}  end: {{hangup: true}}\n")
    diagnostics = check(text)
    assert messages(diagnostics) == ["5:31: error: unknown schedule 'ofice'"]
    assert hints(diagnostics) == ["did you mean 'office'?"]


def test_check_warns_about_queues_called_back_with_the_default_settings() -> None:
    steps = ("  a:\n    callback: support\n    outcomes: {kept: b}\n    next: c\n"
             "  b:\n    callback: support\n    next: c\n"
             "  c:\n    queue: spare\n    callback_on_hangup: {when: automatic}\n")
    diagnostics = check(f"flow: s\nstart: a\nsteps:\n{steps}")
    defaults = ("has no `callback:` settings: its callbacks use the defaults (customer-first, 3 attempts, at any "
                "hour, typed numbers only with their country code)")
    assert messages(diagnostics) == [  # each queue once, where it is first named
        f"5:15: warning: queue 'support' {defaults}",
        f"13:25: warning: queue 'spare' {defaults}",
    ]
    assert hints(diagnostics) == ["add `queues: {support: {callback: {country: DE, hours: <schedule>}}}`",
                                  "add `queues: {spare: {callback: {country: DE, hours: <schedule>}}}`"]


def test_check_warns_about_opt_ins_that_nothing_registers_and_the_reverse() -> None:
    top = "queues:\n  support: {callback: {}}\n  spare: {callback: {}}\n"
    steps = ("  a:\n    callback: {queue: support, when: on_hangup}\n    next: b\n"
             "  b:\n    queue: spare\n    callback_on_hangup: {when: opted_in}\n")
    diagnostics = check(f"flow: s\nstart: a\n{top}steps:\n{steps}")
    assert messages(diagnostics) == [
        "8:38: warning: callers opt in to a callback from queue 'support', but no queue step of this flow "
        "registers it when they hang up",
        "12:32: warning: no callback step lets callers opt in for queue 'spare', so no one is called back",
    ]
    assert hints(diagnostics) == ["give the queue step for 'support' `callback_on_hangup: {when: opted_in}`",
                                  "add a `callback` step with `when: on_hangup` for this queue, or use "
                                  "`when: automatic`"]


def test_check_reports_a_cancel_key_the_callback_step_needs() -> None:
    top = 'cancel_key: "#"\nqueues:\n  support: {callback: {}}\n'
    steps = ("  a:\n    callback: {queue: support, reason: {prompt: why, choices: {'1': x}}}\n    next: end\n"
             "  b:\n    callback: {queue: support, reason: {prompt: why, choices: {'7': x}}}\n    cancel_key: '7'\n"
             "    cancel_to: a\n    next: end\n")
    diagnostics = check(f"flow: s\nstart: a\n{top}steps:\n{steps.replace('next: end', 'next: b', 1)}"
                        "  end: {hangup: true}\n")
    assert messages(diagnostics) == [
        "3:13: error: the cancel key '#' is also a key of the callback step 'a' (1 and 2 answer its questions, "
        "# ends a typed number)",
        "11:64: error: key '7' is the cancel key here, so this reason can never be chosen",
    ]


def test_a_callback_step_without_next_ends_the_call_on_purpose() -> None:
    text = "flow: s\nstart: a\nqueues:\n  support: {callback: {}}\nsteps:\n  a: {callback: support}\n"
    assert messages(check(text)) == []


def test_check_finds_the_callback_prompts_missing_from_the_catalog() -> None:
    catalog = PromptCatalog(None, {"en": {p: PromptEntry(p, "") for p in [
        *PROMPTS.values(), "wait-about", "minute", "minutes", "wait-less-than-a-minute", "wait-longer-than-usual",
        "callback-intro", "callback-press-to-connect", "callback-connecting", "goodbye"] if p != "callback-kept"}})
    with_settings = "flow: s\nstart: a\nqueues:\n  support: {callback: {}}\nsteps:\n  a: {callback: support}\n"
    assert messages(check(with_settings, catalog=catalog)) == [
        "6:17: error: prompt 'callback-kept' is not in the 'en' catalog"
    ]
    del catalog.languages["en"]["callback-intro"]
    assert messages(check(with_settings, catalog=catalog))[0] == (
        "4:23: error: prompt 'callback-intro' is not in the 'en' catalog"
    )
    without = "flow: s\nstart: a\nsteps:\n  a: {callback: support}\n"
    assert "4:17: error: prompt 'callback-intro' of the callback call is not in the 'en' catalog" in messages(
        check(without, catalog=catalog)
    )


# -- the faked world ------------------------------------------------------------------------------------------


def test_a_static_world_starts_each_call_with_its_presets_and_nothing_recorded() -> None:
    place = StaticWorld.from_mapping({"callbacks": [{"number": CALLER, "queue": "support", "state": "dialing"}]})
    assert place.callbacks == [PendingCallback("cb-1", CALLER, "support", "dialing", PRESET_REQUESTED_AT, False)]
    assert place.cancel_callback("cb-1", "caller") and not place.cancel_callback("cb-1", "caller")
    assert place.pending_callback(CALLER, None) is None
    fresh = place.fresh()
    assert fresh.callbacks == list(place.preset_callbacks) and fresh.callback_requests == []
    changed = fresh.changed({"support": {"waiting": 3}})
    assert changed.callbacks is fresh.callbacks  # the records are shared while the call goes on
    assert StaticWorld.from_mapping({"callbacks": "unavailable"}).callbacks_down


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("soon", "callbacks: expected a list of {number, queue} or 'unavailable', got 'soon'"),
        ([{"number": CALLER}], "callback 1: expected {number, queue} (and optionally state, id), got "
                               "{'number': '+4930123456'}"),
        ([{"number": CALLER, "queue": "s", "when": 1}], "callback 1: unknown field(s) when; known: number, queue, "
                                                        "state, id"),
        ([{"number": CALLER, "queue": "s", "state": "failed"}], "callback 1: a preset callback is active: pending, "
                                                               "dialing or connected"),
    ],
)
def test_preset_callbacks_that_make_no_sense_are_refused(items: Any, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        preset_callbacks(items)
    assert str(raised.value) == message
