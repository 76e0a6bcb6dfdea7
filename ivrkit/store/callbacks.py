"""Callbacks as stored: one row per request, one event row per state change, each change in one transaction.

Why here and not in Asterisk: a callback outlives the call that asked for it, a server restart and a
dispatcher restart. The call side (``request``, ``cancel``), the dispatcher (``due``, ``start_attempt``,
``finish_attempt``, ``in_flight``) and operators (``list``, ``events``, ``summary``) may be different threads
and processes on one file: every state change is a single ``BEGIN IMMEDIATE`` transaction that checks the
state it expects and writes its ``callback_events`` row, so two dispatchers can never both dial one callback,
and an event that arrives late (a second Hangup, a reconciled attempt) changes nothing.

Two guards keep the data sane whatever the callers do:

- a partial unique index: a number has at most one *active* (pending, dialing, connected) callback per queue;
- the attempt in flight is named by its ``channel_id`` (the Originate's preset uniqueid): ``connected`` and
  ``finish_attempt`` only act on the attempt they name, so news of an earlier attempt cannot end a later one.

:class:`CallbackStore` is the interface; :class:`SqliteCallbacks` the SQLite implementation.
"""

from __future__ import annotations

import builtins
import datetime as dt
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ivrkit.callbacks.model import Callback, CallbackEvent, NewCallback, Origin, Result, State
from ivrkit.callbacks.policy import describe
from ivrkit.store.database import Database, StoreError, register_schema

# The SQL spelling of model.ACTIVE / model.IN_FLIGHT (the schema's index must be a literal; a test compares them).
ACTIVE_SQL = "('pending', 'dialing', 'connected')"
IN_FLIGHT_SQL = "('dialing', 'connected')"

register_schema(
    "callbacks",
    """
    CREATE TABLE callbacks (
        id TEXT PRIMARY KEY,
        number TEXT NOT NULL,
        queue TEXT NOT NULL,
        flow TEXT NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('request', 'opt-in', 'automatic')),
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'dialing', 'connected', 'completed', 'failed', 'cancelled')),
        joined_at REAL NOT NULL,
        requested_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        uniqueid TEXT NOT NULL DEFAULT '',
        reason TEXT,
        language TEXT NOT NULL DEFAULT '',
        priority INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at REAL NOT NULL,
        channel_id TEXT,
        action_id TEXT,
        last_result TEXT CHECK (last_result IN
            ('answered', 'busy', 'no-answer', 'failed', 'machine', 'unconfirmed', 'no-agent', 'interrupted'))
    );
    CREATE UNIQUE INDEX callbacks_active ON callbacks (number, queue)
        WHERE state IN ('pending', 'dialing', 'connected');
    CREATE INDEX callbacks_due ON callbacks (queue, priority DESC, joined_at) WHERE state = 'pending';
    CREATE INDEX callbacks_requested ON callbacks (requested_at);
    CREATE TABLE callback_events (
        id INTEGER PRIMARY KEY,
        callback_id TEXT NOT NULL REFERENCES callbacks (id),
        at REAL NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        reason TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX callback_events_callback ON callback_events (callback_id, id);
    """,
)


class CallbackNotFound(StoreError):
    """No callback has this id."""

    def __init__(self, callback_id: str):
        super().__init__(f"no callback with id {callback_id!r}; `ivrkit callbacks list` shows the ids")
        self.callback_id = callback_id


class CallbackFinished(StoreError):
    """The callback is no longer active (completed, failed or cancelled): there is nothing left to cancel."""

    def __init__(self, callback: Callback):
        super().__init__(
            f"callback {callback.id} is already {callback.state}; only a pending, dialing or connected callback "
            "can be cancelled"
        )
        self.callback = callback


@dataclass(frozen=True)
class CallbackSummary:
    """The figures operators watch (metrics): how many callbacks are in each state, how long the oldest waits."""

    counts: dict[State, int]  # every state present, 0 included
    oldest_pending_seconds: float | None  # since the oldest pending callback was requested; None: none pending


