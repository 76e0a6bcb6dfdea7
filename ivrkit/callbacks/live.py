"""The live world's callback part: what flows and the answered callback leg ask of the store.

:class:`LiveCallbacks` implements the callback methods of :class:`~ivrkit.engine.world.World` (the ``callback``
step and the queue step's ``callback_on_hangup``) and the world the answered leg needs
(:mod:`ivrkit.callbacks.answer`). It runs on the server's loop thread: each method is one short SQLite
transaction, committed before the caller hears "we will call you back" (a callback is never lost once
promised).

Failures: a request that cannot be stored raises :class:`~ivrkit.engine.world.CallbackNotRegistered`, so the
step tells the caller instead of promising; the reads and the answered leg's updates log the failure and
answer as if nothing were there (the dispatcher reconciles an attempt whose end was not recorded).
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from ivrkit.callbacks.model import Callback, NewCallback, Result
from ivrkit.callbacks.policy import next_attempt
from ivrkit.callbacks.settings import CallbackSettings
from ivrkit.engine.world import CallbackNotRegistered, CallbackRequest, PendingCallback
from ivrkit.steps.queue import callback_settings
from ivrkit.store.callbacks import CallbackFinished, CallbackNotFound, CallbackStore
from ivrkit.store.database import StoreError

if TYPE_CHECKING:
    from ivrkit.flow.model import Flow

log = logging.getLogger("ivrkit.callbacks")

_STORE_ERRORS = (StoreError, sqlite3.Error)
ANSWERED_LEG = "answered leg"  # the detail in the events of attempts the answered leg ended
CONFIRMED = "the customer confirmed"


class CallbackMetrics(Protocol):
    """What LiveCallbacks counts (``ivrkit.ops.metrics.ServerMetrics`` implements it)."""

    def callback_attempt(self, result: Result) -> None: ...


class LiveCallbacks:
    """Callbacks for live calls, on the store shared with the dispatcher and ``ivrkit callbacks``.

    ``flows`` gives the flows in service (the server's library): an attempt's retry follows the queue's
    ``callback:`` settings as they are now. ``on_change`` (the dispatcher's wake) is called after a new request
    and after an attempt ended here, so the dispatcher does not wait for its next poll.
    """

    def __init__(
        self,
        store: CallbackStore,
        flows: Callable[[], Mapping[str, Flow]],
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
        metrics: CallbackMetrics | None = None,
    ):
        self.store = store
        self.flows = flows
        self.clock = clock
        self.on_change = on_change
        self.metrics = metrics

    # -- World: the flow side -------------------------------------------------------------------------

    def request_callback(self, request: CallbackRequest) -> PendingCallback:
        """Store a callback (or find the number's active one for the queue: ``new=False``)."""
        new = NewCallback(
            number=request.number,
            queue=request.queue,
            flow=request.flow,
            origin=request.origin,
            joined_at=request.joined_at.timestamp(),
            requested_at=request.requested_at.timestamp(),
            uniqueid=request.uniqueid,
            reason=request.reason,
            language=request.language,
            priority=request.priority,
        )
        try:
            callback, created = self.store.request(new)
        except _STORE_ERRORS as error:
            log.error(
                "callback not registered: %s",
                error,
                extra={"uniqueid": request.uniqueid, "queue": request.queue, "origin": str(request.origin)},
            )
            raise CallbackNotRegistered(f"the callback store is not writable: {error}") from error
        extra = {"callback": callback.id, "uniqueid": request.uniqueid, "queue": callback.queue}
        if created:
            log.info("callback requested (%s)", request.origin, extra=extra)
            self._changed()
        else:
            log.info("callback already %s for this number and queue; kept", callback.state, extra=extra)
        return pending(callback, new=created)

    def pending_callback(self, number: str, queue: str | None) -> PendingCallback | None:
        """The number's active callback for ``queue`` (for any queue, the oldest, when None)."""
        try:
            callback = self.store.active_for(number, queue)
        except _STORE_ERRORS as error:
            log.warning("callbacks not read (treated as none): %s", error, extra={"queue": queue})
            return None
        return None if callback is None else pending(callback, new=False)

    def cancel_callback(self, callback_id: str, by: str) -> bool:
        """Cancel an active callback; False when it was no longer active (or the store failed: logged)."""
        try:
            self.store.cancel(callback_id, by=by)
        except (CallbackNotFound, CallbackFinished) as error:
            log.info("callback not cancelled: %s", error, extra={"callback": callback_id})
            return False
        except _STORE_ERRORS as error:
            log.error("callback not cancelled: %s", error, extra={"callback": callback_id})
            return False
        log.info("callback cancelled by %s", by, extra={"callback": callback_id})
        return True

    # -- the answered leg (ivrkit.callbacks.answer) ---------------------------------------------------

    def callback(self, callback_id: str) -> Callback | None:
        try:
            return self.store.get(callback_id)
        except _STORE_ERRORS as error:
            log.error("callback not read: %s", error, extra={"callback": callback_id})
            return None

    def callback_connected(self, callback_id: str, channel_id: str) -> bool:
        """The customer confirmed: dialing → connected, for the attempt on ``channel_id`` only."""
        try:
            connected = self.store.connected(callback_id, channel_id, CONFIRMED)
        except _STORE_ERRORS as error:
            log.error("callback not marked connected: %s", error, extra={"callback": callback_id})
            return False
        if connected is None:
            log.info(
                "callback not marked connected: the attempt on %s is not in flight (cancelled or ended)",
                channel_id,
                extra={"callback": callback_id},
            )
        return connected is not None

    def callback_attempt_ended(self, callback_id: str, channel_id: str, result: Result) -> bool:
        """End the attempt on ``channel_id`` with ``result``: retried per the queue's settings, or failed when
        its attempts are used up (completed when ANSWERED). False when that attempt was not in flight."""
        try:
            callback = self.store.get(callback_id)
            if callback is None:
                log.warning("callback attempt not ended: no callback %s", callback_id)
                return False
            retry_at = next_attempt(callback, result, self.settings(callback), self.clock())
            ended = self.store.finish_attempt(callback_id, channel_id, result, retry_at=retry_at, reason=ANSWERED_LEG)
        except _STORE_ERRORS as error:
            log.error("callback attempt not ended (%s): %s", result, error, extra={"callback": callback_id})
            return False
        if ended is None:
            log.info(
                "callback attempt not ended (%s): the attempt on %s is not in flight",
                result,
                channel_id,
                extra={"callback": callback_id},
            )
            return False
        log.info("callback attempt ended: %s; now %s", result, ended.state, extra={"callback": callback_id})
        if self.metrics is not None:
            self.metrics.callback_attempt(result)
        self._changed()
        return True

    def settings(self, callback: Callback) -> CallbackSettings:
        """The callback queue's settings in its flow as loaded now (the defaults when the flow declares none,
        as the dispatcher and the answered leg read them); the defaults, logged, when the flow is gone."""
        flow = self.flows().get(callback.flow)
        if flow is None:
            log.warning(
                "flow %s of the callback is not in service; its attempts follow the default callback settings",
                callback.flow,
                extra={"callback": callback.id},
            )
            return CallbackSettings()
        return callback_settings(flow, callback.queue)

    def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change()
        except Exception:  # the change is stored; the dispatcher finds it at its next poll
            log.exception("could not wake the callback dispatcher")


def pending(callback: Callback, *, new: bool) -> PendingCallback:
    """The flow's view of a stored callback."""
    return PendingCallback(
        id=callback.id,
        number=callback.number,
        queue=callback.queue,
        state=callback.state.value,
        requested_at=dt.datetime.fromtimestamp(callback.requested_at, dt.UTC),
        new=new,
    )
