"""Server metrics in Prometheus form, cheap enough to record on every AGI command.

Each `ServerMetrics` owns a private registry, so several servers (or tests) in one process never share
counters. Label values come from flow names, outcomes, error kinds and AGI verbs: bounded sets in practice,
but some of them arrive from the network, so each metric caps its series and folds the rest into "other"
(unknown AGI verbs into "OTHER").
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ivrkit.callbacks.model import Result, State

if TYPE_CHECKING:
    from ivrkit.store.callbacks import CallbackSummary

log = logging.getLogger("ivrkit.metrics")

# Round trips of AGI commands: a GET VARIABLE takes well under a millisecond, a STREAM FILE or GET DATA lasts as
# long as the prompt, a WAIT FOR DIGIT or EXEC (Dial, Queue) can take minutes.
COMMAND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# A session lasts from the greeting to the hand-off or hang-up: seconds to tens of minutes.
SESSION_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)

# AGI commands as Asterisk documents them; anything else is counted as "OTHER".
AGI_COMMANDS = frozenset(
    {
        "ANSWER", "ASYNCAGI BREAK", "CHANNEL STATUS", "CONTROL STREAM FILE", "DATABASE DEL", "DATABASE DELTREE",
        "DATABASE GET", "DATABASE PUT", "EXEC", "GET DATA", "GET FULL VARIABLE", "GET OPTION", "GET VARIABLE",
        "GOSUB", "HANGUP", "NOOP", "RECEIVE CHAR", "RECEIVE TEXT", "RECORD FILE", "SAY ALPHA", "SAY DATE",
        "SAY DATETIME", "SAY DIGITS", "SAY NUMBER", "SAY PHONETIC", "SAY TIME", "SEND IMAGE", "SEND TEXT",
        "SET AUTOHANGUP", "SET CALLERID", "SET CONTEXT", "SET EXTENSION", "SET MUSIC", "SET PRIORITY",
        "SET VARIABLE", "SPEECH ACTIVATE GRAMMAR", "SPEECH CREATE", "SPEECH DEACTIVATE GRAMMAR", "SPEECH DESTROY",
        "SPEECH LOAD GRAMMAR", "SPEECH RECOGNIZE", "SPEECH SET", "SPEECH UNLOAD GRAMMAR", "STREAM FILE",
        "TDD MODE", "VERBOSE", "WAIT FOR DIGIT",
    }
)  # fmt: skip
OTHER_COMMAND = "OTHER"
# Error kinds the server reports; they are exported at 0 from the start so alerts see the first one.
ERROR_KINDS = (
    "protocol", "timeout", "environment", "refused-capacity", "refused-address", "prompt-missing", "flow-not-found",
    "accept", "reload", "crash",
)  # fmt: skip

# Announced waits against actual ones (answered calls): seconds either way, their size, and actual / estimate.
WAIT_ERROR_BUCKETS = (-1800, -900, -600, -300, -180, -120, -60, -30, 0, 30, 60, 120, 180, 300, 600, 900, 1800)
WAIT_ABS_ERROR_BUCKETS = (30, 60, 120, 180, 300, 600, 900, 1800)
WAIT_RATIO_BUCKETS = (0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2, 3, 5)
WAIT_SAID = ("number", "safe", "none")  # a figure, the safe phrase, nothing (the caller was next)

# Callbacks: the gauges are read from the store when Prometheus scrapes (every process sharing the data directory
# sees the same figures); attempts are counted by the process that saw them end.
CALLBACKS_HELP = "Callbacks in the store, by state (pending, dialing, connected, completed, failed, cancelled)."
OLDEST_PENDING_HELP = "Seconds the oldest pending callback has been waiting since it was requested (0: none pending)."

MAX_SERIES = 500  # per labelled metric; beyond this, new label sets are counted under "other"
MAX_LABEL_LENGTH = 100
OVERFLOW = "other"
_MAX_COMMAND_ALIASES = 1024  # raw command names remembered for the fast path


def command_verb(name: str) -> str:
    """The AGI verb a command name stands for: "stream  file" and "STREAM FILE intro 0" both give "STREAM FILE"."""
    words = name.upper().split()
    for size in (3, 2, 1):
        verb = " ".join(words[:size])
        if len(words) >= size and verb in AGI_COMMANDS:
            return verb
    return OTHER_COMMAND


class _Children:
    """The label children of one metric, cached (`.labels()` is slow) and capped at `MAX_SERIES`."""

    __slots__ = ("_cache", "_metric", "_overflow")

    def __init__(self, metric: Any, arity: int) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}
        self._overflow = (OVERFLOW,) * arity

    def get(self, labels: tuple[str, ...]) -> Any:
        child = self._cache.get(labels)
        if child is None:
            child = self._add(labels)
        return child

    def _add(self, labels: tuple[str, ...]) -> Any:
        if len(self._cache) >= MAX_SERIES:
            key = self._overflow
            child = self._cache.get(key)
            if child is None:  # the overflow series itself may be one over the cap
                child = self._cache[key] = self._metric.labels(*key)
            return child
        child = self._cache[labels] = self._metric.labels(*(value[:MAX_LABEL_LENGTH] for value in labels))
        return child


class _Timings(Collector):
    """A histogram with at most one label, recorded with one lock and a bisect: on every AGI command,
    prometheus_client's Histogram (a lock per bucket it touches, a Python loop over the buckets) cost as much
    as parsing the reply. Exported at scrape time in the same form. Label values must be a bounded set (AGI
    verbs); without a label, observe with the value ""."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], label: str | None = None) -> None:
        self.name = name
        self.documentation = documentation
        self._labels = [label] if label else []
        self._bounds = tuple(float(bound) for bound in buckets)
        self._les = [floatToGoString(bound) for bound in (*self._bounds, math.inf)]
        self._series: dict[str, list[float]] = {}  # label → count per bucket (the last: +Inf), then the sum
        self._lock = threading.Lock()
        if not label:  # exported at 0 from the start, as prometheus_client's unlabelled histograms are
            self._series[""] = [0] * (len(self._bounds) + 1) + [0.0]

    def observe(self, label: str, seconds: float) -> None:
        index = bisect.bisect_left(self._bounds, seconds)  # the first bucket whose bound is >= seconds
        with self._lock:
            series = self._series.get(label)
            if series is None:
                series = self._series[label] = [0] * (len(self._bounds) + 1) + [0.0]
            series[index] += 1
            series[-1] += seconds

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self._labels)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            snapshot = {label: list(series) for label, series in self._series.items()}
        family = HistogramMetricFamily(self.name, self.documentation, labels=self._labels)
        for label, series in sorted(snapshot.items()):
            cumulative = itertools.accumulate(series[:-1])
            family.add_metric([label][: len(self._labels)], list(zip(self._les, cumulative, strict=True)), series[-1])
        yield family


