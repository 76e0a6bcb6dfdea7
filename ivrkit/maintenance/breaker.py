"""The circuit breaker: emergency mode for a flow whose calls or errors cross the thresholds it declares.

A flow with ``maintenance.breaker`` settings is watched call by call. Two figures are kept over a sliding
minute (the last 60 seconds):

- **calls**: new calls of the flow (sessions that start it; not the sessions that resume a call after a queue
  or transfer, run its hang-up handler or answer a callback) that started in the minute, *including* calls
  that met maintenance, so a surge keeps counting while callers hear the emergency announcement;
- **errors**: of those new calls whose session ended in the minute, the ones that ended in error: the flow's
  outcome ``error``, a crash, an AGI protocol error, or a PBX that stopped answering (a caller hanging up is
  no error).

It **trips** when more calls than ``max_calls_per_minute`` started in the minute, or when at least
``min_calls`` calls ended in it and more than ``max_error_rate`` of them in error. Tripping switches emergency
mode on for the flow in the store, ``by`` "system" from ``breaker`` with the figures as the reason: the audit
trail records ``tripped``. It does not trip while the flow is already in maintenance (any mode, the flow's or
a global one, switched on or declared in YAML): its callers hear that already; nor again while its own window
is on.

**Quiet** is measured by the same calls: each call that starts or ends looks at its minute, and the quiet
period runs from the last call that found a threshold crossed. With ``clear: auto`` the breaker switches its
window off (``cleared`` in the audit trail) once ``quiet`` has passed that way; a surge that goes on keeps it
on. After an error trip the emergency calls end without errors, so ``quiet`` acts as a cool-down, after which
calls reach the flow again and a fault that persists trips it again. With ``clear: operator`` the window stays
until someone switches it off (``ivrkit maintenance off --flow FLOW``). Either way the breaker then watches
again from a fresh minute: the calls counted while its window was on are forgotten, so a switch-off is not
undone at once by the surge it answered, and a surge that goes on trips it again when a fresh minute crosses
a threshold.

The session path (:meth:`CircuitBreaker.call_started`, :meth:`CircuitBreaker.call_ended`) only counts: a dict
lookup, a lock, a deque append and the expired entries popped; it never reads the store. Store writes, the
settings of reloaded flows and the clearing run on the breaker's own thread, woken by a crossing and once a
second otherwise. Windows a breaker opened before a restart are taken over at start (their quiet period
starts then).
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ivrkit.flow.maintenance import Breaker
from ivrkit.maintenance.model import Maintenance, Mode, Source, in_force
from ivrkit.store.database import StoreError
from ivrkit.store.maintenance import SYSTEM, MaintenanceStore, WindowNotFound

if TYPE_CHECKING:
    from ivrkit.flow.model import Flow
    from ivrkit.ops.metrics import ServerMetrics

log = logging.getLogger("ivrkit.breaker")

MINUTE = 60.0  # the sliding window the figures are kept over, in seconds
INTERVAL = 1.0  # seconds between the breaker's rounds when nothing wakes it

WATCHING, REQUESTED, TRIPPED = "watching", "requested", "tripped"


class _Minute:
    """One flow's last minute of new calls, fed from the session path; the breaker's thread reads it."""

    __slots__ = ("crossed_at", "ends", "errors", "figures", "held_by", "hold_until", "lock", "settings", "starts",
                 "state", "window_id")  # fmt: skip

    def __init__(self, settings: Breaker):
        self.settings = settings
        self.lock = threading.Lock()
        self.starts: deque[float] = deque()  # start times of the minute's new calls
        self.ends: deque[float] = deque()  # end times of the minute's new calls
        self.errors: deque[float] = deque()  # end times of those that ended in error
        self.state = WATCHING
        self.window_id = ""  # the emergency window this breaker opened (TRIPPED)
        self.crossed_at = float("-inf")  # the last call that found a threshold crossed
        self.figures = ""  # what it found, for the audit trail
        self.hold_until = float("-inf")  # no trip request before this (the flow was in maintenance)
        self.held_by = ""  # the maintenance that held the last trip back (logged once)

    def started(self, now: float) -> bool:
        """Count a new call; True when the breaker's thread should trip now."""
        limit = self.settings.max_calls_per_minute
        if limit is None:
            return False
        with self.lock:
            starts = self.starts
            starts.append(now)
            cutoff = now - MINUTE
            while starts[0] <= cutoff:
                starts.popleft()
            if len(starts) <= limit:
                return False
            return self._crossed(now, lambda: f"{len(starts)} calls started in the last minute, over the limit "
                                              f"of {limit} a minute")  # fmt: skip

    def ended(self, now: float, failed: bool) -> bool:
        """Count a new call's end; True when the breaker's thread should trip now."""
        settings = self.settings
        rate = settings.max_error_rate
        if rate is None:
            return False
        with self.lock:
            ends, errors = self.ends, self.errors
            ends.append(now)
            if failed:
                errors.append(now)
            cutoff = now - MINUTE
            while ends[0] <= cutoff:
                ends.popleft()
            while errors and errors[0] <= cutoff:
                errors.popleft()
            calls, count = len(ends), len(errors)
            if calls < settings.min_calls or count / calls <= rate:  # a division: 57 of 100 is not over 57%
                return False
            return self._crossed(now, lambda: f"{count} of the last minute's {calls} calls ended in error "
                                              f"({_percent(count / calls)}), over the limit of {_percent(rate)}")

    def _crossed(self, now: float, figures: Callable[[], str]) -> bool:
        """A threshold is crossed (the lock is held): the quiet period starts again; ask for a trip when
        watching (the figures are written out only then)."""
        self.crossed_at = now
        if self.state != WATCHING or now < self.hold_until:
            return False
        self.state = REQUESTED
        self.figures = figures()
        return True


