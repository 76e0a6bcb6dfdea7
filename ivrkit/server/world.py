"""The world live calls run in: Asterisk's queue figures merged with the estimate log, and texts through the outbox.

:class:`LiveWorld` is what ``ivrkit serve`` gives the engine; each concern is a part of its own.

The queue part: Asterisk's figures for a queue, merged with what the estimate log learnt.

Asterisk knows the queue now (callers waiting, agents logged in, ready, paused) and keeps moving averages of
hold and talk time since its last restart; it does not know how many calls were answered *recently*, which the
minimum-data rule needs. The estimate log does: every call the flows queued, and how its wait ended. So
:meth:`LiveQueues.queue` takes the live figures from the call's AGI channel (``queue_stats``: one round trip)
and replaces ``answered`` with the log's count of calls answered within ``window`` seconds, and ``avg_talk``
with their average talk time when they told one.

The log is bookkeeping: its writes go through a :class:`~ivrkit.store.writer.BackgroundWriter`, so a call
never waits for a commit, and when the store fails a call goes on with Asterisk's figures alone and the
failure is logged, never raised into the call.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ivrkit.engine.world import (
    CallbackNotRegistered,
    CallbackRequest,
    PendingCallback,
    QueueExit,
    QueueJoin,
    QueueStats,
    SentText,
    TextRequest,
)
from ivrkit.maintenance.model import Maintenance, Window, in_force
from ivrkit.queueing.announce import SAID_NUMBER, SAID_OFF
from ivrkit.steps.queue import ANSWERED
from ivrkit.store.database import Database, StoreError
from ivrkit.store.estimates import SqliteEstimateLog
from ivrkit.store.maintenance import MaintenanceStore
from ivrkit.store.writer import BackgroundWriter, Write

if TYPE_CHECKING:
    from ivrkit.callbacks.live import LiveCallbacks
    from ivrkit.callbacks.model import Callback, Result
    from ivrkit.engine.channel import Channel
    from ivrkit.ops.metrics import ServerMetrics
    from ivrkit.sms.texts import OutboxTexts

log = logging.getLogger("ivrkit.queues")
maintenance_log = logging.getLogger("ivrkit.maintenance")

DEFAULT_WINDOW = 3600.0  # seconds of answered calls the estimator learns from


class LiveQueues:
    """``World.queue``, ``queue_joined`` and ``queue_left`` for the live server (the lead's ``LiveWorld`` holds
    one). ``metrics`` counts announcements and the error of announced waits."""

    def __init__(
        self,
        database: Database,
        *,
        window: float = DEFAULT_WINDOW,
        metrics: ServerMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if window <= 0:
            raise ValueError(f"the estimate window must be positive seconds, not {window}")
        self.log = SqliteEstimateLog(database)
        self.writer = BackgroundWriter(database, "estimate-log")
        self.window = window
        self.metrics = metrics
        self.clock = clock

    def queue(self, name: str, channel: Channel) -> QueueStats:
        read = getattr(channel, "queue_stats", None)  # the AGI channel's; a channel without it knows no queue
        stats: QueueStats = read(name) if callable(read) else QueueStats()
        try:
            recent = self.log.recent(name, self.clock() - self.window)
        except (StoreError, sqlite3.Error) as error:
            log.warning("estimate log not read, using Asterisk's figures for queue %s: %s", name, error)
            return stats
        talk = stats.avg_talk if recent.avg_talk is None else recent.avg_talk
        return replace(stats, answered=recent.answered, avg_talk=talk)

    def queue_joined(self, join: QueueJoin) -> None:
        if self.metrics is not None and join.said != SAID_OFF:
            self.metrics.wait_estimate(join.queue, join.said)
        self._submit(lambda conn: self.log.insert_join(conn, join), f"estimate for queue {join.queue} not logged")

    def queue_left(self, left: QueueExit) -> None:
        answered = left.result == ANSWERED

        def write(conn: sqlite3.Connection) -> None:
            row = self.log.left_in(conn, left)
            if row is None:
                log.info("wait in queue %s not logged: the call's join was not logged", left.queue)
            elif self.metrics is not None and row.estimate is not None and row.said == SAID_NUMBER and answered:
                self.metrics.wait_estimate_error(left.queue, left.wait, row.estimate)  # what callers were told

        self._submit(write, f"wait in queue {left.queue} not logged")

    def _submit(self, write: Write, failure: str) -> None:
        try:
            self.writer.submit(write, failure)
        except StoreError as error:
            log.warning("%s: %s", failure, error)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the joins and waits reported so far are in the log (tests, and before the store closes)."""
        return self.writer.flush(timeout)

    def close(self, timeout: float | None = 5.0) -> bool:
        """Write what is queued and stop the writer."""
        return self.writer.close(timeout)


