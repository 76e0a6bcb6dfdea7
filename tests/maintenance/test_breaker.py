"""The circuit breaker: what it counts, when it trips, what quiet means, how it clears; with a fake clock.

The breaker's figures run on a fake monotonic clock and the store on a fake wall clock, both moved together by
:class:`Clock`; each test calls :meth:`CircuitBreaker.check` (one round of the breaker's thread) itself, except
the ones that prove the thread and the session path.
"""

from __future__ import annotations

import datetime as dt
import doctest
import logging
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ivrkit.maintenance.breaker
from ivrkit.engine.runner import Engine
from ivrkit.engine.world import StaticWorld
from ivrkit.flow.model import Flow
from ivrkit.maintenance.breaker import CircuitBreaker
from ivrkit.maintenance.model import GLOBAL, AuditEntry, Maintenance, Mode, Source, Window
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.library import FlowLibrary
from ivrkit.server.session import SessionHandler, SessionSettings
from ivrkit.server.world import LiveMaintenance
from ivrkit.store import SqliteMaintenance, open_database
from ivrkit.store.database import Database, StoreError
from tests.agi.pbx import FakePbx, serve_one
from tests.calls import build

START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def surge_flow(breaker: str, name: str = "surge", extra: str = "") -> str:
    return f"""
    flow: {name}
    start: hello
    maintenance:
      emergency: {{prompt: surge-emergency, then: hangup}}
      breaker: {breaker}
      {extra}
    steps:
      hello:
        hangup: {{outcome: greeted}}
    """


CALLS = "{max_calls_per_minute: 5, quiet: 2m}"  # clear: auto by default
ERRORS = "{max_error_rate: 50%, min_calls: 4, quiet: 2m}"


