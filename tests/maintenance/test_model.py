"""Which window a call meets: precedence by mode, then a flow's own window over a global one, then the latest
start; windows that have not started, have ended or were switched off do not count."""

from __future__ import annotations

import datetime as dt
import doctest

import ivrkit.maintenance.model
from ivrkit.maintenance.model import GLOBAL, PRECEDENCE, Maintenance, Mode, Source, Window, in_force

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def window(
    ident: str,
    scope: str,
    mode: Mode,
    start: dt.datetime = T0,
    end: dt.datetime | None = None,
    ended: dt.datetime | None = None,
) -> Window:
    return Window(ident, scope, mode, start, end, f"reason {ident}", "ops", Source.CLI, ended)


def test_doctests() -> None:
    failures, tried = doctest.testmod(ivrkit.maintenance.model)
    assert (failures, tried > 0) == (0, True)


def test_precedence_is_emergency_then_planned_then_closed() -> None:
    assert PRECEDENCE == (Mode.EMERGENCY, Mode.PLANNED, Mode.CLOSED)
    windows = [window("c", "support", Mode.CLOSED, end=T0 + HOUR), window("p", GLOBAL, Mode.PLANNED)]
    assert in_force(windows, "support", T0) == Maintenance(Mode.PLANNED, GLOBAL, None, "reason p", T0)
    windows.append(window("e", GLOBAL, Mode.EMERGENCY, start=T0 + HOUR))
    assert in_force(windows, "support", T0 + HOUR) == Maintenance(Mode.EMERGENCY, GLOBAL, None, "reason e", T0 + HOUR)


def test_same_mode_and_scope_the_latest_start_wins_in_any_order() -> None:
    early = window("early", "support", Mode.PLANNED, start=T0)
    late = window("late", "support", Mode.PLANNED, start=T0 + HOUR)
    for windows in ([early, late], [late, early]):
        meets = in_force(windows, "support", T0 + 2 * HOUR)
        assert meets is not None and meets.reason == "reason late"


def test_a_window_counts_from_its_start_until_its_end_or_switch_off() -> None:
    timed = window("t", "support", Mode.CLOSED, start=T0, end=T0 + HOUR)
    assert in_force([timed], "support", T0 - dt.timedelta(seconds=1)) is None
    assert in_force([timed], "support", T0) is not None
    assert in_force([timed], "support", T0 + HOUR) is None
    switched = window("s", "support", Mode.PLANNED, start=T0, ended=T0 + HOUR)
    assert in_force([switched], "support", T0 + dt.timedelta(minutes=30)) is not None  # before it was switched off
    assert in_force([switched], "support", T0 + HOUR) is None
    assert in_force([], "support", T0) is None


def test_a_window_becomes_what_a_call_meets() -> None:
    timed = window("t", "support", Mode.CLOSED, start=T0, end=T0 + HOUR)
    assert timed.maintenance() == Maintenance(Mode.CLOSED, "support", T0 + HOUR, "reason t", T0)
    assert timed.covers(T0) and not timed.covers(T0 + HOUR)