class CallbackStore(Protocol):
    """What the flow side, the dispatcher, the answered leg and operators need from the callback store."""

    def request(self, new: NewCallback) -> tuple[Callback, bool]:
        """Register a callback: ``(callback, True)`` when created, ``(the active one, False)`` when the number
        already has an active callback for the queue (nothing is written then)."""
        ...

    def get(self, callback_id: str) -> Callback | None: ...

    def active_for(self, number: str, queue: str | None = None) -> Callback | None:
        """The number's active callback for ``queue``; for any queue (the oldest) when ``queue`` is None."""
        ...

    def list(
        self, *, states: Iterable[State | str] | None = None, queue: str | None = None, limit: int = 100
    ) -> builtins.list[Callback]:
        """Callbacks newest first (by request time), optionally only in some states or one queue: for operators."""
        ...

    def events(self, callback_id: str) -> builtins.list[CallbackEvent]:
        """A callback's changes, oldest first ([] for an unknown id)."""
        ...

    def cancel(self, callback_id: str, *, by: str, reason: str = "") -> Callback:
        """Cancel an active callback. Raises CallbackNotFound, or CallbackFinished when it is no longer active."""
        ...

    def due(self, now: float, *, queue: str | None = None, limit: int = 50) -> builtins.list[Callback]:
        """Pending callbacks whose next attempt is due, in dialling order: priority first, then the callers'
        places in line (``joined_at``)."""
        ...

    def pending_queues(self, now: float) -> builtins.list[str]:
        """The queues that have due callbacks, sorted."""
        ...

    def start_attempt(self, callback_id: str, *, channel_id: str, action_id: str) -> Callback | None:
        """Record an attempt before its Originate is sent (pending → dialing, one more attempt). None when the
        callback is no longer pending (cancelled, or another dispatcher took it): do NOT originate then."""
        ...

    def connected(self, callback_id: str, channel_id: str, reason: str) -> Callback | None:
        """Dialing → connected, only for the attempt in flight named by ``channel_id``; None otherwise."""
        ...

    def finish_attempt(
        self, callback_id: str, channel_id: str, result: Result, *, retry_at: float | None, reason: str
    ) -> Callback | None:
        """End the attempt in flight named by ``channel_id``: ANSWERED → completed; otherwise pending again at
        ``retry_at``, or failed when ``retry_at`` is None. None when that attempt is not in flight (any more)."""
        ...

    def in_flight(self) -> builtins.list[Callback]:
        """Callbacks dialing or connected: what the dispatcher checks against Asterisk after a (re)connect."""
        ...

    def summary(self, now: float) -> CallbackSummary: ...


