"""The outbox worker: a thread that sends due messages, retries temporary failures with back-off, and gives up
after the last attempt. Calls never wait for it.

Each message is claimed under a lease before it is sent (``ivrkit/store/outbox.py``), so a process killed
mid-send leaves the message to be claimed again once the lease runs out, by this process after a restart or
by another sharing the store. Back-off is exponential with jitter and a cap (``first_delay · 2^(n-1)``, at
most ``max_delay``, minus up to ``jitter`` of it at random, so a gateway that comes back is not hit by every
waiting message in the same second). A gateway's ``Retry-After`` is honoured up to the cap.

The worker wakes when told a message was queued (:meth:`OutboxWorker.wake`), when the next message falls due,
and at least every ``poll`` seconds (another process may have queued one).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ivrkit.sms.gateway import Gateway, PermanentError, TemporaryError
from ivrkit.sms.message import Message
from ivrkit.store.outbox import PENDING, SENDING, Outbox, OutboxEntry

log = logging.getLogger("ivrkit.sms")

SENT, RETRY, FAILED, LOST = "sent", "retry", "failed", "lost"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast a message is retried. ``lease``: how long one attempt may take before another
    process may take the message over (longer than the gateway's timeout)."""

    max_attempts: int = 8
    first_delay: float = 30.0
    max_delay: float = 3600.0
    jitter: float = 0.5
    lease: float = 120.0

    def delay(self, attempt: int, chance: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); ``chance`` in [0, 1)."""
        capped = min(self.max_delay, self.first_delay * 2 ** min(attempt - 1, 60))
        return capped * (1 - self.jitter * chance)


@dataclass(frozen=True)
class Delivery:
    """What one attempt came to: sent, retry (``due_at`` set), failed, or lost (the lease ran out mid-send)."""

    entry: OutboxEntry
    outcome: str
    provider_id: str | None = None
    error: str | None = None
    due_at: float | None = None


class OutboxMetrics(Protocol):
    """What the worker counts (``ivrkit.ops.metrics.ServerMetrics`` implements it)."""

    def sms_sent(self) -> None: ...

    def sms_retried(self) -> None: ...

    def sms_failed(self) -> None: ...

    def outbox_pending(self, count: int) -> None: ...


class OutboxWorker:
    """Sends the outbox's due messages through ``gateway``, one at a time, in a background thread."""

    def __init__(
        self,
        outbox: Outbox,
        gateway: Gateway,
        policy: RetryPolicy | None = None,
        *,
        metrics: OutboxMetrics | None = None,
        poll: float = 2.0,
        clock: Callable[[], float] = time.time,
        chance: Callable[[], float] = random.random,
    ):
        self.outbox = outbox
        self.gateway = gateway
        self.policy = policy or RetryPolicy()
        self.metrics = metrics
        self.poll = poll
        self.listeners: list[Callable[[Delivery], None]] = []  # told of every attempt (tests, later: events)
        self._clock = clock
        self._chance = chance
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifetime -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the outbox worker is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="ivrkit-outbox", daemon=True)
        self._thread.start()
        log.info("outbox worker started: texts go to %s", self.gateway.describe(), extra={"gateway": self.gateway.kind})

    def wake(self) -> None:
        """A message was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the message being sent (if any); unsent messages stay in the outbox for the next start.
        False when the thread did not end within ``timeout``."""
        thread = self._thread
        if thread is None:
            return True
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("outbox worker still sending after %.0f s; leaving it (its message is retried later)",
                        timeout or 0)
            return False
        self._thread = None
        log.info("outbox worker stopped")
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.send_due()
                wait = self._idle_seconds()
            except Exception:  # the store failing (disk full, file gone) must not end the worker: try again
                log.exception("outbox worker: the store failed; trying again in %.0f s", self.poll)
                wait = self.poll
            self._wake.wait(wait)

    def _idle_seconds(self) -> float:
        counts = self.outbox.counts()
        if self.metrics is not None:
            self.metrics.outbox_pending(counts[PENDING] + counts[SENDING])
        due = self.outbox.next_due()
        return self.poll if due is None else min(self.poll, max(0.0, due - self._clock()))

    # -- sending --------------------------------------------------------------------------------------

    def send_due(self) -> list[Delivery]:
        """Send every message due now, one at a time, until none is left or the worker is stopping."""
        done = []
        while not self._stopping.is_set():
            claimed = self.outbox.claim(self.policy.lease, now=self._clock())
            if not claimed:
                break
            done.append(self.deliver(claimed[0]))
        return done

    def deliver(self, entry: OutboxEntry) -> Delivery:
        """One attempt at a claimed message, settled in the outbox and reported."""
        context = {"outbox_id": entry.id, "key": entry.key, "attempt": entry.attempts}
        try:
            provider_id = self.gateway.send(Message.from_entry(entry))
        except PermanentError as error:
            delivery = self._fail(entry, str(error))
        except Exception as error:  # TemporaryError, or a provider class's bug: retry, bounded by max_attempts
            if not isinstance(error, TemporaryError):
                log.exception("gateway %s raised an unexpected error; treating it as temporary", self.gateway.kind,
                              extra=context)
            delivery = self._retry(entry, error)
        else:
            settled = self.outbox.mark_sent(entry, provider_id, now=self._clock())
            delivery = Delivery(entry, SENT if settled else LOST, provider_id=provider_id)
            if settled and self.metrics is not None:
                self.metrics.sms_sent()
        self._report(delivery, context)
        return delivery

    def _retry(self, entry: OutboxEntry, error: Exception) -> Delivery:
        text = str(error) or type(error).__name__
        if entry.attempts >= self.policy.max_attempts:
            return self._fail(entry, f"gave up after {entry.attempts} attempts: {text}")
        delay = self.policy.delay(entry.attempts, self._chance())
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = min(self.policy.max_delay, max(delay, retry_after))
        due_at = self._clock() + delay
        if not self.outbox.retry_at(entry, due_at, text, now=self._clock()):
            return Delivery(entry, LOST, error=text)
        if self.metrics is not None:
            self.metrics.sms_retried()
        return Delivery(entry, RETRY, error=text, due_at=due_at)

    def _fail(self, entry: OutboxEntry, error: str) -> Delivery:
        if not self.outbox.mark_failed(entry, error, now=self._clock()):
            return Delivery(entry, LOST, error=error)
        if self.metrics is not None:
            self.metrics.sms_failed()
        return Delivery(entry, FAILED, error=error)

    def _report(self, delivery: Delivery, context: dict[str, object]) -> None:
        if delivery.outcome == SENT:
            log.info("text sent", extra={**context, "provider_id": delivery.provider_id})
        elif delivery.outcome == RETRY:
            wait = round((delivery.due_at or 0) - self._clock(), 1)
            log.warning("text not sent, retrying in %.0f s: %s", wait, delivery.error,
                        extra={**context, "retry_in": wait})
        elif delivery.outcome == FAILED:
            log.error("text failed for good: %s", delivery.error, extra=context)
        else:
            log.warning("text: the lease ran out while sending and another process took the message over; "
                        "make the retry lease longer than the gateway timeout", extra=context)
        for listener in self.listeners:
            listener(delivery)
