"""The callback store on a real SQLite file: one active callback per number and queue, attempts that only the
attempt in flight can end, an event for every change, and several threads and processes on one file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ivrkit.callbacks import model
from ivrkit.callbacks.model import Callback, CallbackEvent, NewCallback, Origin, Result, State
from ivrkit.store import (
    CallbackFinished,
    CallbackNotFound,
    CallbackStore,
    CallbackSummary,
    Database,
    SqliteCallbacks,
    open_database,
)
from ivrkit.store.callbacks import ACTIVE_SQL, IN_FLIGHT_SQL
from tests.store.processes import run_together

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
NUMBER = "+4930123456"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path) as db:
        yield db


@pytest.fixture
def store(database: Database, clock: Clock) -> SqliteCallbacks:
    return SqliteCallbacks(database, clock)


def new(number: str = NUMBER, queue: str = "support", *, at: float = T0, **fields: Any) -> NewCallback:
    values: dict[str, Any] = {"flow": "main", "origin": Origin.REQUEST, "joined_at": at, "requested_at": at}
    values.update(fields)
    return NewCallback(number=number, queue=queue, **values)


def requested(store: SqliteCallbacks, *args: str, **fields: Any) -> Callback:
    callback, created = store.request(new(*args, **fields))
    assert created
    return callback


def dialing(store: SqliteCallbacks, callback: Callback, channel_id: str = "ivrkit-cb-x-1") -> Callback:
    started = store.start_attempt(callback.id, channel_id=channel_id, action_id=f"action-{channel_id}")
    assert started is not None
    return started


def test_a_request_is_stored_pending_and_due_at_its_request_time(store: SqliteCallbacks, clock: Clock) -> None:
    clock.now = T0 + 1
    callback, created = store.request(
        new(joined_at=T0 - 300, uniqueid="1700000000.42", reason="billing", language="de", priority=5)
    )
    assert created
    assert len(callback.id) == 32 and int(callback.id, 16) >= 0
    assert callback == Callback(
        id=callback.id, number=NUMBER, queue="support", flow="main", origin=Origin.REQUEST, state=State.PENDING,
        joined_at=T0 - 300, requested_at=T0, updated_at=T0 + 1, uniqueid="1700000000.42", reason="billing",
        language="de", priority=5, attempts=0, next_attempt_at=T0, channel_id=None, action_id=None, last_result=None,
    )  # fmt: skip
    assert store.get(callback.id) == callback
    assert store.get("0" * 32) is None
    assert store.events(callback.id) == [CallbackEvent(callback.id, T0 + 1, None, State.PENDING, "requested (request)")]
    assert store.due(T0 - 1) == []
    assert store.due(T0) == [callback]


@pytest.mark.parametrize("origin", list(Origin))
def test_every_origin_is_stored_and_named_in_the_event(store: SqliteCallbacks, origin: Origin) -> None:
    callback = requested(store, origin=origin)
    assert store.get(callback.id) == callback and callback.origin is origin
    assert [event.reason for event in store.events(callback.id)] == [f"requested ({origin.value})"]


def test_a_number_has_one_active_callback_per_queue(store: SqliteCallbacks) -> None:
    first = requested(store)
    again, created = store.request(new(at=T0 + 60, origin=Origin.AUTOMATIC))
    assert not created and again == first
    assert len(store.events(first.id)) == 1  # the refused request wrote nothing
    other_queue = requested(store, NUMBER, "sales")
    other_number = requested(store, "+4930999999", "support")
    assert len({first.id, other_queue.id, other_number.id}) == 3
    dialing(store, first)  # dialing is still active
    assert store.request(new(at=T0 + 60)) == (store.get(first.id), False)
    store.cancel(first.id, by="caller")
    renewed = requested(store, at=T0 + 120)  # once it is finished, the number may ask again
    assert renewed.id != first.id
    assert len(store.list(queue="support")) == 3


def test_the_database_itself_refuses_a_second_active_row(store: SqliteCallbacks, database: Database) -> None:
    first = requested(store)
    copy = "INSERT INTO callbacks SELECT ?, number, queue, flow, origin, ?, joined_at, requested_at, updated_at, " \
           "uniqueid, reason, language, priority, attempts, next_attempt_at, channel_id, action_id, last_result " \
           "FROM callbacks WHERE id = ?"  # fmt: skip
    unique = r"UNIQUE constraint failed: callbacks\.number, callbacks\.queue"
    with pytest.raises(sqlite3.IntegrityError, match=unique), database.transaction() as conn:
        conn.execute(copy, ("1" * 32, "dialing", first.id))
    with database.transaction() as conn:  # finished rows of the same number may be many
        conn.execute(copy, ("2" * 32, "completed", first.id))
        conn.execute(copy, ("3" * 32, "cancelled", first.id))
    assert len(store.list()) == 3


def test_the_sql_spelling_of_the_state_groups_matches_the_model() -> None:
    assert {State(name.strip(" '")) for name in ACTIVE_SQL.strip("()").split(",")} == model.ACTIVE
    assert {State(name.strip(" '")) for name in IN_FLIGHT_SQL.strip("()").split(",")} == model.IN_FLIGHT


def test_active_for_one_queue_or_the_oldest_of_any(store: SqliteCallbacks) -> None:
    sales = requested(store, NUMBER, "sales", at=T0)
    support = requested(store, NUMBER, "support", at=T0 + 10)
    requested(store, "+4930999999", "sales")
    assert store.active_for(NUMBER, "support") == support
    assert store.active_for(NUMBER) == sales
    store.cancel(sales.id, by="caller")
    assert store.active_for(NUMBER, "sales") is None
    assert store.active_for(NUMBER) == support
    assert store.active_for("+4940000000") is None


def test_operators_list_callbacks_newest_first(store: SqliteCallbacks) -> None:
    a = requested(store, "+491", "support", at=T0)
    b = requested(store, "+492", "sales", at=T0 + 1)
    c = requested(store, "+493", "support", at=T0 + 2)
    store.cancel(b.id, by="ops")
    assert [cb.id for cb in store.list()] == [c.id, b.id, a.id]
    assert [cb.id for cb in store.list(limit=2)] == [c.id, b.id]
    assert [cb.id for cb in store.list(queue="support")] == [c.id, a.id]
    assert [cb.id for cb in store.list(states=[State.PENDING])] == [c.id, a.id]
    assert [cb.id for cb in store.list(states=["cancelled", State.COMPLETED])] == [b.id]
    assert [cb.id for cb in store.list(states=[State.PENDING], queue="sales")] == []
    assert store.list(states=[]) == []
    with pytest.raises(
        ValueError,
        match="unknown callback state 'done': use one of pending, dialing, connected, completed, failed, cancelled",
    ):
        store.list(states=["done"])


def test_cancel_ends_an_active_callback_and_says_why(store: SqliteCallbacks, clock: Clock) -> None:
    callback = requested(store)
    clock.now = T0 + 30
    cancelled = store.cancel(callback.id, by="caller", reason="solved online")
    assert (cancelled.state, cancelled.updated_at) == (State.CANCELLED, T0 + 30)
    assert store.get(callback.id) == cancelled
    assert store.events(callback.id)[-1] == CallbackEvent(
        callback.id, T0 + 30, State.PENDING, State.CANCELLED, "cancelled by caller: solved online"
    )
    assert store.due(T0 + 60) == []
    with pytest.raises(CallbackFinished) as finished:
        store.cancel(callback.id, by="ops")
    assert str(finished.value) == (
        f"callback {callback.id} is already cancelled; only a pending, dialing or connected callback can be cancelled"
    )
    assert finished.value.callback == cancelled
    with pytest.raises(CallbackNotFound) as missing:
        store.cancel("f" * 32, by="ops")
    assert str(missing.value) == f"no callback with id '{'f' * 32}'; `ivrkit callbacks list` shows the ids"
    with pytest.raises(ValueError, match=r"say who cancels the callback \(by=…\)"):
        store.cancel(callback.id, by=" ")
    assert len(store.events(callback.id)) == 2  # the refused cancels wrote nothing


def test_a_callback_cancelled_while_dialing_ignores_news_of_that_attempt(store: SqliteCallbacks) -> None:
    callback = dialing(store, requested(store), "chan-1")
    cancelled = store.cancel(callback.id, by="ops")
    assert [(e.from_state, e.to_state, e.reason) for e in store.events(callback.id)][-1] == (
        State.DIALING, State.CANCELLED, "cancelled by ops"
    )  # fmt: skip
    assert store.connected(callback.id, "chan-1", "confirmed") is None
    assert store.finish_attempt(callback.id, "chan-1", Result.BUSY, retry_at=T0 + 99, reason="") is None
    assert store.get(callback.id) == cancelled
    assert store.in_flight() == []


def test_a_connected_callback_can_be_cancelled(store: SqliteCallbacks) -> None:
    callback = dialing(store, requested(store), "chan-1")
    store.connected(callback.id, "chan-1", "customer confirmed")
    assert store.cancel(callback.id, by="ops").state is State.CANCELLED
    assert store.events(callback.id)[-1].from_state is State.CONNECTED


def test_due_callbacks_keep_priority_first_then_the_callers_places(store: SqliteCallbacks) -> None:
    late_joiner = requested(store, "+491", "support", joined_at=T0 - 10, at=T0)
    early_joiner = requested(store, "+492", "support", joined_at=T0 - 500, at=T0 + 5)  # requested later
    urgent = requested(store, "+493", "support", joined_at=T0, at=T0 + 6, priority=5)
    other_queue = requested(store, "+494", "sales", joined_at=T0 - 900, at=T0 + 7)
    requested(store, "+495", "billing", at=T0 + 100)  # not due yet
    assert [cb.id for cb in store.due(T0 + 10, queue="support")] == [urgent.id, early_joiner.id, late_joiner.id]
    assert [cb.id for cb in store.due(T0 + 10)] == [urgent.id, other_queue.id, early_joiner.id, late_joiner.id]
    assert [cb.id for cb in store.due(T0 + 10, limit=2)] == [urgent.id, other_queue.id]
    assert [cb.id for cb in store.due(T0 + 5, queue="support")] == [early_joiner.id, late_joiner.id]
    assert store.pending_queues(T0 + 10) == ["sales", "support"]
    assert store.pending_queues(T0 + 100) == ["billing", "sales", "support"]
    assert store.pending_queues(T0 - 1) == []
    dialing(store, urgent)
    assert [cb.id for cb in store.due(T0 + 10, queue="support")] == [early_joiner.id, late_joiner.id]


def test_an_attempt_is_recorded_once_before_it_is_dialled(store: SqliteCallbacks, clock: Clock) -> None:
    callback = requested(store)
    clock.now = T0 + 2
    started = store.start_attempt(callback.id, channel_id="ivrkit-cb-a-1", action_id="act-1")
    assert started is not None
    assert (started.state, started.attempts, started.channel_id, started.action_id, started.updated_at) == (
        State.DIALING, 1, "ivrkit-cb-a-1", "act-1", T0 + 2
    )  # fmt: skip
    assert store.events(callback.id)[-1] == CallbackEvent(
        callback.id, T0 + 2, State.PENDING, State.DIALING, "dialling (channel ivrkit-cb-a-1)", attempt=1
    )
    assert store.start_attempt(callback.id, channel_id="ivrkit-cb-a-2", action_id="act-2") is None
    assert store.get(callback.id) == started
    assert store.start_attempt("0" * 32, channel_id="c", action_id="a") is None
    assert store.in_flight() == [started]


def test_a_failed_attempt_goes_back_to_pending_until_its_retry_time(store: SqliteCallbacks, clock: Clock) -> None:
    callback = dialing(store, requested(store), "chan-1")
    clock.now = T0 + 30
    retry = store.finish_attempt(callback.id, "chan-1", Result.BUSY, retry_at=T0 + 150, reason="Originate reason 5")
    assert retry is not None
    assert (retry.state, retry.next_attempt_at, retry.channel_id, retry.action_id, retry.last_result) == (
        State.PENDING, T0 + 150, None, None, Result.BUSY
    )  # fmt: skip
    assert (retry.attempts, retry.updated_at) == (1, T0 + 30)
    assert store.events(callback.id)[-1] == CallbackEvent(
        callback.id, T0 + 30, State.DIALING, State.PENDING,
        "busy (Originate reason 5); next attempt at 2027-01-15 08:02:30 UTC", attempt=1,
    )  # fmt: skip
    assert store.due(T0 + 149) == [] and store.pending_queues(T0 + 149) == []
    assert store.due(T0 + 150) == [retry]
    second = dialing(store, retry, "chan-2")
    assert (second.attempts, second.last_result) == (2, Result.BUSY)


def test_an_attempt_without_a_retry_fails_the_callback(store: SqliteCallbacks) -> None:
    callback = dialing(store, requested(store), "chan-1")
    failed = store.finish_attempt(callback.id, "chan-1", Result.NO_ANSWER, retry_at=None, reason="rang out")
    assert failed is not None
    assert (failed.state, failed.last_result, failed.channel_id, failed.active) == (
        State.FAILED, Result.NO_ANSWER, "chan-1", False
    )  # fmt: skip
    assert store.events(callback.id)[-1].reason == "no answer (rang out); no further attempt"
    assert store.due(T0 + 10_000) == [] and store.in_flight() == []
    assert store.finish_attempt(callback.id, "chan-1", Result.NO_ANSWER, retry_at=None, reason="again") is None
    with pytest.raises(CallbackFinished, match="is already failed"):
        store.cancel(callback.id, by="ops")
    assert requested(store, at=T0 + 60).id != callback.id


def test_only_the_attempt_in_flight_can_connect_or_end(store: SqliteCallbacks, clock: Clock) -> None:
    callback = dialing(store, requested(store), "chan-1")
    assert store.connected(callback.id, "chan-other", "customer confirmed") is None
    assert store.finish_attempt(callback.id, "chan-other", Result.ANSWERED, retry_at=None, reason="") is None
    assert store.get(callback.id) == callback
    clock.now = T0 + 40
    connected = store.connected(callback.id, "chan-1", "customer confirmed")
    assert connected is not None and (connected.state, connected.updated_at) == (State.CONNECTED, T0 + 40)
    assert store.connected(callback.id, "chan-1", "customer confirmed") is None  # a duplicate event
    assert store.in_flight() == [connected]
    clock.now = T0 + 400
    completed = store.finish_attempt(callback.id, "chan-1", Result.ANSWERED, retry_at=T0 + 999, reason="hung up")
    assert completed is not None
    assert (completed.state, completed.last_result, completed.next_attempt_at) == (
        State.COMPLETED, Result.ANSWERED, T0
    )  # fmt: skip
    assert store.finish_attempt(callback.id, "chan-1", Result.ANSWERED, retry_at=None, reason="") is None
    assert store.in_flight() == []
    assert store.events(callback.id) == [
        CallbackEvent(callback.id, T0, None, State.PENDING, "requested (request)", 0),
        CallbackEvent(callback.id, T0, State.PENDING, State.DIALING, "dialling (channel chan-1)", 1),
        CallbackEvent(callback.id, T0 + 40, State.DIALING, State.CONNECTED, "customer confirmed", 1),
        CallbackEvent(callback.id, T0 + 400, State.CONNECTED, State.COMPLETED, "answered (hung up)", 1),
    ]


def test_news_of_an_earlier_attempt_cannot_end_the_next_one(store: SqliteCallbacks) -> None:
    callback = dialing(store, requested(store), "chan-1")
    store.finish_attempt(callback.id, "chan-1", Result.BUSY, retry_at=T0, reason="")
    second = dialing(store, callback, "chan-2")
    assert store.finish_attempt(callback.id, "chan-1", Result.INTERRUPTED, retry_at=None, reason="late") is None
    assert store.connected(callback.id, "chan-1", "late") is None
    assert store.get(callback.id) == second


@pytest.mark.parametrize("result", [result for result in Result if result is not Result.ANSWERED])
def test_every_result_of_a_retried_attempt_is_stored(store: SqliteCallbacks, result: Result) -> None:
    callback = dialing(store, requested(store), "chan-1")
    retried = store.finish_attempt(callback.id, "chan-1", result, retry_at=T0 + 60, reason="")
    assert retried is not None and store.get(callback.id) == retried
    assert (retried.state, retried.last_result) == (State.PENDING, result)


def test_a_connected_attempt_that_needs_a_retry_goes_back_to_pending(store: SqliteCallbacks) -> None:
    callback = dialing(store, requested(store), "chan-1")
    store.connected(callback.id, "chan-1", "customer answered")
    retried = store.finish_attempt(callback.id, "chan-1", Result.NO_AGENT, retry_at=T0 + 60, reason="")
    assert retried is not None and retried.state is State.PENDING
    assert store.events(callback.id)[-1].from_state is State.CONNECTED


def test_summary_counts_every_state_and_the_oldest_pending_wait(store: SqliteCallbacks) -> None:
    assert store.summary(T0) == CallbackSummary(dict.fromkeys(State, 0), None)
    oldest = requested(store, "+491", at=T0 - 50)
    requested(store, "+492", at=T0 - 20)
    dialing(store, requested(store, "+493", at=T0 - 90))
    store.cancel(requested(store, "+494", at=T0 - 80).id, by="ops")
    summary = store.summary(T0)
    assert summary.counts == {**dict.fromkeys(State, 0), State.PENDING: 2, State.DIALING: 1, State.CANCELLED: 1}
    assert summary.oldest_pending_seconds == 50
    store.cancel(oldest.id, by="ops")
    assert store.summary(T0).oldest_pending_seconds == 20
    assert store.summary(T0 - 100).oldest_pending_seconds == 0  # a clock behind the request says 0, not negative


@pytest.mark.parametrize("change", ["request", "cancel", "start_attempt", "connected", "finish_attempt"])
def test_a_change_whose_event_cannot_be_written_is_not_made(
    store: SqliteCallbacks, database: Database, change: str
) -> None:
    """The state change and its event row are one transaction: if the event fails, the state stays as it was."""
    callback = requested(store)
    if change in ("connected", "finish_attempt"):
        callback = dialing(store, callback, "chan-1")
    before = store.list(), store.events(callback.id)
    with database.transaction() as conn:
        conn.execute(
            "CREATE TRIGGER no_events BEFORE INSERT ON callback_events BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    actions = {
        "request": lambda: store.request(new("+4940000000")),
        "cancel": lambda: store.cancel(callback.id, by="ops"),
        "start_attempt": lambda: store.start_attempt(callback.id, channel_id="chan-1", action_id="a"),
        "connected": lambda: store.connected(callback.id, "chan-1", "confirmed"),
        "finish_attempt": lambda: store.finish_attempt(callback.id, "chan-1", Result.BUSY, retry_at=T0, reason=""),
    }
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        actions[change]()
    assert (store.list(), store.events(callback.id)) == before


def test_two_threads_starting_the_same_attempts_each_win_a_callback_once(
    store: SqliteCallbacks, database: Database
) -> None:
    callbacks = [requested(store, f"+49301{index:04d}") for index in range(60)]
    start = threading.Barrier(2)
    wins: dict[str, list[str]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def dispatcher(name: str) -> None:
        try:
            start.wait(timeout=10)
            for callback in callbacks:  # both in the same order: every start is contested
                if store.start_attempt(callback.id, channel_id=f"{name}-{callback.id}", action_id=name) is not None:
                    wins[name].append(callback.id)
        except BaseException as exc:  # re-raised in the test below
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher, args=(name,)) for name in wins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(wins["a"] + wins["b"]) == sorted(callback.id for callback in callbacks)  # each won exactly once
    for callback in callbacks:
        stored = store.get(callback.id)
        assert stored is not None and stored.attempts == 1
        winner = "a" if callback.id in wins["a"] else "b"
        assert stored.channel_id == f"{winner}-{callback.id}"
        assert [event.to_state for event in store.events(callback.id)] == [State.PENDING, State.DIALING]


SECOND_PROCESS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from ivrkit.callbacks.model import NewCallback, Origin
    from ivrkit.store import SqliteCallbacks, open_database

    data, number, queue = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open_database(data) as db:
        store = SqliteCallbacks(db, lambda: 1_800_000_100.0)
        seen = store.active_for(number, queue)
        _, created = store.request(NewCallback(number, queue, "main", Origin.AUTOMATIC, 1.0, 2.0))
        started = store.start_attempt(seen.id, channel_id="other-process", action_id="a1")
        other, _ = store.request(NewCallback("+4940111222", queue, "main", Origin.OPT_IN, 3.0, 4.0))
        print(json.dumps({"seen": seen.id, "duplicate_created": created, "state": started.state.value,
                          "other": other.id}))
    """
)