class CircuitBreaker:
    """Watches the new calls of every flow of ``flows()`` that has ``maintenance.breaker`` settings, and switches
    emergency mode on and off for it in ``store``.

    ``clock`` is monotonic seconds (tests pass a fake one; the store has its own wall clock). ``on_change`` is
    called after each switch this breaker makes (the server reads the windows again at once). Call
    :meth:`start` before the first call and :meth:`stop` before the store closes; tests may call
    :meth:`check` themselves instead of starting the thread.
    """

    def __init__(
        self,
        store: MaintenanceStore,
        flows: Callable[[], Mapping[str, Flow]],
        *,
        metrics: ServerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = INTERVAL,
        on_change: Callable[[], None] | None = None,
    ):
        self.store = store
        self.flows = flows
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.on_change = on_change
        self._minutes: dict[str, _Minute] = {}  # replaced whole by the breaker's thread, read by sessions
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._rounds = threading.Condition()
        self._round = 0

    # -- the session path -------------------------------------------------------------------------------------

    def call_started(self, flow: str) -> None:
        """A new call of ``flow`` started (a session in mode start)."""
        minute = self._minutes.get(flow)
        if minute is not None and minute.started(self.clock()):
            self._wake.set()

    def call_ended(self, flow: str, failed: bool) -> None:
        """The session of a new call of ``flow`` ended; ``failed``: in error (outcome error, crash, protocol)."""
        minute = self._minutes.get(flow)
        if minute is not None and minute.ended(self.clock(), failed):
            self._wake.set()

    # -- reading ----------------------------------------------------------------------------------------------

    def watched(self) -> dict[str, str]:
        """The flows watched and the breaker's state for each: watching, requested or tripped."""
        return {name: minute.state for name, minute in sorted(self._minutes.items())}

    # -- the breaker's thread ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Take the flows' settings and any window a breaker opened before a restart, then run the thread."""
        self.check()
        self._thread = threading.Thread(target=self._run, name="breaker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; False when a round was still running after ``timeout`` seconds."""
        self._stopped.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_rounds(self, count: int, timeout: float) -> bool:
        """Wait until the thread has finished ``count`` more rounds (tests: a state the breaker has seen)."""
        with self._rounds:
            target = self._round + count
            return self._rounds.wait_for(lambda: self._round >= target, timeout)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self.check()
            except Exception:  # the breaker must never stop watching; the next round tries again
                log.exception("circuit breaker round failed; trying again in %gs", self.interval)
            with self._rounds:
                self._round += 1
                self._rounds.notify_all()

    def check(self) -> None:
        """One round: follow the flows' settings, trip what crossed a threshold, notice windows switched off
        elsewhere, and clear (``clear: auto``) windows whose flow has been quiet for ``quiet``."""
        flows = self.flows()
        self._follow(flows)
        minutes = self._minutes
        for name, minute in minutes.items():
            if minute.state == REQUESTED:
                self._trip(flows[name], minute)
        tripped = {name: minute for name, minute in minutes.items() if minute.state == TRIPPED}
        if not tripped:
            return
        try:
            running = {window.id for window in self.store.windows(include_future=False)}
        except (StoreError, sqlite3.Error) as error:
            log.warning("circuit breaker: maintenance windows not read, trying again: %s", error)
            return
        now = self.clock()
        for name, minute in tripped.items():
            if minute.window_id not in running:
                window_id = minute.window_id
                self._watch_again(name, minute)
                log.info("circuit breaker for flow %s watches again: its emergency window %s was switched off",
                         name, window_id, extra={"flow": name, "window": window_id})
            elif minute.settings.clear == "auto" and now - minute.crossed_at >= minute.settings.quiet:
                self._clear(name, minute)

    def _follow(self, flows: Mapping[str, Flow]) -> None:
        """Watch the flows that declare a breaker now (after a reload too); keep each flow's figures."""
        wanted = {
            name: flow.maintenance.breaker
            for name, flow in flows.items()
            if flow.maintenance is not None and flow.maintenance.breaker is not None
        }
        current = self._minutes
        if wanted.keys() == current.keys() and all(current[name].settings == wanted[name] for name in wanted):
            return
        minutes: dict[str, _Minute] = {}
        added: list[str] = []
        for name, settings in wanted.items():
            minute = current.get(name)
            if minute is None:
                minute = _Minute(settings)
                added.append(name)
            else:
                minute.settings = settings
            minutes[name] = minute
        for name in current.keys() - wanted.keys():
            if current[name].state == TRIPPED:
                log.warning("flow %s no longer declares a circuit breaker; its emergency window %s stays on until "
                            "`ivrkit maintenance off --flow %s`", name, current[name].window_id, name,
                            extra={"flow": name})  # fmt: skip
            if self.metrics is not None:
                self.metrics.breaker_state(name, False)
        if added:
            self._take_over(added, minutes)
        for name in added:
            if self.metrics is not None:
                self.metrics.breaker_state(name, minutes[name].state == TRIPPED)
            log.info("circuit breaker watches flow %s", name, extra={"flow": name, "state": minutes[name].state})
        self._minutes = minutes

    def _take_over(self, names: list[str], minutes: dict[str, _Minute]) -> None:
        """A breaker window of a newly watched flow that is still on (opened before a restart) is this
        breaker's: it is cleared as its own would be, its quiet period counted from now."""
        try:
            running = self.store.windows(include_future=False)
        except (StoreError, sqlite3.Error) as error:
            log.warning("circuit breaker: windows from before not read: %s", error)
            return
        for window in running:
            minute = minutes.get(window.scope)
            if window.scope in names and minute is not None and window.source is Source.BREAKER:
                minute.state, minute.window_id, minute.crossed_at = TRIPPED, window.id, self.clock()
                log.info("flow %s: the circuit breaker's emergency window %s is still on", window.scope, window.id,
                         extra={"flow": window.scope, "window": window.id})  # fmt: skip

    def _trip(self, flow: Flow, minute: _Minute) -> None:
        name = flow.name
        try:
            found = self._in_maintenance(flow, self.store.now())
            if found is not None:
                held_by = f"{found.mode.value} {found.scope} {found.since}"
                if held_by != minute.held_by:  # once per window that holds it back, not once a round
                    log.info("circuit breaker for flow %s not tripped (%s): the flow is in %s maintenance already",
                             name, minute.figures, found.mode.value, extra={"flow": name, "mode": found.mode.value})
                minute.held_by = held_by
                self._hold(minute)
                return
            window = self.store.switch_on(name, Mode.EMERGENCY, by=SYSTEM, source=Source.BREAKER,
                                          reason=minute.figures)  # fmt: skip
        except (StoreError, sqlite3.Error, ValueError) as error:  # still requested: the next round tries again
            log.error("circuit breaker for flow %s did not switch emergency mode on (%s): %s; trying again in %gs",
                      name, minute.figures, error, self.interval, extra={"flow": name})  # fmt: skip
            return
        with minute.lock:
            minute.state, minute.window_id, minute.held_by = TRIPPED, window.id, ""
        if self.metrics is not None:
            self.metrics.breaker_tripped(name)
            self.metrics.breaker_state(name, True)
        self._changed()
        log.warning("circuit breaker tripped: emergency mode for flow %s (%s)", name, minute.figures,
                    extra={"flow": name, "window": window.id, "clear": minute.settings.clear})  # fmt: skip

    def _in_maintenance(self, flow: Flow, now: dt.datetime) -> Maintenance | None:
        """Maintenance in force for the flow now, from the store (its own or global) or its YAML windows."""
        found = self.store.in_force(flow.name, now)
        if found is None and flow.maintenance is not None:
            found = in_force(flow.maintenance.windows, flow.name, now)
        return found

    def _hold(self, minute: _Minute) -> None:
        """Back to watching, with no new trip request for a round."""
        with minute.lock:
            minute.state, minute.hold_until = WATCHING, self.clock() + self.interval

    def _clear(self, name: str, minute: _Minute) -> None:
        reason = f"no threshold crossed for {_duration(minute.settings.quiet)}"
        try:
            self.store.cancel(minute.window_id, by=SYSTEM, source=Source.BREAKER, reason=reason)
        except WindowNotFound:
            pass  # switched off in the meantime: watching again all the same
        except (StoreError, sqlite3.Error) as error:
            log.warning("circuit breaker for flow %s did not switch emergency mode off: %s; trying again", name,
                        error, extra={"flow": name})  # fmt: skip
            return
        window_id = minute.window_id
        self._watch_again(name, minute)
        log.info("circuit breaker cleared: emergency mode off for flow %s (%s)", name, reason,
                 extra={"flow": name, "window": window_id})  # fmt: skip

    def _watch_again(self, name: str, minute: _Minute) -> None:
        """Its window is off: watch from a fresh minute (the calls counted while it was on are forgotten, so an
        operator's switch-off is not undone by the surge it answered), and the next call meets no emergency."""
        with minute.lock:
            minute.state, minute.window_id = WATCHING, ""
            minute.starts.clear()
            minute.ends.clear()
            minute.errors.clear()
        if self.metrics is not None:
            self.metrics.breaker_state(name, False)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("circuit breaker: the change hook failed")


def _percent(share: float) -> str:
    """A share as the audit trail shows it: whole percent, or one decimal when that is needed.

    >>> _percent(0.6), _percent(58 / 101), _percent(0.125)
    ('60%', '57.4%', '12.5%')
    """
    tenths = round(share * 1000)
    return f"{tenths // 10}%" if tenths % 10 == 0 else f"{tenths / 10:.1f}%"


def _duration(seconds: float) -> str:
    """A quiet period as the flow file writes it, for the audit trail.

    >>> _duration(600), _duration(90), _duration(3600), _duration(3660.4)
    ('10m', '1m30s', '1h', '1h1m')
    """
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"