class Clock:
    """Monotonic seconds for the breaker and the matching wall time for the store."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds

    def now(self) -> dt.datetime:
        return START + dt.timedelta(seconds=self.seconds)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


@dataclass
class Rig:
    breaker: CircuitBreaker
    store: SqliteMaintenance
    flows: dict[str, Flow]
    clock: Clock
    metrics: ServerMetrics
    changes: list[str]

    def calls(self, count: int, flow: str = "surge", every: float = 1.0) -> None:
        """``count`` new calls, one every ``every`` seconds (the clock moves on after each)."""
        for _ in range(count):
            self.breaker.call_started(flow)
            self.clock.advance(every)

    def ends(self, failed: str, flow: str = "surge", every: float = 1.0) -> None:
        """Ends of new calls, in order: ``x`` in error, ``.`` not."""
        for mark in failed:
            self.breaker.call_ended(flow, mark == "x")
            self.clock.advance(every)

    def running(self, scope: str = "surge") -> list[Window]:
        return [window for window in self.store.windows(include_future=False) if window.scope == scope]

    def history(self) -> list[AuditEntry]:
        return list(reversed(self.store.history()))

    def actions(self) -> list[tuple[str, str, str, str]]:
        return [(entry.action, entry.scope, entry.by, entry.source.value) for entry in self.history()]

    def metric(self, name: str, flow: str = "surge") -> float | None:
        body, _ = self.metrics.render()
        for line in body.decode().splitlines():
            if line.startswith(f'{name}{{flow="{flow}"}} '):
                return float(line.split()[-1])
        return None


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path / "data") as database:
        yield database


@pytest.fixture
def rig(database: Database) -> Callable[..., Rig]:
    def make(*texts: str, store_class: type[SqliteMaintenance] = SqliteMaintenance) -> Rig:
        clock = Clock()
        flows = build(*(texts or (surge_flow(CALLS),)))
        store = store_class(database, clock.now)
        metrics = ServerMetrics()
        changes: list[str] = []
        breaker = CircuitBreaker(store, lambda: flows, metrics=metrics, clock=clock,
                                 on_change=lambda: changes.append("changed"))  # fmt: skip
        breaker.check()
        return Rig(breaker, store, flows, clock, metrics, changes)

    return make


def test_doctests() -> None:
    failures, tried = doctest.testmod(ivrkit.maintenance.breaker)
    assert (failures, tried > 0) == (0, True)


# -- tripping on calls --------------------------------------------------------------------------------------------


def test_more_calls_in_a_minute_than_the_limit_trip_emergency_mode_by_the_system(rig: Callable[..., Rig]) -> None:
    r = rig()
    assert r.breaker.watched() == {"surge": "watching"}
    assert (r.metric("ivrkit_breaker_tripped"), r.metric("ivrkit_breaker_trips_total")) == (0, 0)
    r.calls(5)
    r.breaker.check()
    assert r.running() == [] and r.changes == []  # five a minute is the limit, not over it
    r.calls(1)
    assert r.breaker.watched() == {"surge": "requested"}  # the session path only asks
    assert r.running() == []
    r.breaker.check()
    [window] = r.running()
    assert (window.mode, window.by, window.source, window.ends_at) == (Mode.EMERGENCY, "system", Source.BREAKER, None)
    assert window.reason == "6 calls started in the last minute, over the limit of 5 a minute"
    [entry] = r.history()
    assert (entry.action, entry.scope, entry.mode, entry.by, entry.source) == (
        "tripped", "surge", Mode.EMERGENCY, "system", Source.BREAKER)  # fmt: skip
    assert entry.reason == window.reason and entry.window_id == window.id
    assert r.breaker.watched() == {"surge": "tripped"} and r.changes == ["changed"]
    assert (r.metric("ivrkit_breaker_tripped"), r.metric("ivrkit_breaker_trips_total")) == (1, 1)
    in_force = r.store.in_force("surge")
    assert in_force is not None and in_force.mode is Mode.EMERGENCY


def test_the_minute_slides_a_call_a_minute_old_no_longer_counts(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.calls(5)  # at 0, 1, 2, 3, 4
    r.clock.seconds = 60.0
    r.calls(1, every=0.5)  # the call at 0 has left the minute: 1, 2, 3, 4, 60
    r.breaker.check()
    assert r.running() == []
    r.calls(1)  # 1, 2, 3, 4, 60, 60.5: six in the minute
    r.breaker.check()
    assert len(r.running()) == 1


def test_calls_spread_over_minutes_never_trip(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.calls(50, every=12.5)  # 4.8 calls a minute, for ten minutes
    r.breaker.check()
    assert r.running() == [] and r.history() == []


def test_sessions_of_other_flows_and_flows_without_a_breaker_count_nothing(rig: Callable[..., Rig]) -> None:
    r = rig(surge_flow(CALLS), "flow: plain\nstart: bye\nsteps:\n  bye: {hangup: {outcome: done}}\n")
    assert r.breaker.watched() == {"surge": "watching"}
    r.calls(20, flow="plain", every=0.1)
    r.calls(20, flow="unknown", every=0.1)
    r.breaker.check()
    assert r.store.windows() == []


# -- tripping on errors -------------------------------------------------------------------------------------------


def test_an_error_rate_over_the_limit_trips_once_enough_calls_ended(rig: Callable[..., Rig]) -> None:
    r = rig(surge_flow(ERRORS))
    r.ends("..xx")  # 2 of 4 in error: 50% is the limit, not over it
    r.breaker.check()
    assert r.running() == []
    r.ends("x")  # 3 of 5
    r.breaker.check()
    [window] = r.running()
    assert window.reason == "3 of the last minute's 5 calls ended in error (60%), over the limit of 50%"
    assert r.actions() == [("tripped", "surge", "system", "breaker")]


def test_an_error_rate_exactly_at_the_limit_does_not_trip(rig: Callable[..., Rig]) -> None:
    r = rig(surge_flow("{max_error_rate: 57%, min_calls: 100, quiet: 1m}"))
    r.ends("x" * 57 + "." * 43, every=0.1)  # 57 of 100 (57 / 100 == 0.57, though 0.57 * 100 < 57)
    r.breaker.check()
    assert r.running() == []
    r.ends("x", every=0.1)
    r.breaker.check()
    assert [w.reason for w in r.running()] == [
        "58 of the last minute's 101 calls ended in error (57.4%), over the limit of 57%"]  # fmt: skip


def test_errors_count_only_from_min_calls_in_the_minute(rig: Callable[..., Rig]) -> None:
    r = rig(surge_flow(ERRORS))
    r.ends("xxx")  # every call failed, but only three ended
    r.clock.advance(60)
    r.ends("xxx")  # the first three have left the minute
    r.breaker.check()
    assert r.running() == []
    r.ends("x")
    r.breaker.check()
    assert [w.reason for w in r.running()] == [
        "4 of the last minute's 4 calls ended in error (100%), over the limit of 50%"]  # fmt: skip


def test_a_breaker_with_both_limits_trips_on_either(rig: Callable[..., Rig]) -> None:
    r = rig(surge_flow("{max_calls_per_minute: 100, max_error_rate: 0.5, min_calls: 2, quiet: 1m}"))
    r.ends("xx")
    r.breaker.check()
    assert "2 of the last minute's 2 calls ended in error" in r.running()[0].reason


# -- tripped: never again while on, quiet, clearing -------------------------------------------------------------


def test_it_never_trips_again_while_its_own_window_is_on(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.calls(6)
    r.breaker.check()
    r.calls(100, every=0.1)  # the surge goes on: these callers hear the emergency announcement
    r.breaker.check()
    assert len(r.running()) == 1 and r.actions() == [("tripped", "surge", "system", "breaker")]
    assert r.metric("ivrkit_breaker_trips_total") == 1


def test_clear_auto_switches_off_after_quiet_and_a_surge_that_goes_on_keeps_it_on(rig: Callable[..., Rig]) -> None:
    r = rig()  # quiet: 2m
    r.calls(6)
    r.breaker.check()
    for _ in range(3):  # three more minutes of 10 calls a minute: callers meeting emergency count too
        r.calls(10, every=6)
        r.breaker.check()
        assert len(r.running()) == 1
    r.clock.advance(120 - 6 - 0.5)  # just under two minutes since the last call that crossed the limit
    r.breaker.check()
    assert len(r.running()) == 1
    r.clock.advance(0.5)
    r.breaker.check()
    assert r.running() == []
    assert r.actions() == [("tripped", "surge", "system", "breaker"), ("cleared", "surge", "system", "breaker")]
    assert r.history()[-1].reason == "no threshold crossed for 2m"
    assert r.breaker.watched() == {"surge": "watching"} and r.metric("ivrkit_breaker_tripped") == 0
    assert r.changes == ["changed", "changed"]
    r.calls(6, every=0.1)  # a new surge trips it again
    r.breaker.check()
    assert len(r.running()) == 1 and r.metric("ivrkit_breaker_trips_total") == 2


def test_calls_under_the_limit_while_tripped_do_not_delay_the_clearing(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.calls(6, every=0.1)
    r.breaker.check()
    r.clock.advance(60)
    r.calls(5, every=12)  # 5 a minute, callers meeting emergency: at the limit, not over it
    r.breaker.check()
    assert r.running() == []  # two minutes after the last call that crossed the limit


def test_clear_operator_stays_on_until_switched_off_then_watches_again(rig: Callable[..., Rig]) -> None:
    r = rig(surge_flow("{max_calls_per_minute: 5, quiet: 1m, clear: operator}"))
    r.calls(6)
    r.breaker.check()
    r.clock.advance(3600)
    r.breaker.check()
    assert len(r.running()) == 1 and r.breaker.watched() == {"surge": "tripped"}
    r.store.switch_off("surge", by="ops", source=Source.CLI, reason="fixed the trunk")
    r.breaker.check()
    assert r.breaker.watched() == {"surge": "watching"} and r.metric("ivrkit_breaker_tripped") == 0
    assert r.actions() == [("tripped", "surge", "system", "breaker"), ("cleared", "surge", "ops", "cli")]
    r.calls(5)
    r.breaker.check()
    assert r.running() == []
    r.calls(1)  # over the limit again: it trips again
    r.breaker.check()
    assert len(r.running()) == 1 and r.metric("ivrkit_breaker_trips_total") == 2


def test_after_a_switch_off_it_counts_a_fresh_minute(rig: Callable[..., Rig]) -> None:
    r = rig(surge_flow("{max_calls_per_minute: 5, quiet: 1m, clear: operator}"))
    r.calls(20, every=0.5)  # ten seconds of surge: tripped at the sixth call
    r.breaker.check()
    r.store.switch_off("surge", by="ops", source=Source.CLI, reason="let them through")
    r.breaker.check()
    assert r.changes == ["changed", "changed"]  # tripped, then watching again: the next call meets no emergency
    r.calls(5, every=0.5)  # 25 calls in the last 12.5 seconds, but only five since the switch-off
    r.breaker.check()
    assert r.running() == [] and r.breaker.watched() == {"surge": "watching"}
    r.calls(1)
    r.breaker.check()
    assert len(r.running()) == 1


def test_a_window_switched_off_by_an_operator_under_clear_auto_is_not_switched_off_again(
    rig: Callable[..., Rig],
) -> None:
    r = rig()
    r.calls(6)
    r.breaker.check()
    r.store.switch_off("surge", by="ops", source=Source.API)
    r.clock.advance(600)
    r.breaker.check()
    assert r.actions() == [("tripped", "surge", "system", "breaker"), ("cleared", "surge", "ops", "api")]


# -- not tripping while the flow is in maintenance already ------------------------------------------------------


@pytest.mark.parametrize(("scope", "mode"), [("surge", Mode.PLANNED), (GLOBAL, Mode.EMERGENCY), (GLOBAL, Mode.CLOSED)])
def test_it_does_not_trip_while_the_flow_is_in_maintenance_and_trips_after(
    rig: Callable[..., Rig], scope: str, mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    r = rig()
    until = START + dt.timedelta(hours=1)
    operator = r.store.switch_on(scope, mode, by="ops", source=Source.CLI, until=until, reason="upgrade")
    with caplog.at_level(logging.INFO, logger="ivrkit.breaker"):
        r.calls(10, every=0.1)
        r.breaker.check()
    assert r.store.windows() == [operator]  # the operator's window stays as it was, not replaced
    assert f"not tripped (6 calls started in the last minute, over the limit of 5 a minute): the flow is in " \
           f"{mode.value} maintenance already" in caplog.text  # fmt: skip
    assert r.breaker.watched() == {"surge": "watching"}
    r.clock.advance(1)
    with caplog.at_level(logging.INFO, logger="ivrkit.breaker"):
        r.calls(10, every=0.1)
        r.breaker.check()  # asked again a round later: still held back, not logged again
    assert caplog.text.count("not tripped") == 1 and len(r.store.windows()) == 1
    r.store.switch_off(scope, by="ops", source=Source.CLI)
    r.clock.advance(1)  # a crossing asks again a round (a second) after the last answer
    r.calls(1, every=0.1)
    r.breaker.check()
    assert r.breaker.watched() == {"surge": "tripped"}  # the surge goes on after the operator's window
    assert [(w.scope, w.source) for w in r.running()] == [("surge", Source.BREAKER)]


def test_it_does_not_trip_during_a_window_the_flow_declares(rig: Callable[..., Rig]) -> None:
    window = "windows: [{mode: planned, from: '2026-11-23T09:00', until: '2026-11-23T12:00', reason: upgrade}]"
    r = rig(surge_flow(CALLS, extra=window))
    r.calls(10, every=0.1)
    r.breaker.check()
    assert r.store.windows() == [] and r.breaker.watched() == {"surge": "watching"}


def test_a_store_that_fails_when_tripping_is_tried_again_a_round_later(
    rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(SqliteMaintenance):
        failures = 1

        def switch_on(self, *args: Any, **kwargs: Any) -> Window:
            if self.failures:
                self.failures -= 1
                raise StoreError("database is locked")
            return super().switch_on(*args, **kwargs)

    r = rig(store_class=Failing)
    with caplog.at_level(logging.ERROR, logger="ivrkit.breaker"):
        r.calls(6)
        r.breaker.check()
    assert "did not switch emergency mode on (6 calls started in the last minute, over the limit of 5 a minute): " \
           "database is locked; trying again in 1s" in caplog.text  # fmt: skip
    assert r.running() == [] and r.breaker.watched() == {"surge": "requested"}
    r.breaker.check()  # the next round, with no new call
    assert [w.reason for w in r.running()] == ["6 calls started in the last minute, over the limit of 5 a minute"]


# -- restarts and reloads -----------------------------------------------------------------------------------------


def test_a_breaker_window_from_before_a_restart_is_taken_over_and_cleared_after_quiet(rig: Callable[..., Rig]) -> None:
    first = rig()
    first.calls(6)
    first.breaker.check()
    clock = first.clock
    clock.advance(3600)  # the server was down for an hour; the window stayed on
    restarted = CircuitBreaker(first.store, lambda: first.flows, clock=clock)
    restarted.check()
    assert restarted.watched() == {"surge": "tripped"}
    clock.advance(119)
    restarted.check()
    assert len(first.running()) == 1  # quiet counts from the restart
    clock.advance(1)
    restarted.check()
    assert first.running() == [] and first.actions()[-1] == ("cleared", "surge", "system", "breaker")


def test_a_reload_keeps_the_figures_and_follows_new_settings(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.calls(5, every=0.1)
    r.flows.update(build(surge_flow("{max_calls_per_minute: 3, quiet: 1m}")))  # the flow file changed
    r.breaker.check()
    r.calls(1)  # six in the minute, over the new limit of 3
    r.breaker.check()
    assert [w.reason for w in r.running()] == ["6 calls started in the last minute, over the limit of 3 a minute"]


def test_a_flow_that_no_longer_declares_a_breaker_is_no_longer_watched_and_its_window_stays(
    rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    r = rig()
    r.calls(6)
    r.breaker.check()
    r.flows.update(build("flow: surge\nstart: bye\nsteps:\n  bye: {hangup: {outcome: done}}\n"))
    with caplog.at_level(logging.WARNING, logger="ivrkit.breaker"):
        r.breaker.check()
    assert r.breaker.watched() == {} and len(r.running()) == 1
    assert "flow surge no longer declares a circuit breaker; its emergency window" in caplog.text
    assert "stays on until `ivrkit maintenance off --flow surge`" in caplog.text
    assert r.metric("ivrkit_breaker_tripped") == 0


# -- the thread and the session path ------------------------------------------------------------------------------


@dataclass
class StoreWorld(StaticWorld):
    """The engine's world with maintenance from the store, read as the live server reads it."""

    live: LiveMaintenance | None = None

    def maintenance(self, flow: str, now: dt.datetime) -> Maintenance | None:
        assert self.live is not None
        return self.live.maintenance(flow, now)


