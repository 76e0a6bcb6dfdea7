"""LiveMaintenance: the store's windows, read at most once a second, picked per call by the model's rules."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from ivrkit.engine.maintenance import mode_now
from ivrkit.flow.loader import load_directory
from ivrkit.maintenance.model import GLOBAL, Mode, Source, Window
from ivrkit.server.world import LiveMaintenance
from ivrkit.store.database import StoreError

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def window(scope: str, mode: str, start: int = -60, end: int | None = None) -> Window:
    def at(minutes: int) -> dt.datetime:
        return NOW + dt.timedelta(minutes=minutes)

    return Window(f"{scope}-{mode}", scope, Mode(mode), at(start), None if end is None else at(end), "", "ops",
                  Source.CLI)


class Store:
    """The part of the maintenance store the live world reads; counts reads, fails on request."""

    def __init__(self, windows: list[Window]):
        self.found = windows
        self.reads = 0
        self.failing = False

    def windows(self, now: dt.datetime | None = None, include_future: bool = True) -> list[Window]:
        self.reads += 1
        if self.failing:
            raise StoreError("database is locked")
        return list(self.found)


def test_windows_are_read_once_a_second_and_scheduled_times_apply_to_the_second() -> None:
    store = Store([window("support", "planned", start=5, end=65), window(GLOBAL, "closed")])
    clock = [100.0]
    live = LiveMaintenance(store, ttl=1.0, clock=lambda: clock[0])
    found = live.maintenance("support", NOW)
    assert found is not None and (found.mode, found.scope) == (Mode.CLOSED, GLOBAL)
    later = live.maintenance("support", NOW + dt.timedelta(minutes=6))  # the planned window started: read before
    assert later is not None and later.mode is Mode.PLANNED
    assert live.maintenance("billing", NOW) is not None and store.reads == 1
    store.found = []
    clock[0] += 1.0
    assert live.maintenance("support", NOW) is None and store.reads == 2  # switched off: heard within a second


def test_a_store_that_cannot_be_read_keeps_the_windows_read_before(caplog: pytest.LogCaptureFixture) -> None:
    store = Store([window("support", "emergency")])
    clock = [0.0]
    live = LiveMaintenance(store, clock=lambda: clock[0])
    assert live.maintenance("support", NOW) is not None
    store.failing = True
    clock[0] = 5.0
    with caplog.at_level(logging.WARNING):
        found = live.maintenance("support", NOW)
    assert found is not None and found.mode is Mode.EMERGENCY
    assert "maintenance windows not read, using those read before: database is locked" in caplog.text


def test_the_dispatchers_mode_of_a_flow_takes_the_store_and_the_flows_own_windows(tmp_path: Path) -> None:
    flow = tmp_path / "line.yaml"
    flow.write_text(
        "flow: line\nstart: hi\nmaintenance:\n  windows:\n"
        "    - {mode: closed, from: '2000-01-01T00:00', until: '2999-01-01T00:00', reason: move}\n"
        "steps:\n  hi: {hangup: {outcome: done}}\n"
    )
    result = load_directory(tmp_path)
    assert not result.diagnostics.errors, result.diagnostics
    store = Store([window("support", "planned", start=-10**7, end=10**7)])
    live = LiveMaintenance(store)
    assert mode_now(live, result.flows, "line") == "closed"  # the flow's own YAML window
    assert mode_now(live, result.flows, "support") == "planned"  # not loaded: the store's alone
    store.found = [window(GLOBAL, "emergency", start=-10**7)]
    assert mode_now(LiveMaintenance(store), result.flows, "line") == "emergency"  # emergency beats closed
    assert mode_now(LiveMaintenance(Store([])), result.flows, "other") is None
