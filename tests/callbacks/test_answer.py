"""The answered callback leg over the FastAGI wire: a fake PBX answering as Asterisk 22 does, the real session
handler and the flows' callback settings, and a world that keeps callbacks in memory the way the store does
(an attempt is touched only through its channel id while it is in flight)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from ivrkit.callbacks.answer import CallbackWorld, answer_callback
from ivrkit.callbacks.model import Callback, Origin, Result, State
from ivrkit.engine.channel import CallInfo
from ivrkit.engine.journal import Journal
from ivrkit.engine.world import StaticWorld
from ivrkit.flow.loader import load_text
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.library import FlowLibrary
from ivrkit.server.session import SessionHandler, SessionSettings
from ivrkit.sim.channel import SimulatedChannel
from ivrkit.sim.script import CallerScript
from tests.agi.pbx import FakePbx, Transcript, serve_one
from tests.server.conftest import write_flows

CALLBACK_ID = "0123456789abcdef0123456789abcdef"
CHANNEL_ID = f"ivrkit-cb-{CALLBACK_ID}-1"  # the dispatcher's ChannelId: the leg's agi_uniqueid
START = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
SUPPORT = """
flow: support
language: en
start: ask
queues:
  support:
    callback: {priority: 12, detect_machine: true}
  sales:
    callback: {mode: agent-first, ring_timeout: 25s, prompts: {agent: sales-callback-for}}
steps:
  ask:
    menu: {prompt: main-menu, choices: {"1": support_queue, "2": sales_queue}}
  support_queue:
    queue: support
  sales_queue:
    queue: sales
"""
OTHER = """
flow: other
start: bye
steps:
  bye:
    hangup: true