class _CallbackGauges(Collector):
    """``ivrkit_callbacks{state}`` and ``ivrkit_callback_oldest_pending_seconds`` from a source read at scrape time.

    Without a source (a process that keeps no callbacks) neither is exported; when the source fails, the
    failure is logged and both are left out of that scrape, so an alert on their absence fires rather than
    one on stale figures staying quiet."""

    def __init__(self) -> None:
        self.source: Callable[[], CallbackSummary] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("ivrkit_callbacks", CALLBACKS_HELP, labels=["state"])
        yield GaugeMetricFamily("ivrkit_callback_oldest_pending_seconds", OLDEST_PENDING_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        source = self.source
        if source is None:
            return
        try:
            summary = source()
        except Exception as error:  # a scrape must answer with the other metrics whatever the store does
            log.warning("callback metrics not read from the store: %s", error)
            return
        states = GaugeMetricFamily("ivrkit_callbacks", CALLBACKS_HELP, labels=["state"])
        for state in State:
            states.add_metric([state.value], summary.counts.get(state, 0))
        yield states
        oldest = summary.oldest_pending_seconds
        yield GaugeMetricFamily(
            "ivrkit_callback_oldest_pending_seconds", OLDEST_PENDING_HELP, value=max(0.0, oldest or 0.0)
        )


class ServerMetrics:
    """What the FastAGI server counts and times; `render()` gives the Prometheus text for `/metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._active = Gauge("ivrkit_sessions_active", "Sessions (AGI connections) running now.", registry=r)
        sessions = Counter("ivrkit_sessions", "Sessions started, by flow.", ["flow"], registry=r)
        outcomes = Counter(
            "ivrkit_session_outcomes", "Sessions ended, by flow and outcome.", ["flow", "outcome"], registry=r
        )
        self._duration = _Timings("ivrkit_session_duration_seconds", "Session length.", SESSION_BUCKETS)
        r.register(self._duration)
        self._command_seconds = _Timings(
            "ivrkit_agi_command_seconds",
            "AGI command round trips (prompts included), by verb.",
            COMMAND_BUCKETS,
            label="command",
        )
        r.register(self._command_seconds)
        errors = Counter("ivrkit_errors", "Errors and refused connections, by kind.", ["kind"], registry=r)
        self._flows = Gauge("ivrkit_flows_loaded", "Flows in service.", registry=r)
        self._reload_ok = Gauge("ivrkit_flow_reload_ok", "1 if the last flow (re)load succeeded, else 0.", registry=r)
        reloads = Counter("ivrkit_flow_reloads", "Flow (re)loads, by result.", ["result"], registry=r)
        pending_help = "Text messages waiting in the outbox (queued, being sent, to retry)."
        self._outbox_pending = Gauge("ivrkit_sms_outbox_pending", pending_help, registry=r)
        self._sms_sent = Counter("ivrkit_sms_sent", "Text messages the gateway accepted.", registry=r)
        retried_help = "Attempts that failed for now; the message is retried later."
        self._sms_retried = Counter("ivrkit_sms_retried", retried_help, registry=r)
        failed_help = "Text messages given up on (refused, or out of attempts)."
        self._sms_failed = Counter("ivrkit_sms_failed", failed_help, registry=r)

        estimates = Counter(
            "ivrkit_wait_estimates",
            "Waits announced to callers joining a queue, by queue and what they heard (number, safe, none).",
            ["queue", "said"],
            registry=r,
        )
        wait_error = Histogram(
            "ivrkit_wait_estimate_error_seconds",
            "Actual minus announced wait of answered calls, by queue (positive: longer than announced).",
            ["queue"],
            buckets=WAIT_ERROR_BUCKETS,
            registry=r,
        )
        wait_abs_error = Histogram(
            "ivrkit_wait_estimate_abs_error_seconds",
            "Size of the error of announced waits of answered calls, by queue (mean: sum / count).",
            ["queue"],
            buckets=WAIT_ABS_ERROR_BUCKETS,
            registry=r,
        )
        wait_ratio = Histogram(
            "ivrkit_wait_estimate_ratio",
            "Actual / announced wait of answered calls, by queue (1: exact; announcements of a minute or more).",
            ["queue"],
            buckets=WAIT_RATIO_BUCKETS,
            registry=r,
        )
        attempts = Counter(
            "ivrkit_callback_attempts",
            "Callback dial attempts that ended, by result (answered, busy, no-answer, failed, machine, unconfirmed, "
            "no-agent, interrupted).",
            ["result"],
            registry=r,
        )
        self._callback_attempts = _Children(attempts, 1)
        for result in Result:
            self._callback_attempts.get((result.value,))
        breaker_trips = Counter(
            "ivrkit_breaker_trips",
            "Circuit breaker trips (emergency mode switched on for the flow by the breaker), by flow.",
            ["flow"],
            registry=r,
        )
        breaker_tripped = Gauge(
            "ivrkit_breaker_tripped",
            "1 while the flow's circuit breaker holds emergency mode on, 0 while it watches the flow's calls.",
            ["flow"],
            registry=r,
        )
        self._breaker_trips = _Children(breaker_trips, 1)
        self._breaker_tripped = _Children(breaker_tripped, 1)
        self._callback_gauges = _CallbackGauges()
        r.register(self._callback_gauges)
        self._estimates = _Children(estimates, 2)
        self._wait_errors = (_Children(wait_error, 1), _Children(wait_abs_error, 1), _Children(wait_ratio, 1))
        self._sessions = _Children(sessions, 1)
        self._outcomes = _Children(outcomes, 2)
        self._errors = _Children(errors, 1)
        for kind in ERROR_KINDS:
            self._errors.get((kind,))
        self._reloads = {True: reloads.labels("ok"), False: reloads.labels("failed")}
        self._verbs: dict[str, str] = {}  # raw command name → its verb label, for the hot path

    def session_started(self, flow: str) -> None:
        self._active.inc()
        self._sessions.get((flow,)).inc()

    def session_ended(self, flow: str, outcome: str, seconds: float) -> None:
        self._active.dec()
        self._outcomes.get((flow, outcome)).inc()
        self._duration.observe("", seconds)

    def command(self, name: str, seconds: float) -> None:
        """Time one AGI command; `name` is its verb ("STREAM FILE"), unknown verbs count as "OTHER"."""
        verb = self._verbs.get(name)
        if verb is None:
            verb = command_verb(name)
            if len(self._verbs) < _MAX_COMMAND_ALIASES:
                self._verbs[name] = verb
        self._command_seconds.observe(verb, seconds)

    def error(self, kind: str) -> None:
        self._errors.get((kind,)).inc()

    def flows_loaded(self, count: int, last_reload_ok: bool) -> None:
        """Record a (re)load: `count` flows now in service, whether this load succeeded."""
        self._flows.set(count)
        self._reload_ok.set(1 if last_reload_ok else 0)
        self._reloads[bool(last_reload_ok)].inc()

    def wait_estimate(self, queue: str, said: str) -> None:
        """Count a wait announced to a caller joining ``queue``: ``said`` is number, safe or none."""
        self._estimates.get((queue, said)).inc()

    def wait_estimate_error(self, queue: str, actual: float, estimate: float) -> None:
        """An answered call's actual wait against the number it heard."""
        signed, size, ratio = self._wait_errors
        signed.get((queue,)).observe(actual - estimate)
        size.get((queue,)).observe(abs(actual - estimate))
        if estimate >= 60:  # below a minute the caller heard "less than a minute", not a figure to divide by
            ratio.get((queue,)).observe(actual / estimate)

    def outbox_pending(self, count: int) -> None:
        self._outbox_pending.set(count)

    def sms_sent(self) -> None:
        self._sms_sent.inc()

    def sms_retried(self) -> None:
        self._sms_retried.inc()

    def sms_failed(self) -> None:
        self._sms_failed.inc()

    def watch_callbacks(self, source: Callable[[], CallbackSummary] | None) -> None:
        """Export the callback gauges from ``source`` (e.g. ``lambda: store.summary(time.time())``), called at
        each scrape; None stops exporting them."""
        self._callback_gauges.source = source

    def callback_attempt(self, result: Result | str) -> None:
        """Count a callback attempt that ended with ``result``."""
        self._callback_attempts.get((str(result),)).inc()

    def callbacks_changed(self) -> None:
        """The dispatcher's hook after each change it makes. Nothing to do: the gauges are read from the store
        at scrape time, so they include changes made by any process on the same data directory."""

    def breaker_state(self, flow: str, tripped: bool) -> None:
        """The circuit breaker's state for ``flow``; the first call also exports its trip count at 0, so an
        alert on ``increase(ivrkit_breaker_trips_total[5m])`` sees the first trip."""
        self._breaker_trips.get((flow,))
        self._breaker_tripped.get((flow,)).set(1 if tripped else 0)

    def breaker_tripped(self, flow: str) -> None:
        """Count a trip of ``flow``'s circuit breaker."""
        self._breaker_trips.get((flow,)).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for an HTTP response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
