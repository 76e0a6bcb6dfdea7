"""Windows declared in flow files into the store, as ``ivrkit serve`` and ``ivrkit dispatcher`` do after each load:
on a real SQLite store, with the log lines an operator reads."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from ivrkit.cli.dispatcher import _reload
from ivrkit.flow.loader import load_directory
from ivrkit.flow.model import Flow
from ivrkit.maintenance.declared import store_declared
from ivrkit.maintenance.model import Window
from ivrkit.server.library import FlowLibrary
from ivrkit.store import Database, DeclaredChanges, SqliteMaintenance, StoreError, open_database

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
FLOW = """\
flow: {name}
timezone: Europe/Berlin
start: bye
maintenance:
  windows:
    - {{mode: planned, from: "2026-12-01T22:00", until: "2026-12-02T02:00", reason: database upgrade}}
steps:
  bye: {{hangup: true}}
"""


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    directory = Path("flows")
    directory.mkdir()
    for name in ("billing", "support"):
        (directory / f"{name}.yaml").write_text(FLOW.format(name=name))
    return directory


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path / "data") as database:
        yield database


@pytest.fixture
def store(database: Database) -> SqliteMaintenance:
    return SqliteMaintenance(database, lambda: NOW)


def loaded(directory: Path) -> dict[str, Flow]:
    result = load_directory(directory)
    assert not result.diagnostics.errors, result.diagnostics
    return result.flows


def test_each_flows_windows_are_stored_and_logged_and_a_flow_gone_has_its_windows_cancelled(
    flows: Path, store: SqliteMaintenance, caplog: pytest.LogCaptureFixture
) -> None:
    served = loaded(flows)
    with caplog.at_level(logging.INFO, "ivrkit.maintenance"):
        stored = store_declared(store, served.values())
    assert (stored.changes, stored.failed) == (2, [])
    billing, support = store.status()
    assert (support.scope, support.by) == ("support", "flows/support.yaml")
    settings = served["support"].maintenance
    assert settings is not None and support.id == settings.windows[0].id  # the loader's id is the store's
    assert caplog.messages == [
        f"maintenance window {billing.id} of flow billing stored from flows/billing.yaml: planned from 2026-12-01 "
        "21:00 UTC until 2026-12-02 01:00 UTC (database upgrade)",
        f"maintenance window {support.id} of flow support stored from flows/support.yaml: planned from 2026-12-01 "
        "21:00 UTC until 2026-12-02 01:00 UTC (database upgrade)",
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, "ivrkit.maintenance"):
        again = store_declared(store, [served["billing"]], gone=[served["support"], served["billing"]])
    assert (again.changes, again.failed) == (1, [])  # billing is served again: its window stays
    assert caplog.messages == [
        f"maintenance window {support.id} of flow support cancelled: no longer in flows/support.yaml (planned from "
        "2026-12-01 21:00 UTC until 2026-12-02 01:00 UTC (database upgrade))"
    ]
    assert store.status() == [billing]


class FailingFor(SqliteMaintenance):
    """The real store, failing for one flow as a locked or full database would."""

    failing: str

    def sync_declared(self, flow: str, windows: Iterable[Window], *, by: str) -> DeclaredChanges:
        if flow == self.failing:
            raise StoreError("database is locked")
        return super().sync_declared(flow, windows, by=by)


def test_a_flow_whose_windows_cannot_be_stored_is_logged_and_the_others_are_stored(
    flows: Path, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingFor(database, lambda: NOW)
    store.failing = "billing"
    with caplog.at_level(logging.ERROR, "ivrkit.maintenance"):
        stored = store_declared(store, loaded(flows).values())
    assert (stored.changes, stored.failed) == (1, ["billing"])
    assert caplog.messages == [
        "maintenance windows of flow billing (flows/billing.yaml) not stored: database is locked; callers still "
        "meet them, status and history show them once they are"
    ]
    assert [window.scope for window in store.status()] == ["support"]


def test_the_dispatchers_reload_stores_them_too(flows: Path, store: SqliteMaintenance) -> None:
    library = FlowLibrary(flows)
    _reload(library, store, "at start")
    assert [(window.scope, window.by) for window in store.status()] == [
        ("billing", "flows/billing.yaml"), ("support", "flows/support.yaml")
    ]  # fmt: skip
    (flows / "support.yaml").unlink()
    _reload(library, store, "files changed")
    assert [window.scope for window in store.status()] == ["billing"]
    assert [(entry.action, entry.reason) for entry in store.history("support")] == [
        ("off", "removed from the flow file"), ("scheduled", "database upgrade")
    ]  # fmt: skip
