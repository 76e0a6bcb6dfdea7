"""Writes that must not hold up a call: queued, and committed by a thread of their own in batches.

The estimate log is bookkeeping written on every queued call. Committed on the server's loop thread, each
insert costs a transaction and, now and then, the WAL checkpoint's disk wait, during which no call is served.
Handed to a :class:`BackgroundWriter`, a call pays for appending to a queue; the writer commits whatever has
gathered in one transaction, a few times a second. A batch that fails is retried one write at a time, so
one bad write loses only itself; every failure is logged, never raised into a call. Writes that must be
durable before the caller hears about them (the outbox, callbacks) do not go through here.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable

from ivrkit.store.database import Database, StoreError

log = logging.getLogger("ivrkit.store")

Write = Callable[[sqlite3.Connection], object]  # its result is ignored
MAX_BATCH = 500  # writes per transaction
INTERVAL = 0.2  # seconds between commits while writes trickle in


class BackgroundWriter:
    """A thread that commits queued writes every ``interval`` seconds (sooner when ``MAX_BATCH`` gather).

    Submitting appends to a deque and wakes nobody: a call pays no lock and no thread switch for it.
    """

    def __init__(self, database: Database, name: str = "store-writer", interval: float = INTERVAL):
        self.database = database
        self.name = name
        self.interval = interval
        self._writes: deque[tuple[Write, str]] = deque()
        self._submitted = itertools.count(1)
        self._last_submitted = 0
        self._done = 0  # writes committed or failed so far
        self._wake = threading.Condition()
        self._hurry = False  # a flush or close is waiting
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, write: Write, failure: str) -> None:
        """Queue a write; ``failure`` is what the log says if it fails ("estimate for queue q not logged")."""
        if self._closed:
            raise StoreError(f"{self.name} is closed: the write was not queued")
        self._writes.append((write, failure))
        self._last_submitted = next(self._submitted)
        if self._thread is None:
            with self._wake:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()
        elif len(self._writes) >= MAX_BATCH:
            with self._wake:
                self._wake.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write queued so far is committed (or failed and logged); False on timeout."""
        target = self._last_submitted
        with self._wake:
            self._hurry = True
            self._wake.notify_all()
            return self._wake.wait_for(lambda: self._done >= target or self._thread is None, timeout)

    def close(self, timeout: float | None = 5.0) -> bool:
        """Commit what is queued, then stop the thread; False when it did not finish in ``timeout``."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    if not (self._hurry or self._closed or len(self._writes) >= MAX_BATCH):
                        self._wake.wait(self.interval)
                    self._hurry = False
                    closed = self._closed
                while self._writes:
                    batch = [self._writes.popleft() for _ in range(min(MAX_BATCH, len(self._writes)))]
                    self._commit(batch)
                    with self._wake:
                        self._done += len(batch)
                        self._wake.notify_all()
                if closed:
                    return
        finally:
            self.database.release()  # this thread's connection

    def _commit(self, batch: list[tuple[Write, str]]) -> None:
        try:
            with self.database.transaction() as conn:
                for write, _ in batch:
                    write(conn)
            return
        except (StoreError, sqlite3.Error) as error:
            if len(batch) == 1:
                log.warning("%s: %s", batch[0][1], error)
                return
            log.info("%s: a batch of %d writes failed (%s); retrying them one by one", self.name, len(batch), error)
        for item in batch:
            self._commit([item])
