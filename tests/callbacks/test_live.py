"""LiveCallbacks on a real SQLite store: what flows register, find and cancel, what the answered leg records, the
retry schedule from the flow's queue settings, and failures of the store told the way each caller needs."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.callbacks.answer import CallbackWorld, answer_callback
from ivrkit.callbacks.live import LiveCallbacks
from ivrkit.callbacks.model import Origin, Result, State
from ivrkit.engine.channel import CallInfo
from ivrkit.engine.world import CallbackNotRegistered, CallbackRequest, PendingCallback, StaticWorld
from ivrkit.flow.model import Flow
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.sim.channel import SimulatedChannel
from ivrkit.sim.script import CallerScript, parse_keys
from ivrkit.sim.session import simulate
from ivrkit.store import Database, SqliteCallbacks, open_database
from tests.calls import build

START = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
NOW = START.timestamp()
FLOW = """
flow: support
language: en
start: offer
queues:
  support:
    callback: {attempts: 2, retry_after: [5m]}
steps:
  offer:
    callback: {queue: support, number: caller, wait: false}
    outcomes: {requested: bye, kept: bye, cancelled: bye}
  bye:
    hangup: true
"""


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path) as database:
        yield database


@pytest.fixture
def flows() -> dict[str, Flow]:
    return build(FLOW)


class Live:
    def __init__(self, database: Database, flows: dict[str, Flow]) -> None:
        self.clock = Clock()
        self.store = SqliteCallbacks(database, clock=self.clock)
        self.flows = flows
        self.wakes = 0
        self.metrics = ServerMetrics()
        self.callbacks = LiveCallbacks(
            self.store, lambda: self.flows, clock=self.clock, on_change=self.wake, metrics=self.metrics
        )

    def wake(self) -> None:
        self.wakes += 1

    def attempts(self, result: Result) -> float:
        body, _ = self.metrics.render()
        for line in body.decode().splitlines():
            if line.startswith(f'ivrkit_callback_attempts_total{{result="{result.value}"}}'):
                return float(line.split()[-1])
        raise AssertionError(f"no attempts counter for {result}")


@pytest.fixture
def live(database: Database, flows: dict[str, Flow]) -> Live:
    return Live(database, flows)


def request(number: str = "+4930123456", queue: str = "support", **fields: object) -> CallbackRequest:
    values: dict[str, object] = {
        "number": number,
        "queue": queue,
        "flow": "support",
        "origin": Origin.REQUEST,
        "uniqueid": "1700000000.1",
        "joined_at": START - dt.timedelta(minutes=4),
        "requested_at": START,
        **fields,
    }
    return CallbackRequest(**values)  # type: ignore[arg-type]


# -- the flow side --------------------------------------------------------------------------------------------


def test_a_request_is_stored_with_the_callers_place_and_wakes_the_dispatcher(live: Live) -> None:
    pending = live.callbacks.request_callback(
        request(origin=Origin.OPT_IN, reason="billing", language="de", priority=5)
    )
    assert pending == PendingCallback(pending.id, "+4930123456", "support", "pending", START, new=True)
    stored = live.store.get(pending.id)
    assert stored is not None
    assert (stored.state, stored.origin, stored.reason, stored.language, stored.priority, stored.uniqueid) == (
        State.PENDING, Origin.OPT_IN, "billing", "de", 5, "1700000000.1"
    )  # fmt: skip
    assert (stored.joined_at, stored.requested_at, stored.next_attempt_at) == (NOW - 240, NOW, NOW)
    assert live.wakes == 1


def test_a_second_request_for_the_number_and_queue_returns_the_first_and_stores_nothing(live: Live) -> None:
    first = live.callbacks.request_callback(request())
    again = live.callbacks.request_callback(request(requested_at=START + dt.timedelta(minutes=1)))
    assert (again.id, again.new, again.requested_at) == (first.id, False, START)
    other_queue = live.callbacks.request_callback(request(queue="billing"))
    assert other_queue.new and other_queue.id != first.id
    assert len(live.store.list()) == 2
    assert live.wakes == 2  # the two new ones only


def test_a_request_the_store_refuses_raises_callback_not_registered(
    live: Live, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with database.transaction() as conn:  # a real failure inside the store's own transaction
        conn.execute("CREATE TRIGGER full BEFORE INSERT ON callbacks BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with caplog.at_level(logging.ERROR, logger="ivrkit.callbacks"), pytest.raises(CallbackNotRegistered) as raised:
        live.callbacks.request_callback(request())
    assert str(raised.value) == "the callback store is not writable: disk full"
    assert "callback not registered: disk full" in caplog.text
    assert live.wakes == 0


def test_the_pending_callback_of_a_number_for_a_queue_or_any(live: Live) -> None:
    assert live.callbacks.pending_callback("+4930123456", "support") is None
    first = live.callbacks.request_callback(request(queue="support"))
    live.clock.now += 60
    live.callbacks.request_callback(request(queue="billing", requested_at=START + dt.timedelta(minutes=1)))
    found = live.callbacks.pending_callback("+4930123456", "support")
    assert found == PendingCallback(first.id, "+4930123456", "support", "pending", START, new=False)
    any_queue = live.callbacks.pending_callback("+4930123456", None)
    assert any_queue is not None and any_queue.id == first.id  # the oldest
    assert live.callbacks.pending_callback("+4930999999", None) is None
    live.store.cancel(first.id, by="ops")
    again = live.callbacks.pending_callback("+4930123456", None)
    assert again is not None and again.queue == "billing"


def test_a_store_that_cannot_be_read_has_no_pending_callback_and_says_so_in_the_log(
    live: Live, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    live.callbacks.request_callback(request())
    with database.transaction() as conn:
        conn.execute("DROP TABLE callback_events")
        conn.execute("DROP TABLE callbacks")
    with caplog.at_level(logging.WARNING, logger="ivrkit.callbacks"):
        assert live.callbacks.pending_callback("+4930123456", "support") is None
        assert live.callbacks.cancel_callback("0" * 32, "caller") is False
        assert live.callbacks.callback("0" * 32) is None
    assert caplog.text.count("no such table: callbacks") == 3


def test_cancel_cancels_an_active_callback_once(live: Live) -> None:
    made = live.callbacks.request_callback(request())
    assert live.callbacks.cancel_callback(made.id, "caller") is True
    stored = live.store.get(made.id)
    assert stored is not None and stored.state is State.CANCELLED
    assert live.store.events(made.id)[-1].reason == "cancelled by caller"
    assert live.callbacks.cancel_callback(made.id, "caller") is False
    assert live.callbacks.cancel_callback("f" * 32, "caller") is False
    assert live.callbacks.pending_callback("+4930123456", "support") is None


def test_a_dispatcher_wake_that_fails_does_not_fail_the_request(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("dispatcher gone")

    callbacks = LiveCallbacks(SqliteCallbacks(database), lambda: {}, on_change=broken)
    with caplog.at_level(logging.ERROR, logger="ivrkit.callbacks"):
        made = callbacks.request_callback(request())
    assert made.new
    assert "could not wake the callback dispatcher" in caplog.text


def test_flows_register_find_and_cancel_through_the_live_world(live: Live, flows: dict[str, Flow]) -> None:
    """The callback step on this world: a request, then the same caller again, who cancels."""

    class World(StaticWorld):
        def __init__(self) -> None:
            super().__init__({}, {})

        def request_callback(self, request: CallbackRequest) -> PendingCallback:
            return live.callbacks.request_callback(request)

        def pending_callback(self, number: str, queue: str | None) -> PendingCallback | None:
            return live.callbacks.pending_callback(number, queue)

        def cancel_callback(self, callback_id: str, by: str) -> bool:
            return live.callbacks.cancel_callback(callback_id, by)

    first = simulate(flows, "support", parse_keys(""), world=World(), start=START)
    assert first.outcome == "completed", first.transcript()
    (made,) = live.store.list()
    assert (made.number, made.queue, made.flow, made.state, made.origin) == (
        "+4930123456", "support", "support", State.PENDING, Origin.REQUEST
    )  # fmt: skip
    again = simulate(flows, "support", parse_keys("2"), world=World(), start=START + dt.timedelta(minutes=5))
    assert again.outcome == "completed", again.transcript()
    stored = live.store.get(made.id)
    assert stored is not None and stored.state is State.CANCELLED
    assert len(live.store.list()) == 1


# -- the answered leg -----------------------------------------------------------------------------------------


def dialing(live: Live, channel_id: str = "ivrkit-cb-1") -> str:
    made = live.callbacks.request_callback(request())
    assert live.store.start_attempt(made.id, channel_id=channel_id, action_id="a1") is not None
    return made.id


def test_live_callbacks_are_what_the_answered_leg_needs(live: Live) -> None:
    assert isinstance(live.callbacks, CallbackWorld)


def test_the_answered_leg_reads_and_connects_only_the_attempt_in_flight(live: Live) -> None:
    ident = dialing(live)
    callback = live.callbacks.callback(ident)
    assert callback is not None and callback.channel_id == "ivrkit-cb-1"
    assert live.callbacks.callback_connected(ident, "ivrkit-cb-0") is False  # an earlier attempt's leg
    assert live.callbacks.callback_connected(ident, "ivrkit-cb-1") is True
    connected = live.store.get(ident)
    assert connected is not None and connected.state is State.CONNECTED
    assert live.store.events(ident)[-1].reason == "the customer confirmed"
    assert live.callbacks.callback("0" * 32) is None


def test_an_ended_attempt_is_retried_per_the_queues_settings_then_failed(live: Live) -> None:
    ident = dialing(live)
    live.clock.now = NOW + 40
    wakes = live.wakes
    assert live.callbacks.callback_attempt_ended(ident, "ivrkit-cb-1", Result.UNCONFIRMED) is True
    retried = live.store.get(ident)
    assert retried is not None
    assert (retried.state, retried.last_result, retried.next_attempt_at) == (
        State.PENDING, Result.UNCONFIRMED, NOW + 40 + 300  # retry_after: [5m]
    )  # fmt: skip
    assert live.store.events(ident)[-1].reason.startswith("answered but not confirmed (answered leg); next attempt at")
    assert live.wakes == wakes + 1
    assert live.attempts(Result.UNCONFIRMED) == 1

    live.store.start_attempt(ident, channel_id="ivrkit-cb-2", action_id="a2")
    assert live.callbacks.callback_attempt_ended(ident, "ivrkit-cb-2", Result.MACHINE) is True
    failed = live.store.get(ident)
    assert failed is not None and (failed.state, failed.attempts) == (State.FAILED, 2)  # attempts: 2 used up
    assert live.store.events(ident)[-1].reason == "answered by a machine (answered leg); no further attempt"
    assert live.attempts(Result.MACHINE) == 1


def test_an_attempt_not_in_flight_is_not_ended_nor_counted(live: Live) -> None:
    ident = dialing(live)
    wakes = live.wakes
    assert live.callbacks.callback_attempt_ended(ident, "ivrkit-cb-0", Result.BUSY) is False
    assert live.callbacks.callback_attempt_ended("0" * 32, "ivrkit-cb-1", Result.BUSY) is False
    live.store.cancel(ident, by="ops")
    assert live.callbacks.callback_attempt_ended(ident, "ivrkit-cb-1", Result.BUSY) is False
    assert live.attempts(Result.BUSY) == 0
    assert live.wakes == wakes


def test_a_callback_whose_flow_is_gone_retries_with_the_default_settings(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    ident = dialing(live)
    live.flows = {}
    with caplog.at_level(logging.WARNING, logger="ivrkit.callbacks"):
        assert live.callbacks.callback_attempt_ended(ident, "ivrkit-cb-1", Result.NO_ANSWER) is True
    retried = live.store.get(ident)
    assert retried is not None and retried.next_attempt_at == NOW + 120  # CallbackSettings().retry_after[0]
    assert "flow support of the callback is not in service; its attempts follow the default callback settings" in (
        caplog.text
    )


def test_the_answered_leg_confirms_on_the_store(live: Live, flows: dict[str, Flow]) -> None:
    """answer_callback on LiveCallbacks: the customer presses 1 and the stored callback is connected."""
    ident = dialing(live, channel_id=f"ivrkit-cb-{'0' * 8}-1")
    channel = SimulatedChannel(CallInfo(f"ivrkit-cb-{'0' * 8}-1", "+4930123456"), START, parse_keys("1"))
    answered = answer_callback(channel, flows["support"], ident, "", live.callbacks)
    assert answered.ended is None, channel.variables
    stored = live.store.get(ident)
    assert stored is not None and stored.state is State.CONNECTED
    assert channel.variables["IVRKIT_RESULT"] == "queue"


def test_the_answered_leg_unconfirmed_is_retried_on_the_store(live: Live, flows: dict[str, Flow]) -> None:
    ident = dialing(live, channel_id="ivrkit-cb-x-1")
    channel = SimulatedChannel(CallInfo("ivrkit-cb-x-1", "+4930123456"), START, CallerScript([]))
    answered = answer_callback(channel, flows["support"], ident, "", live.callbacks)
    assert answered.ended is Result.UNCONFIRMED
    stored = live.store.get(ident)
    assert stored is not None and (stored.state, stored.last_result) == (State.PENDING, Result.UNCONFIRMED)
    assert live.attempts(Result.UNCONFIRMED) == 1