class SqliteCallbacks:
    """:class:`CallbackStore` on the SQLite store; safe from several threads and processes on the same file.

    ``clock`` stamps ``updated_at`` and the events (tests pass a fixed one).
    """

    def __init__(self, database: Database, clock: Callable[[], float] = time.time):
        self.database = database
        self.clock = clock

    def request(self, new: NewCallback) -> tuple[Callback, bool]:
        for field in ("number", "queue", "flow"):
            if not getattr(new, field):
                raise ValueError(f"a callback needs a {field}; got {getattr(new, field)!r}")
        now = self.clock()
        with self.database.transaction() as conn:  # BEGIN IMMEDIATE: no other writer between the check and insert
            existing = conn.execute(
                f"SELECT * FROM callbacks WHERE number = ? AND queue = ? AND state IN {ACTIVE_SQL}",
                (new.number, new.queue),
            ).fetchone()
            if existing is not None:
                return _callback(existing), False
            row = conn.execute(
                "INSERT INTO callbacks (id, number, queue, flow, origin, state, joined_at, requested_at, updated_at, "
                "uniqueid, reason, language, priority, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (uuid.uuid4().hex, new.number, new.queue, new.flow, new.origin.value, new.joined_at,
                 new.requested_at, now, new.uniqueid, new.reason, new.language, new.priority, new.requested_at),
            ).fetchone()  # fmt: skip
            created = _callback(row)
            _record(conn, created, now, None, f"requested ({new.origin})")
        return created, True

    def get(self, callback_id: str) -> Callback | None:
        rows = self.database.read("SELECT * FROM callbacks WHERE id = ?", (callback_id,))
        return _callback(rows[0]) if rows else None

    def active_for(self, number: str, queue: str | None = None) -> Callback | None:
        where, params = ("AND queue = ?", (number, queue)) if queue is not None else ("", (number,))
        rows = self.database.read(
            f"SELECT * FROM callbacks WHERE number = ? {where} AND state IN {ACTIVE_SQL} "
            "ORDER BY requested_at, rowid LIMIT 1",
            params,
        )
        return _callback(rows[0]) if rows else None

    def list(
        self, *, states: Iterable[State | str] | None = None, queue: str | None = None, limit: int = 100
    ) -> builtins.list[Callback]:
        clauses: builtins.list[str] = []
        params: builtins.list[object] = []
        if states is not None:
            wanted = [_state(state) for state in states]
            if not wanted:
                return []
            clauses.append(f"state IN ({', '.join('?' * len(wanted))})")
            params.extend(state.value for state in wanted)
        if queue is not None:
            clauses.append("queue = ?")
            params.append(queue)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.database.read(
            f"SELECT * FROM callbacks {where} ORDER BY requested_at DESC, rowid DESC LIMIT ?", (*params, limit)
        )
        return [_callback(row) for row in rows]

    def events(self, callback_id: str) -> builtins.list[CallbackEvent]:
        rows = self.database.read("SELECT * FROM callback_events WHERE callback_id = ? ORDER BY id", (callback_id,))
        return [_event(row) for row in rows]

    def cancel(self, callback_id: str, *, by: str, reason: str = "") -> Callback:
        if not by.strip():
            raise ValueError("say who cancels the callback (by=…): the caller, an operator's name, …")
        now = self.clock()
        with self.database.transaction() as conn:
            row = conn.execute("SELECT * FROM callbacks WHERE id = ?", (callback_id,)).fetchone()
            if row is None:
                raise CallbackNotFound(callback_id)
            current = _callback(row)
            if not current.active:
                raise CallbackFinished(current)
            cancelled = _callback(
                conn.execute(
                    "UPDATE callbacks SET state = 'cancelled', updated_at = ? WHERE id = ? RETURNING *",
                    (now, callback_id),
                ).fetchone()
            )
            _record(conn, cancelled, now, current.state, f"cancelled by {by}" + (f": {reason}" if reason else ""))
        return cancelled

    def due(self, now: float, *, queue: str | None = None, limit: int = 50) -> builtins.list[Callback]:
        where, params = ("AND queue = ?", (now, queue, limit)) if queue is not None else ("", (now, limit))
        rows = self.database.read(
            f"SELECT * FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ? {where} "
            "ORDER BY priority DESC, joined_at, requested_at, rowid LIMIT ?",
            params,
        )
        return [_callback(row) for row in rows]

    def pending_queues(self, now: float) -> builtins.list[str]:
        rows = self.database.read(
            "SELECT DISTINCT queue FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY queue",
            (now,),
        )
        return [row["queue"] for row in rows]

    def start_attempt(self, callback_id: str, *, channel_id: str, action_id: str) -> Callback | None:
        now = self.clock()
        with self.database.transaction() as conn:
            row = conn.execute(
                "UPDATE callbacks SET state = 'dialing', attempts = attempts + 1, channel_id = ?, action_id = ?, "
                "updated_at = ? WHERE id = ? AND state = 'pending' RETURNING *",
                (channel_id, action_id, now, callback_id),
            ).fetchone()
            if row is None:
                return None
            started = _callback(row)
            _record(conn, started, now, State.PENDING, f"dialling (channel {channel_id})")
        return started

    def connected(self, callback_id: str, channel_id: str, reason: str) -> Callback | None:
        now = self.clock()
        with self.database.transaction() as conn:
            row = conn.execute(
                "UPDATE callbacks SET state = 'connected', updated_at = ? "
                "WHERE id = ? AND state = 'dialing' AND channel_id = ? RETURNING *",
                (now, callback_id, channel_id),
            ).fetchone()
            if row is None:
                return None
            connected = _callback(row)
            _record(conn, connected, now, State.DIALING, reason)
        return connected

    def finish_attempt(
        self, callback_id: str, channel_id: str, result: Result, *, retry_at: float | None, reason: str
    ) -> Callback | None:
        """``reason`` is the detail behind ``result`` ("Originate reason 5", "hung up at the confirmation"); the
        event reads e.g. "busy (Originate reason 5); next attempt at 2027-01-15 10:02:00 UTC"."""
        now = self.clock()
        with self.database.transaction() as conn:
            row = conn.execute(
                f"SELECT * FROM callbacks WHERE id = ? AND channel_id = ? AND state IN {IN_FLIGHT_SQL}",
                (callback_id, channel_id),
            ).fetchone()
            if row is None:
                return None
            current = _callback(row)
            words = describe(result, reason)
            values: tuple[float, ...] = ()
            if result is Result.ANSWERED:
                assignments = "state = 'completed'"
            elif retry_at is not None:
                assignments = "state = 'pending', next_attempt_at = ?, channel_id = NULL, action_id = NULL"
                values = (retry_at,)
                words += f"; next attempt at {_utc(retry_at)}"
            else:
                assignments = "state = 'failed'"
                words += "; no further attempt"
            finished = _callback(
                conn.execute(
                    f"UPDATE callbacks SET {assignments}, last_result = ?, updated_at = ? WHERE id = ? RETURNING *",
                    (*values, result.value, now, callback_id),
                ).fetchone()
            )
            _record(conn, finished, now, current.state, words)
        return finished

    def in_flight(self) -> builtins.list[Callback]:
        rows = self.database.read(f"SELECT * FROM callbacks WHERE state IN {IN_FLIGHT_SQL} ORDER BY updated_at, rowid")
        return [_callback(row) for row in rows]

    def summary(self, now: float) -> CallbackSummary:
        counts = dict.fromkeys(State, 0)
        for row in self.database.read("SELECT state, COUNT(*) AS n FROM callbacks GROUP BY state"):
            counts[State(row["state"])] = row["n"]
        (row,) = self.database.read("SELECT MIN(requested_at) AS oldest FROM callbacks WHERE state = 'pending'")
        oldest = None if row["oldest"] is None else max(0.0, now - row["oldest"])
        return CallbackSummary(counts, oldest)


def _record(conn: sqlite3.Connection, callback: Callback, at: float, from_state: State | None, reason: str) -> None:
    """The event row of a change, written in the change's own transaction."""
    conn.execute(
        "INSERT INTO callback_events (callback_id, at, from_state, to_state, reason, attempt) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (callback.id, at, None if from_state is None else from_state.value, callback.state.value, reason,
         callback.attempts),
    )  # fmt: skip


def _callback(row: sqlite3.Row) -> Callback:
    values = {name: row[name] for name in row.keys()}
    values["origin"] = Origin(values["origin"])
    values["state"] = State(values["state"])
    values["last_result"] = None if values["last_result"] is None else Result(values["last_result"])
    return Callback(**values)


def _event(row: sqlite3.Row) -> CallbackEvent:
    return CallbackEvent(
        callback_id=row["callback_id"],
        at=row["at"],
        from_state=None if row["from_state"] is None else State(row["from_state"]),
        to_state=State(row["to_state"]),
        reason=row["reason"],
        attempt=row["attempt"],
    )


def _state(state: State | str) -> State:
    try:
        return State(state)
    except ValueError:
        raise ValueError(
            f"unknown callback state {state!r}: use one of {', '.join(known.value for known in State)}"
        ) from None


def _utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