LINE = """
flow: line
start: route
maintenance:
  emergency: {prompt: line-emergency, then: hangup}
  breaker: {max_calls_per_minute: 3, quiet: 1m, clear: operator}
steps:
  route:
    branch:
      - if: "caller.number == 'broken'"
        then: broken
      - if: "caller.number == 'late'"
        then: late
    else: ask
  late:
    hangup: {outcome: timeout}
  ask:
    menu: {prompt: main-menu, choices: {"1": bye}, failed: bye}
  broken:
    set: {x: "{{ 1 // 0 }}"}
    next: bye
  bye:
    hangup: {outcome: greeted}
"""


@pytest.fixture
def served(tmp_path: Path, database: Database) -> Iterator[tuple[SessionHandler, CircuitBreaker, SqliteMaintenance]]:
    """A session handler for ``line``, its world reading the store once a second (a fake second that never
    passes) and a running breaker."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "line.yaml").write_text(textwrap.dedent(LINE))
    store = SqliteMaintenance(database)
    live = LiveMaintenance(store, ttl=1.0, clock=lambda: 0.0)
    library = FlowLibrary(flows, world=StoreWorld({}, {}, live=live))
    assert library.reload().ok
    metrics = ServerMetrics()
    breaker = CircuitBreaker(store, lambda: library.flows, metrics=metrics, interval=0.05, on_change=live.refresh)
    handler = SessionHandler(library, metrics, SessionSettings(command_seconds=2.0), watcher=breaker)
    breaker.start()
    yield handler, breaker, store
    assert breaker.stop()


def test_a_burst_of_sessions_trips_and_the_next_call_meets_emergency(
    served: tuple[SessionHandler, CircuitBreaker, SqliteMaintenance],
) -> None:
    handler, breaker, store = served
    for _ in range(3):
        transcript, _ = serve_one(handler, FakePbx("line", ["1"]))
        assert transcript.variables["IVRKIT_OUTCOME"] == "greeted"
    assert handler.library.world.maintenance("line", dt.datetime.now(dt.UTC)) is None  # read, and cached now
    transcript, _ = serve_one(handler, FakePbx("line", ["1"]))  # the fourth call in the minute crosses the limit
    # the breaker's thread trips while that call runs: it meets the emergency only if the trip came first
    assert transcript.variables["IVRKIT_OUTCOME"] in ("greeted", "maintenance-emergency")
    assert breaker.wait_rounds(2, timeout=10)
    assert breaker.watched() == {"line": "tripped"}
    transcript, _ = serve_one(handler, FakePbx("line", ["1"]))
    assert transcript.played == ["en/ivrkit/line-emergency"]  # the cache was read again at once
    assert transcript.variables["IVRKIT_OUTCOME"] == "maintenance-emergency"
    [entry] = store.history()
    assert (entry.action, entry.by, entry.source, entry.scope) == ("tripped", "system", Source.BREAKER, "line")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def call_started(self, flow: str) -> None:
        self.seen.append(("started", flow))

    def call_ended(self, flow: str, failed: bool) -> None:
        self.seen.append(("ended", flow, failed))


class Garbling(FakePbx):
    """A PBX that answers the first prompt with a line that is no AGI reply."""

    def reply(self, words: list[str]) -> list[str]:
        return ["what?"] if words[0] == "STREAM" else super().reply(words)


@pytest.mark.parametrize(
    ("pbx", "seen"),
    [
        (FakePbx("line", ["1"]), [("started", "line"), ("ended", "line", False)]),
        (FakePbx("line", ["hangup"]), [("started", "line"), ("ended", "line", False)]),  # the caller went
        (FakePbx("line", env={"agi_callerid": "broken"}), [("started", "line"), ("ended", "line", True)]),
        (FakePbx("line", env={"agi_callerid": "late"}), [("started", "line"), ("ended", "line", False)]),  # a label
        (Garbling("line"), [("started", "line"), ("ended", "line", True)]),  # a protocol error
        (FakePbx("line/resume?outcome=TIMEOUT"), []),  # the same call again: not a new call
        (FakePbx("line/hangup"), []),
        (FakePbx("/line/callback?id=0123456789abcdef0123456789abcdef&amd="), []),
        (FakePbx("nosuch"), []),
    ],
    ids=["greeted", "caller-hangup", "flow-error", "outcome-named-timeout", "protocol-error", "resume", "hangup",
         "callback", "unknown-flow"],
)
def test_the_session_tells_the_watcher_of_new_calls_and_whether_they_failed(
    tmp_path: Path, pbx: FakePbx, seen: list[tuple[Any, ...]]
) -> None:
    handler, recorder = _recorded(tmp_path)
    serve_one(handler, pbx)
    assert recorder.seen == seen


def test_a_crashed_session_counts_as_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handler, recorder = _recorded(tmp_path)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(Engine, "run", crash)
    transcript, _ = serve_one(handler, FakePbx("line", ["1"]))
    assert transcript.variables["IVRKIT_OUTCOME"] == "crash"
    assert recorder.seen == [("started", "line"), ("ended", "line", True)]


def _recorded(tmp_path: Path) -> tuple[SessionHandler, Recorder]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "line.yaml").write_text(textwrap.dedent(LINE))
    library = FlowLibrary(flows)
    assert library.reload().ok
    recorder = Recorder()
    return SessionHandler(library, ServerMetrics(), SessionSettings(command_seconds=2.0), watcher=recorder), recorder


def test_live_maintenance_reads_again_after_a_refresh_even_within_its_second() -> None:
    class Store:
        def __init__(self) -> None:
            self.found: list[Window] = []
            self.reads = 0

        def windows(self, now: dt.datetime | None = None, include_future: bool = True) -> list[Window]:
            self.reads += 1
            return list(self.found)

    store = Store()
    live = LiveMaintenance(store, ttl=1.0, clock=lambda: 0.0)  # type: ignore[arg-type]
    assert live.maintenance("line", START) is None and store.reads == 1
    store.found = [Window("w1", "line", Mode.EMERGENCY, START, None, "", "system", Source.BREAKER)]
    assert live.maintenance("line", START) is None and store.reads == 1  # cached
    live.refresh()
    found = live.maintenance("line", START)
    assert found is not None and found.mode is Mode.EMERGENCY and store.reads == 2
    assert live.maintenance("line", START) is not None and store.reads == 2
