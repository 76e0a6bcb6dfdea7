"""LiveMaintenance: the store's windows, read at most once a second, picked per call by the model's rules."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

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