def test_a_second_process_sees_and_changes_the_same_callbacks(store: SqliteCallbacks, tmp_path: Path) -> None:
    callback = requested(store)
    done = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, str(tmp_path), NUMBER, "support"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"seen": callback.id, "duplicate_created": False, "state": "dialing", "other": seen["other"]}
    assert store.get(callback.id) == replace(
        callback, state=State.DIALING, attempts=1, channel_id="other-process", action_id="a1", updated_at=T0 + 100
    )
    assert store.events(callback.id)[-1] == CallbackEvent(
        callback.id, T0 + 100, State.PENDING, State.DIALING, "dialling (channel other-process)", attempt=1
    )
    other = store.get(seen["other"])
    assert other is not None and (other.number, other.origin, other.state) == ("+4940111222", Origin.OPT_IN,
                                                                               State.PENDING)  # fmt: skip


RACING_DISPATCHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ivrkit.store import SqliteCallbacks, open_database

    with open_database(Path(sys.argv[1])) as db:
        store = SqliteCallbacks(db)
        ids = [callback.id for callback in store.due(float("inf"), limit=1000)]
        print("ready", flush=True)
        sys.stdin.readline()
        for id_ in ids:
            if store.start_attempt(id_, channel_id=sys.argv[2] + id_, action_id=sys.argv[2]):
                print(id_, flush=True)
    """
)


def test_two_processes_never_start_the_same_attempt(store: SqliteCallbacks, tmp_path: Path) -> None:
    callbacks = [requested(store, f"+49302{index:04d}") for index in range(150)]
    outputs = run_together(RACING_DISPATCHER, [str(tmp_path), "a-"], [str(tmp_path), "b-"])
    won = [out.split() for out in outputs]
    assert sorted(won[0] + won[1]) == sorted(callback.id for callback in callbacks)
    assert {cb.attempts for cb in store.list(limit=1000)} == {1}


def test_the_sqlite_store_is_a_callback_store(database: Database) -> None:
    store: CallbackStore = SqliteCallbacks(database)  # mypy checks the protocol here
    assert store.list() == []
