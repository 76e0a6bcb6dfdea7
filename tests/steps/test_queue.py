"""The queue step on simulated calls: what it reports to the world, what the call keeps across hand-offs, and
the wait it records when the dialplan gives the call back or the caller hangs up in the queue."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ivrkit.engine.channel import CallInfo
from ivrkit.engine.runner import Engine
from ivrkit.engine.state import STATE_VARIABLE, CallState
from ivrkit.engine.world import QueueJoin, QueueStats, StaticWorld
from ivrkit.sim.channel import SimulatedChannel
from ivrkit.sim.script import CallerScript
from ivrkit.sim.session import DEFAULT_START, HandoffResult
from tests.calls import Call, build, of_kind

FLOW = """
flow: q
start: join
queues:
  support: {wrapup: 30s}
steps:
  join:
    queue: {name: support, timeout: 10m, priority: 2}
    announce: {min_answered: 1}
    overflow:
      - when: {position_over: 20}
        queue: spare
      - when: {position_over: 10}
        queue: {name: spare, timeout: 1m}
    outcomes: {timeout: again, callback: later}
  again:
    menu: {prompt: still-waiting, choices: {"1": join}, failed: bye}
  later: {hangup: {outcome: callback}}
  bye: {hangup: {outcome: bye}}
"""
BUSY = QueueStats(waiting=3, logged_in=4, avg_talk=210, answered=8)  # 4th in line: 4 * 240 s / 4 = 240 s
JOINED = DEFAULT_START + dt.timedelta(seconds=6.9)  # after the announcement: 3 prompts of 2 s, 2 digits of 0.45 s


def world(**queues: QueueStats) -> StaticWorld:
    return StaticWorld(dict(queues), {})


def with_variables(**variables: str) -> Any:
    """A channel factory whose channels hold these variables from the start, as Asterisk would leave them."""

    def make(*args: Any) -> SimulatedChannel:
        channel = SimulatedChannel(*args)
        channel.variables.update(variables)
        return channel

    return make


def test_a_join_is_reported_with_its_estimate(call: Call) -> None:
    place = world(support=BUSY)
    result = call(FLOW, world=place)
    assert result.outcome == "queue:support"
    assert place.joined == [
        QueueJoin("sim-1", "q", "support", 4, 240.0, "number", "position", JOINED)
    ]
    (estimate,) = of_kind(result, "estimate")
    assert estimate == {"queue": "support", "position": 4, "seconds": 240.0, "method": "position", "said": "number",
                        "why": None}


def test_the_call_keeps_the_position_heard_and_the_queue_across_the_hand_off(call: Call) -> None:
    result = call(FLOW, world=world(support=BUSY))
    state = CallState.from_channel(result.variables[STATE_VARIABLE])
    assert (state.position, state.queue, state.step) == (4, "support", "join")
    assert state.queued_at == JOINED.timestamp()


def test_call_state_without_queue_fields_still_reads() -> None:
    state = CallState.from_json('{"f":"q","s":"join","v":{},"m":[],"n":1}')
    assert (state.position, state.queue, state.queued_at) == (None, None, None)
    again = CallState.from_json(CallState("q", position=3, queue="support", queued_at=12.5).to_json())
    assert (again.position, again.queue, again.queued_at) == (3, "support", 12.5)


def test_a_resumed_call_records_the_wait_asterisk_reports(call: Call) -> None:
    place = world(support=BUSY)
    factory = with_variables(QUEUEWAIT_MS="95500", QUEUEWAIT="95")
    result = call(FLOW, "1", world=place, handoffs=[HandoffResult("TIMEOUT", after=100)], channel_factory=factory)
    assert [(left.queue, left.wait, left.result, left.talk) for left in place.left] == [
        ("support", 95.5, "timeout", None)
    ]
    assert len(place.joined) == 2  # joined again from the menu
    assert of_kind(result, "queue-left") == [{"queue": "support", "wait": 95.5, "result": "timeout", "talk": None}]


def test_without_queuewait_the_wait_is_the_time_since_the_hand_off(call: Call) -> None:
    place = world(support=BUSY)
    call(FLOW, "", world=place, handoffs=[HandoffResult("callback", after=150)])
    assert [(left.wait, left.result) for left in place.left] == [(150.0, "callback")]


def test_an_exit_key_outcome_arrives_in_any_case_and_is_mapped(call: Call) -> None:
    result = call(FLOW, world=world(support=BUSY), handoffs=[HandoffResult("CALLBACK", after=30)])
    assert result.steps == ["q.join", "q.join", "q.later"]
    assert result.outcome == "callback"
    assert of_kind(result, "session")[1]["resumed"] == "CALLBACK"


def test_overflow_to_another_queue_hands_off_there_and_records_its_wait(call: Call) -> None:
    crowded = QueueStats(waiting=25, logged_in=4, avg_talk=210, answered=8)
    place = world(support=crowded)
    result = call(FLOW, world=place, handoffs=[HandoffResult("timeout", after=60), HandoffResult("timeout")])
    assert result.handoffs[0][:2] == ("queue", "spare")
    assert result.variables["IVRKIT_TIMEOUT"] == "600" and result.variables["IVRKIT_PRIORITY"] == "2"  # kept
    assert [(join.queue, join.said) for join in place.joined] == [("spare", "none")]  # empty: first in line
    assert [(left.queue, left.result) for left in place.left] == [("spare", "timeout")]
    assert of_kind(result, "overflow")[0] == {"rule": "position > 20", "action": "queue"}


def test_overflow_to_another_queue_with_its_own_timeout(call: Call) -> None:
    result = call(FLOW, world=world(support=QueueStats(waiting=15)))
    assert result.outcome == "queue:spare"
    assert result.variables["IVRKIT_TIMEOUT"] == "60"


def hung_up_in_queue(**variables: str) -> tuple[StaticWorld, list[str]]:
    """A first session that queues the caller, then the hang-up handler's session on the dead channel."""
    flows = build(FLOW)
    place = world(support=BUSY)
    engine = Engine(flows, place)
    info = CallInfo("live-7", "+4930123456")
    channel = SimulatedChannel(info, DEFAULT_START, CallerScript([]))
    first = engine.run(channel, "q")
    assert first.handoff is not None
    channel.pass_time(300)
    channel.variables.update(variables)
    result = engine.run_hangup(channel, "q")
    return place, [event.kind for event in result.journal.events]