"""
INTRO = "en/ivrkit/callback-intro"
CONFIRM = "en/ivrkit/callback-press-to-connect"
CONNECTING = "en/ivrkit/callback-connecting"
GOODBYE = "en/ivrkit/goodbye"


class StoreWorld(StaticWorld):
    """A world with callbacks, as the live one keeps them in the store (only the attempt in flight counts)."""

    def __init__(self, *callbacks: Callback, cancel_while_confirming: bool = False) -> None:
        super().__init__({}, {})
        self.rows = {callback.id: callback for callback in callbacks}
        self.changes: list[tuple[str, str, str, Result | None]] = []  # (what, id, channel id, result)
        self.cancel_while_confirming = cancel_while_confirming

    def callback(self, callback_id: str) -> Callback | None:
        return self.rows.get(callback_id)

    def _in_flight(self, callback_id: str, channel_id: str) -> Callback | None:
        row = self.rows.get(callback_id)
        return row if row and row.state in (State.DIALING, State.CONNECTED) and row.channel_id == channel_id else None

    def callback_connected(self, callback_id: str, channel_id: str) -> bool:
        self.changes.append(("connected", callback_id, channel_id, None))
        row = self._in_flight(callback_id, channel_id)
        if self.cancel_while_confirming and row is not None:
            self.rows[callback_id] = replace(row, state=State.CANCELLED, channel_id=None)
            return False
        if row is None or row.state is not State.DIALING:
            return False
        self.rows[callback_id] = replace(row, state=State.CONNECTED)
        return True

    def callback_attempt_ended(self, callback_id: str, channel_id: str, result: Result) -> bool:
        self.changes.append(("ended", callback_id, channel_id, result))
        row = self._in_flight(callback_id, channel_id)
        if row is None:
            return False
        self.rows[callback_id] = replace(row, state=State.PENDING, channel_id=None, last_result=result)
        return True


def dialing(queue: str = "support", **changes: object) -> Callback:
    callback = Callback(
        id=CALLBACK_ID, number="+4930123456", queue=queue, flow="support", origin=Origin.REQUEST,
        state=State.DIALING, joined_at=1_700_000_000.0, requested_at=1_700_000_000.0, updated_at=1_700_000_100.0,
        attempts=1, channel_id=CHANNEL_ID, action_id="ivrkit-cb-action-1",
    )  # fmt: skip
    return replace(callback, **changes)  # type: ignore[arg-type]


def handler_for(tmp_path: Path, world: StaticWorld) -> SessionHandler:
    library = FlowLibrary(write_flows(tmp_path / "flows", support=SUPPORT, other=OTHER), world=world)
    report = library.reload()
    assert report.ok, report.errors
    return SessionHandler(library, ServerMetrics(), SessionSettings(command_seconds=2.0))


def answer(
    tmp_path: Path, world: StaticWorld, actions: list[str], *, amd: str = "", uniqueid: str = CHANNEL_ID,
    callback_id: str = CALLBACK_ID, flow: str = "support",
) -> tuple[Transcript, SessionHandler]:  # fmt: skip
    handler = handler_for(tmp_path, world)
    pbx = FakePbx(f"{flow}/callback?id={callback_id}&amd={amd}", actions, env={"agi_uniqueid": uniqueid})
    transcript, _ = serve_one(handler, pbx)
    return transcript, handler


def outcome_count(handler: SessionHandler, outcome: str, flow: str = "support") -> float:
    body, _ = handler.metrics.render()
    wanted = f'ivrkit_session_outcomes_total{{flow="{flow}",outcome="{outcome}"}} '
    return next((float(line.split()[-1]) for line in body.decode().splitlines() if line.startswith(wanted)), 0.0)


def result_of(transcript: Transcript) -> tuple[str | None, str | None]:
    return transcript.variables.get("IVRKIT_RESULT"), transcript.variables.get("IVRKIT_OUTCOME")


# -- customer-first ---------------------------------------------------------------------------------------------


def test_a_customer_who_presses_the_key_is_connected_then_joins_the_queue_at_the_callback_priority(
    tmp_path: Path,
) -> None:
    world = StoreWorld(dialing())
    transcript, handler = answer(tmp_path, world, ["1"])
    assert transcript.played == [INTRO, CONFIRM, CONNECTING]
    confirm = next(words for words in transcript.words if words[:3] == ["STREAM", "FILE", CONFIRM])
    assert confirm[-1] == "1"  # only the confirmation key interrupts the question
    assert world.changes == [("connected", CALLBACK_ID, CHANNEL_ID, None)]  # before the customer is queued
    assert world.rows[CALLBACK_ID].state is State.CONNECTED
    variables = transcript.variables
    assert (variables["IVRKIT_RESULT"], variables["IVRKIT_TARGET"], variables["IVRKIT_PRIORITY"]) == (
        "queue", "support", "12",
    )  # fmt: skip
    assert variables["IVRKIT_OUTCOME"] == "callback-connected"
    assert "ANSWER" not in transcript.verbs() and "HANGUP" not in transcript.verbs()  # the dialplan queues next
    assert outcome_count(handler, "callback-connected") == 1


def test_the_key_pressed_after_the_question_counts_and_a_wrong_key_uses_up_a_try(tmp_path: Path) -> None:
    world = StoreWorld(dialing())
    transcript, _ = answer(tmp_path, world, ["-", "3", "-", "1"])
    assert transcript.played == [INTRO, CONFIRM, CONFIRM, CONNECTING]
    waits = [words for words in transcript.words if words[:3] == ["WAIT", "FOR", "DIGIT"]]
    assert [words[3] for words in waits] == ["5000", "5000"]  # confirm_seconds after each ask
    assert result_of(transcript) == ("queue", "callback-connected")


def test_no_key_after_every_try_ends_the_attempt_unconfirmed(tmp_path: Path) -> None:
    world = StoreWorld(dialing())
    transcript, handler = answer(tmp_path, world, ["-"] * 4)
    assert transcript.played == [INTRO, CONFIRM, CONFIRM, GOODBYE]  # confirm_tries: 2
    assert world.changes == [("ended", CALLBACK_ID, CHANNEL_ID, Result.UNCONFIRMED)]
    assert world.rows[CALLBACK_ID].state is State.PENDING  # the world's retry
    assert result_of(transcript) == ("hangup", "callback-unconfirmed")
    assert "IVRKIT_TARGET" not in transcript.variables
    assert outcome_count(handler, "callback-unconfirmed") == 1


def test_a_customer_who_hangs_up_before_confirming_is_unconfirmed(tmp_path: Path) -> None:
    world = StoreWorld(dialing())
    transcript, _ = answer(tmp_path, world, ["hangup"])
    assert transcript.hung_up and transcript.played == [INTRO, CONFIRM]
    assert world.changes == [("ended", CALLBACK_ID, CHANNEL_ID, Result.UNCONFIRMED)]
    verbs = transcript.verbs()
    after = verbs[max(i for i, verb in enumerate(verbs) if verb == "STREAM FILE") + 1 :]
    assert set(after) <= {"CHANNEL STATUS", "SET VARIABLE", "EXEC"}  # only dead-capable commands once gone
    assert result_of(transcript) == ("hangup", "callback-hangup")


def test_a_hang_up_after_confirming_leaves_the_connected_callback_to_the_dispatcher(tmp_path: Path) -> None:
    world = StoreWorld(dialing())
    handler = handler_for(tmp_path, world)
    pbx = FakePbx(f"support/callback?id={CALLBACK_ID}&amd=", ["1"], env={"agi_uniqueid": CHANNEL_ID})
    original = pbx.reply

    def hang_up_during_connecting(words: list[str]) -> list[str]:
        if words[:3] == ["STREAM", "FILE", CONNECTING]:
            pbx.transcript.played.append(CONNECTING)
            return ["200 result=-1 endpos=100", *pbx._hang_up()]
        return original(words)

    pbx.reply = hang_up_during_connecting  # type: ignore[method-assign]
    transcript, _ = serve_one(handler, pbx)
    assert world.changes == [("connected", CALLBACK_ID, CHANNEL_ID, None)]  # nothing ended here: Hangup → answered
    assert world.rows[CALLBACK_ID].state is State.CONNECTED
    assert result_of(transcript) == ("hangup", "callback-hangup")


def test_an_answering_machine_ends_the_attempt_without_a_word(tmp_path: Path) -> None:
    world = StoreWorld(dialing())
    transcript, handler = answer(tmp_path, world, [], amd="MACHINE")
    assert transcript.played == []
    assert world.changes == [("ended", CALLBACK_ID, CHANNEL_ID, Result.MACHINE)]
    assert result_of(transcript) == ("hangup", "callback-machine")
    assert outcome_count(handler, "callback-machine") == 1


def test_a_hang_up_during_machine_detection_is_unconfirmed(tmp_path: Path) -> None:
    world = StoreWorld(dialing())
    transcript, _ = answer(tmp_path, world, [], amd="HANGUP")
    assert transcript.played == []
    assert world.changes == [("ended", CALLBACK_ID, CHANNEL_ID, Result.UNCONFIRMED)]
    assert result_of(transcript) == ("hangup", "callback-hangup")


def test_a_human_by_amd_is_asked_as_usual(tmp_path: Path) -> None:
    world = StoreWorld(dialing())
    transcript, _ = answer(tmp_path, world, ["1"], amd="HUMAN")
    assert transcript.played == [INTRO, CONFIRM, CONNECTING]
    assert result_of(transcript) == ("queue", "callback-connected")


def test_a_callback_cancelled_while_the_customer_confirms_is_not_queued(tmp_path: Path) -> None:
    world = StoreWorld(dialing(), cancel_while_confirming=True)
    transcript, _ = answer(tmp_path, world, ["1"])
    assert transcript.played == [INTRO, CONFIRM, GOODBYE]
    assert result_of(transcript) == ("hangup", "callback-refused")
    assert "IVRKIT_TARGET" not in transcript.variables


def test_the_callers_language_is_used_for_the_prompts(tmp_path: Path) -> None:
    world = StoreWorld(dialing(language="de"))
    transcript, _ = answer(tmp_path, world, ["1"])
    assert transcript.played == [p.replace("en/", "de/", 1) for p in (INTRO, CONFIRM, CONNECTING)]


# -- agent-first ------------------------------------------------------------------------------------------------


def test_agent_first_tells_the_agent_the_number_then_the_dialplan_dials_it(tmp_path: Path) -> None:
    world = StoreWorld(dialing(queue="sales"))
    transcript, handler = answer(tmp_path, world, [])
    assert transcript.played == ["en/ivrkit/sales-callback-for"]
    said = [words for words in transcript.words if words[:2] == ["SAY", "DIGITS"]]
    assert [words[2] for words in said] == ["4930123456"]
    variables = transcript.variables
    assert (variables["IVRKIT_RESULT"], variables["IVRKIT_TARGET"], variables["IVRKIT_TIMEOUT"]) == (
        "dial", "+4930123456", "25",
    )  # fmt: skip
    assert world.changes == []  # the dispatcher follows the Dial over AMI (DialEnd, Hangup)
    assert outcome_count(handler, "callback-dial") == 1


def test_agent_first_an_agent_who_hangs_up_at_once_is_no_agent(tmp_path: Path) -> None:
    world = StoreWorld(dialing(queue="sales"))
    handler = handler_for(tmp_path, world)
    pbx = FakePbx(f"support/callback?id={CALLBACK_ID}&amd=", [], env={"agi_uniqueid": CHANNEL_ID})
    original = pbx.reply

    def hang_up_on_the_prompt(words: list[str]) -> list[str]:
        if words[:2] == ["STREAM", "FILE"]:
            return ["200 result=-1 endpos=100", *pbx._hang_up()]
        return original(words)

    pbx.reply = hang_up_on_the_prompt  # type: ignore[method-assign]
    transcript, _ = serve_one(handler, pbx)
    assert world.changes == [("ended", CALLBACK_ID, CHANNEL_ID, Result.NO_AGENT)]
    assert result_of(transcript) == ("hangup", "callback-hangup")
    assert "SAY" not in " ".join(transcript.verbs())


# -- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "callback_id", "uniqueid", "flow", "why"),
    [
        ((), CALLBACK_ID, CHANNEL_ID, "support", "no such callback"),
        ((dialing(),), CALLBACK_ID, "1763712000.1", "support", "is not callback"),  # another channel
        ((dialing(),), CALLBACK_ID, "", "support", "no uniqueid"),
        ((dialing(state=State.PENDING, channel_id=None),), CALLBACK_ID, CHANNEL_ID, "support", "is pending"),
        ((dialing(state=State.CONNECTED),), CALLBACK_ID, CHANNEL_ID, "support", "is connected"),  # a second leg
        ((dialing(state=State.CANCELLED),), CALLBACK_ID, CHANNEL_ID, "support", "is cancelled"),
        ((dialing(),), CALLBACK_ID, CHANNEL_ID, "other", "belongs to flow 'support'"),
        ((dialing(),), "../../etc", CHANNEL_ID, "support", "is not a callback id"),
        ((dialing(),), CALLBACK_ID.upper(), CHANNEL_ID, "support", "is not a callback id"),
    ],
)
def test_a_leg_that_is_not_the_attempt_in_flight_is_hung_up_and_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, rows: tuple[Callback, ...], callback_id: str, uniqueid: str,
    flow: str, why: str,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="ivrkit.callbacks")
    world = StoreWorld(*rows)
    before = dict(world.rows)
    transcript, handler = answer(tmp_path, world, ["1"], uniqueid=uniqueid, callback_id=callback_id, flow=flow)
    assert transcript.played == [] and world.changes == [] and world.rows == before
    assert result_of(transcript) == ("hangup", "callback-refused")
    assert transcript.unused_actions == ["1"]
    assert any(why in record.getMessage() for record in caplog.records), [r.getMessage() for r in caplog.records]
    assert outcome_count(handler, "callback-refused", flow) == 1


def test_a_server_without_a_callback_store_refuses_every_leg(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ivrkit.callbacks")
    world = StaticWorld({}, {})
    assert not isinstance(world, CallbackWorld) and isinstance(StoreWorld(), CallbackWorld)
    transcript, _ = answer(tmp_path, world, ["1"])
    assert transcript.played == [] and result_of(transcript) == ("hangup", "callback-refused")
    assert "no callback store" in caplog.text


# -- settings and the journal -------------------------------------------------------------------------------------


def test_the_journal_tells_what_the_leg_heard_and_how_the_attempt_ended() -> None:
    flow = load_text(SUPPORT, "support.yaml")
    assert flow is not None
    world = StoreWorld(dialing())
    channel = SimulatedChannel(CallInfo(CHANNEL_ID), START, CallerScript([]))  # nobody presses anything
    journal = Journal(START)
    answered = answer_callback(channel, flow, CALLBACK_ID, "", world, journal=journal)
    assert answered.outcome == "callback-unconfirmed" and answered.ended is Result.UNCONFIRMED
    assert answered.callback is not None and answered.callback.id == CALLBACK_ID
    assert channel.variables == {"IVRKIT_OUTCOME": "callback-unconfirmed", "IVRKIT_RESULT": "hangup"}
    assert journal.prompts_heard() == ["callback-intro", "callback-press-to-connect", "callback-press-to-connect",
                                       "goodbye"]  # fmt: skip
    assert [event.kind for event in journal] == [
        "session", "callback", "played", "played", "silence", "played", "silence", "played", "attempt", "end",
    ]  # fmt: skip
    assert journal.events[-1].at == pytest.approx(channel.t)  # the waits took simulated time
    assert {event.step for event in journal} == {"callback"} and {event.flow for event in journal} == {"support"}
