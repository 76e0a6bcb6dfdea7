"""The estimate log: every queue join with the estimate the caller heard, and later the wait that followed.

Why: an announced wait is a promise. Keeping each estimate next to the actual wait says how good the promises
are (the metrics in ``ivrkit.ops.metrics`` sum it up for dashboards; this table has every call for a closer
look), and the answered calls in it are what the estimator learns from: how many were answered recently and
how long agents talked (``recent``).

A row is written when a queue step hands a caller to a queue (``joined``) and completed when a later session of
the same call learns how the wait ended (``left``): the flow resumed with the queue's outcome or an exit key,
or the hang-up handler ran (answered, or abandoned). A call that queues twice has two rows; ``left`` completes
the newest open one for that call and queue.

:class:`EstimateLog` is the interface; :class:`SqliteEstimateLog` the SQLite implementation.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Protocol

from ivrkit.engine.world import QueueExit, QueueJoin
from ivrkit.store.database import Database, register_schema

register_schema(
    "estimates",
    """
    CREATE TABLE queue_waits (
        id INTEGER PRIMARY KEY,
        uniqueid TEXT NOT NULL,
        flow TEXT NOT NULL,
        queue TEXT NOT NULL,
        position INTEGER NOT NULL,
        estimate REAL,
        said TEXT NOT NULL CHECK (said IN ('number', 'safe', 'none', 'off')),
        method TEXT NOT NULL,
        joined_at REAL NOT NULL,
        wait REAL,
        talk REAL,
        result TEXT,
        left_at REAL
    );
    CREATE INDEX queue_waits_call ON queue_waits (uniqueid, queue) WHERE result IS NULL;
    CREATE INDEX queue_waits_answered ON queue_waits (queue, left_at) WHERE result = 'answered';
    """,
)


@dataclass(frozen=True)
class LoggedWait:
    """One row: a join, its estimate (None: too little data, the safe phrase) and, once known, the wait."""

    id: int
    uniqueid: str
    flow: str
    queue: str
    position: int
    estimate: float | None
    said: str  # number, safe, none (next in line) or off (the step does not announce the wait)
    method: str
    joined_at: float  # Unix time
    wait: float | None
    talk: float | None
    result: str | None  # answered, abandoned, timeout, … or an exit-key outcome; None while unknown
    left_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> LoggedWait:
        return cls(**{name: row[name] for name in row.keys()})

    @property
    def error(self) -> float | None:
        """Actual minus estimated wait, in seconds (positive: the caller waited longer than they heard)."""
        return None if self.wait is None or self.estimate is None else self.wait - self.estimate


@dataclass(frozen=True)
class Recent:
    """What the log knows of a queue's recently answered calls."""

    answered: int
    avg_talk: float | None  # None: no answered call told its talk time
    avg_wait: float | None


class EstimateLog(Protocol):
    def joined(self, join: QueueJoin) -> LoggedWait:
        """Log a caller handed to a queue, with the estimate they heard."""
        ...

    def left(self, left: QueueExit) -> LoggedWait | None:
        """Complete the call's newest open join of that queue; None when there is none (it was never logged)."""
        ...

    def recent(self, queue: str, since: float) -> Recent:
        """The queue's calls answered since ``since`` (Unix time)."""
        ...

    def entries(self, queue: str | None = None, limit: int = 100) -> list[LoggedWait]:
        """The newest rows first, for operators and tests."""
        ...


class SqliteEstimateLog:
    """:class:`EstimateLog` on the SQLite store."""

    def __init__(self, database: Database):
        self.database = database

    def joined(self, join: QueueJoin) -> LoggedWait:
        with self.database.transaction() as conn:
            return self.joined_in(conn, join)

    def left(self, left: QueueExit) -> LoggedWait | None:
        with self.database.transaction() as conn:
            return self.left_in(conn, left)

    @staticmethod
    def joined_in(conn: sqlite3.Connection, join: QueueJoin) -> LoggedWait:
        """:meth:`joined` inside the caller's transaction."""
        (row,) = conn.execute("SELECT * FROM queue_waits WHERE id = ?", (SqliteEstimateLog.insert_join(conn, join),))
        return LoggedWait.from_row(row)

    @staticmethod
    def insert_join(conn: sqlite3.Connection, join: QueueJoin) -> int:
        """The row of a join, written inside the caller's transaction (a
        :class:`~ivrkit.store.writer.BackgroundWriter` batch, which needs nothing back); its id."""
        cursor = conn.execute(
            "INSERT INTO queue_waits (uniqueid, flow, queue, position, estimate, said, method, joined_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (join.uniqueid, join.flow, join.queue, join.position, join.estimate, join.said, join.method,
             join.at.timestamp()),
        )  # fmt: skip
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @staticmethod
    def left_in(conn: sqlite3.Connection, left: QueueExit) -> LoggedWait | None:
        """:meth:`left` inside the caller's transaction."""
        row = conn.execute(
            "UPDATE queue_waits SET wait = ?, talk = ?, result = ?, left_at = ? WHERE id = ("
            "SELECT id FROM queue_waits WHERE uniqueid = ? AND queue = ? AND result IS NULL "
            "ORDER BY joined_at DESC, id DESC LIMIT 1) RETURNING *",
            (left.wait, left.talk, left.result, left.at.timestamp(), left.uniqueid, left.queue),
        ).fetchone()
        return None if row is None else LoggedWait.from_row(row)

    def recent(self, queue: str, since: float) -> Recent:
        (row,) = self.database.read(
            "SELECT COUNT(*) AS answered, AVG(talk) AS talk, AVG(wait) AS wait FROM queue_waits "
            "WHERE queue = ? AND result = 'answered' AND left_at >= ?",
            (queue, since),
        )
        return Recent(row["answered"], row["talk"], row["wait"])

    def entries(self, queue: str | None = None, limit: int = 100) -> list[LoggedWait]:
        where, params = ("WHERE queue = ?", (queue, limit)) if queue else ("", (limit,))
        rows = self.database.read(f"SELECT * FROM queue_waits {where} ORDER BY id DESC LIMIT ?", params)
        return [LoggedWait.from_row(row) for row in rows]