class LiveMaintenance:
    """The maintenance part: the store's windows, read at most once every ``ttl`` seconds.

    Every call that starts asks; maintenance changes a few times a day. So the windows (running and scheduled)
    are read once a second and :func:`~ivrkit.maintenance.model.in_force` picks from them for each call: a
    scheduled start or end applies to the second, a switch takes up to ``ttl`` to be heard. When the store
    cannot be read the last windows read stay in use and the failure is logged, never raised into a call.
    """

    def __init__(self, store: MaintenanceStore, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._windows: tuple[Window, ...] = ()
        self._read_at: float | None = None
        self._changes = 0  # refresh() calls; a read that began before one does not count as fresh
        self._read_changes = 0

    def maintenance(self, flow: str, now: dt.datetime) -> Maintenance | None:
        at = self.clock()
        if self._read_at is None or at - self._read_at >= self.ttl or self._read_changes != self._changes:
            changes = self._changes
            try:
                self._windows = tuple(self.store.windows(now))
            except StoreError as error:
                maintenance_log.warning("maintenance windows not read, using those read before: %s", error)
            self._read_at, self._read_changes = at, changes
        return in_force(self._windows, flow, now)

    def refresh(self) -> None:
        """Read the windows again for the next call: this process changed them (the circuit breaker tripped),
        and that call must meet the change, not the windows read up to ``ttl`` before. Any thread."""
        self._changes += 1


class LiveWorld:
    """The engine's :class:`~ivrkit.engine.world.World` on the live server: queues from :class:`LiveQueues`,
    texts through the durable outbox, callbacks in the store (``callbacks``; without it a request is refused and
    the caller told), maintenance from the store (``maintenance``; without it no flow is in maintenance)."""

    def __init__(self, queues: LiveQueues, texts: OutboxTexts, callbacks: LiveCallbacks | None = None,
                 maintenance: LiveMaintenance | None = None):
        self.queues = queues
        self.texts = texts
        self.callbacks = callbacks
        self.maintenance_windows = maintenance

    def queue(self, name: str, channel: Channel) -> QueueStats:
        return self.queues.queue(name, channel)

    def queue_joined(self, join: QueueJoin) -> None:
        self.queues.queue_joined(join)

    def queue_left(self, left: QueueExit) -> None:
        self.queues.queue_left(left)

    def send_text(self, request: TextRequest) -> SentText:
        return self.texts.send_text(request)

    def maintenance(self, flow: str, now: dt.datetime) -> Maintenance | None:
        return self.maintenance_windows.maintenance(flow, now) if self.maintenance_windows is not None else None

    def request_callback(self, request: CallbackRequest) -> PendingCallback:
        if self.callbacks is None:
            raise CallbackNotRegistered("this server keeps no callbacks")
        return self.callbacks.request_callback(request)

    def pending_callback(self, number: str, queue: str | None) -> PendingCallback | None:
        return self.callbacks.pending_callback(number, queue) if self.callbacks is not None else None

    def cancel_callback(self, callback_id: str, by: str) -> bool:
        return self.callbacks.cancel_callback(callback_id, by) if self.callbacks is not None else False

    # -- the answered callback leg (ivrkit.callbacks.answer.CallbackWorld) ----------------------------------

    def callback(self, callback_id: str) -> Callback | None:
        return self.callbacks.callback(callback_id) if self.callbacks is not None else None

    def callback_connected(self, callback_id: str, channel_id: str) -> bool:
        return self.callbacks is not None and self.callbacks.callback_connected(callback_id, channel_id)

    def callback_attempt_ended(self, callback_id: str, channel_id: str, result: Result) -> bool:
        return self.callbacks is not None and self.callbacks.callback_attempt_ended(callback_id, channel_id, result)