def test_the_hang_up_handler_records_an_answered_call_with_its_talk_time() -> None:
    place, _ = hung_up_in_queue(QUEUEWAIT="200", ANSWEREDTIME_MS="100250")
    assert [(left.uniqueid, left.wait, left.result, left.talk) for left in place.left] == [
        ("live-7", 200.0, "answered", 100.25)
    ]


def test_the_hang_up_handler_records_a_caller_who_gave_up_waiting() -> None:
    place, kinds = hung_up_in_queue(QUEUEWAIT="300", ANSWEREDTIME="0", ANSWEREDTIME_MS="0")  # as Asterisk 22 leaves it
    assert [(left.wait, left.result, left.talk) for left in place.left] == [(300.0, "abandoned", None)]
    assert "queue-left" in kinds


def test_unreadable_figures_fall_back_to_the_clock() -> None:
    place, _ = hung_up_in_queue(QUEUEWAIT="soon", ANSWEREDTIME="-5")
    assert [(left.wait, left.result) for left in place.left] == [(300.0, "abandoned")]


def test_a_transfer_after_the_queue_records_nothing_more(call: Call) -> None:
    flows = """
    flow: t
    start: join
    steps:
      join:
        queue: support
        outcomes: {timeout: operator}
      operator:
        transfer: PJSIP/op
    """
    place = world()
    call(flows, world=place, handoffs=[HandoffResult("timeout", after=60), HandoffResult("busy", after=20)])
    assert [(left.queue, left.result) for left in place.left] == [("support", "timeout")]
    assert [(join.queue, join.said) for join in place.joined] == [("support", "off")]


class CountingWorld(StaticWorld):
    """Counts the queue figures read (on a live call each read is a round trip to Asterisk)."""

    reads = 0

    def queue(self, name: str, channel: Any) -> QueueStats:
        self.reads += 1
        return super().queue(name, channel)


def test_a_step_without_announce_or_overflow_says_nothing_reads_nothing_and_still_logs_the_join(call: Call) -> None:
    flows = "flow: t\nstart: join\nsteps:\n  join: {queue: support}\n"
    place = CountingWorld({"support": BUSY}, {})
    result = call(flows, world=place)
    assert result.heard == [] and of_kind(result, "estimate") == []
    assert place.reads == 0
    assert [(join.queue, join.said, join.estimate) for join in place.joined] == [("support", "off", None)]
    place = CountingWorld({"support": BUSY}, {})
    call(flows.replace("{queue: support}", "{queue: support, announce: {position: false, wait: false}}"), world=place)
    assert place.reads == 1  # an announce block, even a silent one, estimates (and logs) every join
    assert [(join.said, join.estimate) for join in place.joined] == [("off", 210)]  # 4 x 210 s / 4 agents

