"""The durable outbox: a message is written here before the caller hears "sent", and leaves only once delivered.

Why an outbox: a gateway that is down or slow must never block a call nor lose a message. The call only
inserts a row (one short transaction); a worker thread sends it later (``ivrkit.sms.worker``). Each row has
an *idempotency key* (the call's unique id and the step), unique in the table, so a flow that runs the same
step twice, or a retry, can never queue a second message.

A row's life: ``pending`` (due at ``due_at``) → ``sending`` (claimed by one process under a lease until
``due_at``) → ``sent`` or ``failed``, or back to ``pending`` with a later ``due_at`` after a temporary error.
A process killed while sending leaves its row ``sending``; once the lease has run out any process claims it
again. Each claim carries a random token, and only the claim holder can settle the row, so a process whose
lease ran out while it was still sending cannot overwrite what the next holder did.

:class:`Outbox` is the interface; :class:`SqliteOutbox` the SQLite implementation (a PostgreSQL one would
claim with ``SELECT … FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Protocol

from ivrkit.store.database import Database, register_schema

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
STATES = (PENDING, SENDING, SENT, FAILED)
MAX_ERROR_LENGTH = 500  # a gateway's error body can be large; the start says what went wrong

register_schema(
    "outbox",
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        recipient TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        due_at REAL NOT NULL,
        claim TEXT,
        last_error TEXT,
        provider_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX outbox_due ON outbox (due_at) WHERE state IN ('pending', 'sending');
    """,
)


@dataclass(frozen=True)
class OutboxEntry:
    """One message and where it is in its life. ``due_at``: next attempt (pending) or end of the lease (sending)."""

    id: int
    key: str
    recipient: str
    body: str
    state: str
    attempts: int  # attempts started so far (a claim counts as one, even if the process died during it)
    due_at: float
    claim: str | None
    last_error: str | None
    provider_id: str | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboxEntry:
        return cls(**{name: row[name] for name in row.keys()})


@dataclass(frozen=True)
class Enqueued:
    entry: OutboxEntry
    created: bool  # False: the key was queued before and ``entry`` is that earlier message


class Outbox(Protocol):
    """What the call side (enqueue), the worker (claim, settle) and operators (entries, counts) need."""

    def enqueue(self, key: str, recipient: str, body: str, *, now: float | None = None) -> Enqueued:
        """Queue a message once per key: a second call with the same key returns the first message."""
        ...

    def claim(self, lease: float, *, limit: int = 1, now: float | None = None) -> list[OutboxEntry]:
        """Take due messages for sending, each reserved for ``lease`` seconds."""
        ...

    def mark_sent(self, entry: OutboxEntry, provider_id: str, *, now: float | None = None) -> bool:
        """Settle a claimed message as delivered; False when the claim was lost (the lease ran out)."""
        ...

    def retry_at(self, entry: OutboxEntry, due_at: float, error: str, *, now: float | None = None) -> bool:
        """Put a claimed message back for another attempt at ``due_at``."""
        ...

    def mark_failed(self, entry: OutboxEntry, error: str, *, now: float | None = None) -> bool:
        """Give up on a claimed message."""
        ...

    def entries(self, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """The newest messages first, optionally only those in one state: for operators."""
        ...

    def get(self, key: str) -> OutboxEntry | None: ...

    def counts(self) -> dict[str, int]:
        """Messages per state (every state present, 0 when none)."""
        ...

    def next_due(self) -> float | None:
        """When the next message becomes due (pending or lease expiry), or None when nothing is waiting."""
        ...


class SqliteOutbox:
    """:class:`Outbox` on the SQLite store; safe from several threads and processes on the same file."""

    def __init__(self, database: Database):
        self.database = database

    def enqueue(self, key: str, recipient: str, body: str, *, now: float | None = None) -> Enqueued:
        now = time.time() if now is None else now
        with self.database.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO outbox (key, recipient, body, due_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key, recipient, body, now, now, now),
            )
            row = conn.execute("SELECT * FROM outbox WHERE key = ?", (key,)).fetchone()
        return Enqueued(OutboxEntry.from_row(row), cursor.rowcount == 1)

    def claim(self, lease: float, *, limit: int = 1, now: float | None = None) -> list[OutboxEntry]:
        now = time.time() if now is None else now
        token = secrets.token_hex(8)
        with self.database.transaction() as conn:
            ids = [
                row["id"]
                for row in conn.execute(
                    "SELECT id FROM outbox WHERE state IN ('pending', 'sending') AND due_at <= ? "
                    "ORDER BY due_at, id LIMIT ?",
                    (now, limit),
                )
            ]
            rows = [
                conn.execute(
                    "UPDATE outbox SET state = 'sending', attempts = attempts + 1, due_at = ?, claim = ?, "
                    "updated_at = ? WHERE id = ? RETURNING *",
                    (now + lease, token, now, id_),
                ).fetchone()
                for id_ in ids
            ]
        return [OutboxEntry.from_row(row) for row in rows]

    def mark_sent(self, entry: OutboxEntry, provider_id: str, *, now: float | None = None) -> bool:
        return self._settle(entry, now, "state = 'sent', provider_id = ?, last_error = NULL", provider_id)

    def retry_at(self, entry: OutboxEntry, due_at: float, error: str, *, now: float | None = None) -> bool:
        return self._settle(entry, now, "state = 'pending', due_at = ?, last_error = ?", due_at, _short(error))

    def mark_failed(self, entry: OutboxEntry, error: str, *, now: float | None = None) -> bool:
        return self._settle(entry, now, "state = 'failed', last_error = ?", _short(error))

    def _settle(self, entry: OutboxEntry, now: float | None, assignments: str, *values: object) -> bool:
        now = time.time() if now is None else now
        with self.database.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE outbox SET {assignments}, claim = NULL, updated_at = ? "
                "WHERE id = ? AND state = 'sending' AND claim = ?",
                (*values, now, entry.id, entry.claim),
            )
        return cursor.rowcount == 1

    def entries(self, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        if state is not None and state not in STATES:
            raise ValueError(f"unknown outbox state {state!r}: use one of {', '.join(STATES)}")
        where, params = ("WHERE state = ?", (state, limit)) if state else ("", (limit,))
        rows = self.database.read(f"SELECT * FROM outbox {where} ORDER BY id DESC LIMIT ?", params)
        return [OutboxEntry.from_row(row) for row in rows]

    def get(self, key: str) -> OutboxEntry | None:
        rows = self.database.read("SELECT * FROM outbox WHERE key = ?", (key,))
        return OutboxEntry.from_row(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for row in self.database.read("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def next_due(self) -> float | None:
        rows = self.database.read("SELECT MIN(due_at) AS due FROM outbox WHERE state IN ('pending', 'sending')")
        due = rows[0]["due"]
        return None if due is None else float(due)


def _short(error: str) -> str:
    return error if len(error) <= MAX_ERROR_LENGTH else error[: MAX_ERROR_LENGTH - 1] + "…"
