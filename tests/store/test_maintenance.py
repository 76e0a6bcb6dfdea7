"""The maintenance store on a real SQLite file: windows that start now or later, end by command or by themselves,
replace each other, windows declared in flow files kept equal to the file's, and an audit row for every change,
written once even when several processes race."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ivrkit.maintenance.model import GLOBAL, AuditEntry, Maintenance, Mode, Source, Window, declared_id
from ivrkit.store import (
    Database,
    DeclaredChanges,
    MaintenanceStore,
    SqliteMaintenance,
    WindowDeclared,
    WindowNotFound,
    open_database,
)
from tests.store.processes import run_together

T0 = dt.datetime(2027, 1, 15, 8, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path) as db:
        yield db


@pytest.fixture
def store(database: Database, clock: Clock) -> SqliteMaintenance:
    return SqliteMaintenance(database, clock)


def actions(store: SqliteMaintenance, scope: str | None = None) -> list[tuple[str, str, str]]:
    """(action, scope, by) of the audit trail, oldest first."""
    return [(entry.action, entry.scope, entry.by) for entry in reversed(store.history(scope))]


def test_switching_on_opens_a_window_in_force_at_once_and_audits_it(store: SqliteMaintenance) -> None:
    window = store.switch_on(
        "support", Mode.PLANNED, by="alice", source=Source.CLI, reason="database upgrade", until=T0 + 2 * HOUR
    )
    assert window == Window(
        window.id, "support", Mode.PLANNED, T0, T0 + 2 * HOUR, "database upgrade", "alice", Source.CLI
    )
    assert len(window.id) == 12
    assert store.in_force("support", T0) == Maintenance(Mode.PLANNED, "support", T0 + 2 * HOUR, "database upgrade", T0)
    assert store.in_force("billing", T0) is None
    assert store.history() == [
        AuditEntry(T0, "on", "support", Mode.PLANNED, "alice", Source.CLI, "database upgrade", T0 + 2 * HOUR,
                   window_id=window.id)
    ]  # fmt: skip


def test_times_come_back_aware_in_utc_whatever_zone_they_were_given_in(store: SqliteMaintenance) -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    until = dt.datetime(2027, 1, 15, 14, 0, tzinfo=berlin)
    window = store.switch_on("support", Mode.CLOSED, by="alice", source=Source.API, until=until)
    (stored,) = store.windows()
    assert stored.ends_at == until and stored.ends_at.tzinfo is dt.UTC
    assert stored == window
    assert stored.ends_at.isoformat() == "2027-01-15T13:00:00+00:00"


def test_a_window_ends_by_itself_at_its_end_and_the_expiry_is_recorded_once_by_the_system(
    store: SqliteMaintenance, clock: Clock
) -> None:
    window = store.switch_on("support", Mode.EMERGENCY, by="bob", source=Source.CLI, reason="fault", until=T0 + HOUR)
    assert store.in_force("support", T0 + HOUR - dt.timedelta(seconds=1)) is not None
    assert store.in_force("support", T0 + HOUR) is None  # the end is not part of the window
    assert store.status(T0 + HOUR) == []
    clock.now = T0 + 3 * HOUR
    assert store.expire() == [window]
    assert store.expire() == []  # once
    assert store.expire(T0 + 5 * HOUR) == []
    # recorded at the end time, not when it was noticed
    assert store.history()[0] == AuditEntry(
        T0 + HOUR, "expired", "support", Mode.EMERGENCY, "system", Source.SCHEDULE, "fault", T0 + HOUR,
        window_id=window.id,
    )  # fmt: skip
    assert actions(store) == [("on", "support", "bob"), ("expired", "support", "system")]


def test_expire_leaves_windows_still_running_and_those_switched_off_before_their_end(
    store: SqliteMaintenance, clock: Clock
) -> None:
    store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI, until=T0 + HOUR)
    store.switch_on("billing", Mode.PLANNED, by="a", source=Source.CLI, until=T0 + 3 * HOUR)
    store.switch_on("sales", Mode.PLANNED, by="a", source=Source.CLI)  # until switched off
    clock.now = T0 + 30 * dt.timedelta(minutes=1)
    store.switch_off("support", by="b", source=Source.CLI, reason="done early")
    assert store.expire(T0 + 2 * HOUR) == []
    assert store.in_force("billing", T0 + 2 * HOUR) is not None
    assert store.in_force("sales", T0 + 1000 * HOUR) is not None
    assert [entry.action for entry in store.history("support")] == ["off", "on"]


def test_a_scheduled_window_is_audited_when_created_and_when_it_starts(store: SqliteMaintenance, clock: Clock) -> None:
    start = T0 + 14 * HOUR
    window = store.switch_on(
        "support", Mode.PLANNED, by="carol", source=Source.CLI, reason="release", starts_at=start, until=start + HOUR
    )
    assert window.starts_at == start
    assert store.history()[0] == AuditEntry(
        T0, "scheduled", "support", Mode.PLANNED, "carol", Source.CLI, "release", start + HOUR,
        detail="starts 2027-01-15 22:00 UTC", window_id=window.id,
    )  # fmt: skip
    assert store.in_force("support", T0) is None
    assert store.windows(T0, include_future=False) == []
    assert store.windows(T0) == store.status(T0) == [window]
    assert store.start_due(T0) == []
    assert store.in_force("support", start) == Maintenance(Mode.PLANNED, "support", start + HOUR, "release", start)
    clock.now = start + dt.timedelta(minutes=5)
    assert store.start_due() == [window]
    assert store.start_due() == []  # once
    assert store.history()[0] == AuditEntry(
        start, "on", "support", Mode.PLANNED, "system", Source.SCHEDULE, "release", start + HOUR,
        detail="scheduled by carol (cli)", window_id=window.id,
    )  # fmt: skip


def test_a_scheduled_window_that_ran_has_its_start_recorded_even_once_replaced(
    store: SqliteMaintenance, clock: Clock
) -> None:
    window = store.switch_on("support", Mode.PLANNED, by="carol", source=Source.CLI, starts_at=T0 + HOUR)
    clock.now = T0 + 2 * HOUR  # it started; nobody recorded it yet
    store.switch_on("support", Mode.PLANNED, by="dave", source=Source.CLI)
    assert store.start_due() == [replace(window, ended_at=clock.now)]
    assert [(e.at, e.action, e.by) for e in store.history()] == [
        (T0 + 2 * HOUR, "on", "dave"), (T0 + 2 * HOUR, "off", "dave"), (T0 + HOUR, "on", "system"),
        (T0, "scheduled", "carol"),
    ]  # fmt: skip


def test_a_start_in_the_past_means_now(store: SqliteMaintenance) -> None:
    window = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI, starts_at=T0 - HOUR)
    assert window.starts_at == T0
    assert [entry.action for entry in store.history()] == ["on"]


def test_a_new_window_replaces_the_running_one_of_the_same_scope_and_mode(
    store: SqliteMaintenance, clock: Clock
) -> None:
    first = store.switch_on("support", Mode.PLANNED, by="alice", source=Source.CLI, reason="upgrade", until=T0 + HOUR)
    other_mode = store.switch_on("support", Mode.EMERGENCY, by="bob", source=Source.CLI, reason="fault")
    other_flow = store.switch_on("billing", Mode.PLANNED, by="bob", source=Source.CLI, reason="upgrade")
    clock.now = T0 + dt.timedelta(minutes=10)
    second = store.switch_on(
        "support", Mode.PLANNED, by="carol", source=Source.API, reason="takes longer", until=T0 + 3 * HOUR
    )
    assert store.replaced(second.id) == [replace(first, ended_at=clock.now)]
    assert store.replaced(other_mode.id) == []
    running = store.windows(clock.now, include_future=False)
    assert [w.id for w in running] == [other_mode.id, other_flow.id, second.id]
    history = store.history("support")
    assert (history[0].action, history[0].detail, history[0].by) == ("on", f"replaces {first.id}", "carol")
    assert (history[1].action, history[1].detail, history[1].window_id) == ("off", f"replaced by {second.id}",
                                                                            first.id)  # fmt: skip
    assert history[1].reason == "takes longer"


def test_a_scheduled_window_replaces_nothing(store: SqliteMaintenance) -> None:
    running = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI)
    later = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI, starts_at=T0 + HOUR)
    assert store.replaced(later.id) == []
    assert store.windows(T0) == [running, later]


def test_switching_off_ends_the_scopes_running_windows_only(store: SqliteMaintenance, clock: Clock) -> None:
    planned = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI)
    emergency = store.switch_on("support", Mode.EMERGENCY, by="a", source=Source.CLI)
    scheduled = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI, starts_at=T0 + 5 * HOUR)
    global_ = store.switch_on(GLOBAL, Mode.CLOSED, by="a", source=Source.CLI, until=T0 + 9 * HOUR)
    billing = store.switch_on("billing", Mode.PLANNED, by="a", source=Source.CLI)
    clock.now = T0 + HOUR
    ended = store.switch_off("support", by="bob", source=Source.API, reason="all fixed")
    assert ended == [replace(emergency, ended_at=clock.now), replace(planned, ended_at=clock.now)]  # precedence order
    assert store.windows(clock.now) == [global_, billing, scheduled]
    assert store.in_force("support", clock.now) == global_.maintenance()  # the global window still applies
    assert [(e.action, e.mode, e.by, e.source, e.reason) for e in store.history("support")[:2]] == [
        ("off", Mode.PLANNED, "bob", Source.API, "all fixed"),
        ("off", Mode.EMERGENCY, "bob", Source.API, "all fixed"),
    ]


def test_switching_off_one_mode_leaves_the_others(store: SqliteMaintenance) -> None:
    planned = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI)
    emergency = store.switch_on("support", Mode.EMERGENCY, by="a", source=Source.CLI)
    assert store.switch_off("support", by="b", source=Source.CLI, mode=Mode.EMERGENCY) == [
        replace(emergency, ended_at=T0)
    ]
    assert store.windows(T0) == [planned]


def test_a_global_switch_off_leaves_the_flows_own_windows(store: SqliteMaintenance) -> None:
    store.switch_on(GLOBAL, Mode.EMERGENCY, by="a", source=Source.CLI)
    own = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI)
    assert [w.scope for w in store.switch_off(GLOBAL, by="b", source=Source.CLI)] == [GLOBAL]
    assert store.windows(T0) == [own]


def test_switching_off_nothing_writes_nothing(store: SqliteMaintenance) -> None:
    store.switch_on(GLOBAL, Mode.EMERGENCY, by="a", source=Source.CLI)
    assert store.switch_off("support", by="b", source=Source.CLI) == []
    assert actions(store) == [("on", GLOBAL, "a")]


def test_cancelling_a_scheduled_window_means_it_never_starts(store: SqliteMaintenance, clock: Clock) -> None:
    window = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI, starts_at=T0 + HOUR)
    clock.now = T0 + dt.timedelta(minutes=1)
    cancelled = store.cancel(window.id, by="b", source=Source.API, reason="postponed")
    assert cancelled == replace(window, ended_at=clock.now)
    assert store.history()[0] == AuditEntry(
        clock.now, "off", "support", Mode.PLANNED, "b", Source.API, "postponed", None,
        detail="cancelled before its start", window_id=window.id,
    )  # fmt: skip
    assert store.in_force("support", T0 + 2 * HOUR) is None
    assert store.start_due(T0 + 2 * HOUR) == []


def test_cancel_ends_a_running_window_and_refuses_one_that_is_over(store: SqliteMaintenance) -> None:
    window = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI, until=T0 + HOUR)
    assert store.cancel(window.id, by="b", source=Source.CLI).ended_at == T0
    with pytest.raises(WindowNotFound) as refused:
        store.cancel(window.id, by="b", source=Source.CLI)
    assert str(refused.value) == (
        f"no running or scheduled maintenance window has the id {window.id!r}; `ivrkit maintenance status` shows "
        "them with their ids"
    )
    with pytest.raises(WindowNotFound):
        store.cancel("nope", by="b", source=Source.CLI)
    assert len(store.history()) == 2  # on, off


def test_the_breaker_trips_and_its_window_is_cleared(store: SqliteMaintenance, clock: Clock) -> None:
    store.switch_on("support", Mode.EMERGENCY, by="system", source=Source.BREAKER, reason="error rate 0.62 > 0.5")
    clock.now = T0 + HOUR
    store.switch_off("support", by="alice", source=Source.CLI, reason="fixed")
    assert actions(store) == [("tripped", "support", "system"), ("cleared", "support", "alice")]


@pytest.mark.parametrize(
    ("scope", "mode", "fields", "message"),
    [
        ("support", Mode.CLOSED, {}, "closed needs an end time (the reopening time callers hear); give until"),
        ("support", Mode.PLANNED, {"until": T0 - HOUR},
         "the end 2027-01-15 07:00 UTC is not in the future (now 2027-01-15 08:00 UTC); give a later end"),
        ("support", Mode.PLANNED, {"starts_at": T0 + 2 * HOUR, "until": T0 + HOUR},
         "the end 2027-01-15 09:00 UTC is not after the start 2027-01-15 10:00 UTC; give a later end"),
        ("support", Mode.PLANNED, {"until": dt.datetime(2027, 1, 15, 14, 0)},
         "the end 2027-01-15T14:00:00 has no time zone; give an aware datetime (e.g. with tz=UTC)"),
        ("support", Mode.PLANNED, {"by": " "},
         "say who makes the change (by=…): an operator's name, a ticket, 'system'"),
        ("", Mode.PLANNED, {}, "a maintenance scope is a flow name or '*' (global); got ''"),
        (" support", Mode.PLANNED, {}, "a maintenance scope is a flow name or '*' (global); got ' support'"),
        ("support", "paused", {}, "'paused' is not a valid Mode"),
    ],
)  # fmt: skip
def test_a_window_that_makes_no_sense_is_refused_and_nothing_is_written(
    store: SqliteMaintenance, scope: str, mode: Mode, fields: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {"by": "alice", "source": Source.CLI, **fields}
    with pytest.raises(ValueError) as refused:
        store.switch_on(scope, mode, **values)  # type: ignore[arg-type]
    assert str(refused.value) == message
    assert store.windows(T0) == [] and store.history() == []


def test_precedence_across_scopes_in_the_store(store: SqliteMaintenance) -> None:
    store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI)
    store.switch_on(GLOBAL, Mode.CLOSED, by="a", source=Source.CLI, until=T0 + HOUR)
    own_closed = store.switch_on("billing", Mode.CLOSED, by="a", source=Source.CLI, until=T0 + 2 * HOUR)
    meets = store.in_force("support", T0)
    assert meets is not None and (meets.mode, meets.scope) == (Mode.PLANNED, "support")  # planned over closed
    assert store.in_force("billing", T0) == own_closed.maintenance()  # a flow's own over the global one
    assert store.in_force("sales", T0) == Maintenance(Mode.CLOSED, GLOBAL, T0 + HOUR, "", T0)
    fault = store.switch_on(GLOBAL, Mode.EMERGENCY, by="a", source=Source.CLI, reason="outage")
    for flow in ("support", "billing", "sales"):
        assert store.in_force(flow, T0) == fault.maintenance()


def test_status_lists_windows_in_force_in_the_order_they_apply_then_scheduled_ones(store: SqliteMaintenance) -> None:
    later = store.switch_on("support", Mode.EMERGENCY, by="a", source=Source.CLI, starts_at=T0 + 2 * HOUR)
    soon = store.switch_on(GLOBAL, Mode.PLANNED, by="a", source=Source.CLI, starts_at=T0 + HOUR)
    closed = store.switch_on("billing", Mode.CLOSED, by="a", source=Source.CLI, until=T0 + HOUR)
    planned = store.switch_on("support", Mode.PLANNED, by="a", source=Source.CLI)
    emergency = store.switch_on(GLOBAL, Mode.EMERGENCY, by="a", source=Source.CLI)
    assert store.status(T0) == [emergency, planned, closed, soon, later]


def test_history_is_newest_first_filtered_by_scope_and_limited(store: SqliteMaintenance, clock: Clock) -> None:
    for minute in range(5):
        clock.now = T0 + dt.timedelta(minutes=minute)
        store.switch_on("support" if minute % 2 else GLOBAL, Mode.PLANNED, by=f"op{minute}", source=Source.CLI)
    assert [entry.by for entry in store.history(limit=3)] == ["op4", "op4", "op3"]  # on + off (replaced) at 4
    assert {entry.scope for entry in store.history("support")} == {"support"}
    assert [(e.action, e.by) for e in store.history(GLOBAL)] == [
        ("on", "op4"), ("off", "op4"), ("on", "op2"), ("off", "op2"), ("on", "op0")
    ]  # fmt: skip
    with pytest.raises(ValueError, match="limit 0 is out of range; give at least 1"):
        store.history(limit=0)


def test_every_mode_and_source_can_be_stored(store: SqliteMaintenance) -> None:
    for index, (mode, source) in enumerate((m, s) for m in Mode for s in Source):
        if source is Source.SCHEDULE:  # from a flow file only
            declared = Window("", f"flow{index}", mode, T0, T0 + HOUR, "", "", source)
            store.sync_declared(f"flow{index}", [declared], by=f"flows/flow{index}.yaml")
        else:
            store.switch_on(f"flow{index}", mode, by="a", source=source, until=T0 + HOUR)
    stored = {(w.mode, w.source) for w in store.windows(T0)}
    assert stored == {(m, s) for m in Mode for s in Source}


def test_windows_survive_a_reopen_of_the_file(store: SqliteMaintenance, database: Database, tmp_path: Path) -> None:
    window = store.switch_on("support", Mode.PLANNED, by="alice", source=Source.CLI, reason="r", until=T0 + HOUR)
    database.close()
    with open_database(tmp_path) as reopened:
        again = SqliteMaintenance(reopened, lambda: T0)
        assert again.windows() == [window]
        assert [entry.action for entry in again.history()] == ["on"]


def test_the_sqlite_store_is_a_maintenance_store(database: Database) -> None:
    store: MaintenanceStore = SqliteMaintenance(database)  # mypy checks the protocol here
    assert store.status() == []
    assert store.now().tzinfo is dt.UTC


RACING_OPERATOR = textwrap.dedent(
    """
    import datetime as dt
    import sys
    from pathlib import Path
    from ivrkit.maintenance.model import Mode, Source
    from ivrkit.store import SqliteMaintenance, open_database

    with open_database(Path(sys.argv[1])) as db:
        store = SqliteMaintenance(db)
        print("ready", flush=True)
        sys.stdin.readline()
        for index in range(20):
            window = store.switch_on("support", Mode.PLANNED, by=sys.argv[2], source=Source.CLI, reason=str(index))
            store.expire(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
            print(window.id, flush=True)
    """
)


def test_two_operators_switching_at_once_leave_one_running_window_and_a_complete_trail(tmp_path: Path) -> None:
    with open_database(tmp_path) as database:
        store = SqliteMaintenance(database)
        store.switch_on("other", Mode.CLOSED, by="x", source=Source.CLI, until=dt.datetime.now(dt.UTC) + HOUR)
        outputs = run_together(RACING_OPERATOR, [str(tmp_path), "alice"], [str(tmp_path), "bob"])
        made = [line for out in outputs for line in out.split()]
        assert len(made) == 40
        running = store.windows(include_future=False)
        assert [w.scope for w in running] == ["other", "support"]
        history = store.history("support", limit=1000)
        assert [e.action for e in history].count("on") == 40
        assert [e.action for e in history].count("off") == 39  # each replaced exactly once
        # the other flow's window expired (by the racing processes' expire) exactly once
        assert [e.action for e in store.history("other")] == ["expired", "on"]


# -- windows declared in flow files ---------------------------------------------------------------------------

FILE = "flows/support.yaml"
BERLIN = dt.timezone(dt.timedelta(hours=1))


def declared(mode: str, start: dt.datetime, end: dt.datetime, reason: str = "", flow: str = "support") -> Window:
    """A window as the loader reads it from a flow file (its id and by are the loader's; the store makes its own)."""
    return Window(f"{flow}#1", flow, Mode(mode), start, end, reason, "flow file", Source.SCHEDULE)


def test_declared_windows_are_stored_once_by_the_flow_file_and_audited(store: SqliteMaintenance) -> None:
    upgrade = declared("planned", T0 + 14 * HOUR, T0 + 18 * HOUR, "database upgrade")
    closure = declared("closed", T0 - HOUR, T0 + 2 * HOUR, "team day")  # in force already
    changes = store.sync_declared("support", [upgrade, closure], by=FILE)
    upgrade_id = declared_id("support", Mode.PLANNED, upgrade.starts_at, upgrade.ends_at, "database upgrade")
    closure_id = declared_id("support", Mode.CLOSED, closure.starts_at, closure.ends_at, "team day")
    stored_closure = Window(closure_id, "support", Mode.CLOSED, T0 - HOUR, T0 + 2 * HOUR, "team day", FILE,
                            Source.SCHEDULE)  # fmt: skip
    stored_upgrade = Window(upgrade_id, "support", Mode.PLANNED, T0 + 14 * HOUR, T0 + 18 * HOUR, "database upgrade",
                            FILE, Source.SCHEDULE)  # fmt: skip
    assert changes == DeclaredChanges(added=(stored_closure, stored_upgrade)) and changes.changed
    assert store.status(T0) == [stored_closure, stored_upgrade]
    assert store.in_force("support", T0) == Maintenance(Mode.CLOSED, "support", T0 + 2 * HOUR, "team day", T0 - HOUR)
    assert list(reversed(store.history())) == [
        AuditEntry(T0, "on", "support", Mode.CLOSED, FILE, Source.SCHEDULE, "team day", T0 + 2 * HOUR,
                   detail="from 2027-01-15 07:00 UTC", window_id=closure_id),
        AuditEntry(T0, "scheduled", "support", Mode.PLANNED, FILE, Source.SCHEDULE, "database upgrade",
                   T0 + 18 * HOUR, detail="starts 2027-01-15 22:00 UTC", window_id=upgrade_id),
    ]  # fmt: skip
    # the same file again, read in another process or with its times in Berlin: nothing to write
    again = replace(upgrade, starts_at=upgrade.starts_at.astimezone(BERLIN), id="other", by="x")
    assert store.sync_declared("support", [closure, again, upgrade], by=FILE) == DeclaredChanges()
    assert len(store.history()) == 2 and store.windows(T0) == [stored_closure, stored_upgrade]


def test_a_declared_window_starts_and_ends_in_the_history_like_any_scheduled_one(
    store: SqliteMaintenance, clock: Clock
) -> None:
    (window,) = store.sync_declared("support", [declared("planned", T0 + HOUR, T0 + 2 * HOUR, "upgrade")],
                                    by=FILE).added  # fmt: skip
    clock.now = T0 + 3 * HOUR
    assert store.start_due() == [window] and store.expire() == [window]
    assert [(e.at, e.action, e.by, e.source, e.detail) for e in store.history()] == [
        (T0 + 2 * HOUR, "expired", "system", Source.SCHEDULE, ""),
        (T0 + HOUR, "on", "system", Source.SCHEDULE, f"scheduled by {FILE} (schedule)"),
        (T0, "scheduled", FILE, Source.SCHEDULE, "starts 2027-01-15 09:00 UTC"),
    ]
    assert store.sync_declared("support", [], by=FILE) == DeclaredChanges()  # over: nothing to cancel


def test_a_window_taken_out_of_the_file_is_cancelled_and_stored_again_when_written_back(
    store: SqliteMaintenance, clock: Clock
) -> None:
    running = declared("emergency", T0 - HOUR, T0 + 5 * HOUR, "carrier fault")
    later = declared("planned", T0 + 10 * HOUR, T0 + 12 * HOUR, "release")
    first, second = store.sync_declared("support", [running, later], by=FILE).added
    clock.now = T0 + HOUR
    changes = store.sync_declared("support", [], by=FILE)
    assert changes.removed == (replace(first, ended_at=clock.now), replace(second, ended_at=clock.now))
    assert store.windows(clock.now) == [] and store.in_force("support", clock.now) is None
    assert [(e.action, e.by, e.source, e.reason, e.detail, e.window_id) for e in store.history()[:2]] == [
        ("off", FILE, Source.SCHEDULE, "removed from the flow file", "cancelled before its start", second.id),
        ("off", FILE, Source.SCHEDULE, "removed from the flow file", "", first.id),
    ]
    assert store.sync_declared("support", [], by=FILE) == DeclaredChanges()
    clock.now = T0 + 2 * HOUR
    assert store.sync_declared("support", [later], by="flows/renamed.yaml").added == (
        replace(second, by="flows/renamed.yaml"),
    )  # the same window: the same id, scheduled again
    assert store.history()[0] == AuditEntry(
        clock.now, "scheduled", "support", Mode.PLANNED, "flows/renamed.yaml", Source.SCHEDULE, "release",
        T0 + 12 * HOUR, detail="declared again; starts 2027-01-15 18:00 UTC", window_id=second.id,
    )  # fmt: skip
    clock.now = T0 + 11 * HOUR
    assert store.start_due() == [replace(second, by="flows/renamed.yaml")]  # its start is recorded as usual
    assert store.in_force("support", clock.now) is not None


def test_a_changed_window_is_a_new_one(store: SqliteMaintenance) -> None:
    (old,) = store.sync_declared("support", [declared("planned", T0 - HOUR, T0 + HOUR, "upgrade")], by=FILE).added
    changes = store.sync_declared("support", [declared("planned", T0 - HOUR, T0 + 3 * HOUR, "upgrade")], by=FILE)
    (new,) = changes.added
    assert changes.removed == (replace(old, ended_at=T0),) and new.id != old.id
    assert store.in_force("support", T0) == Maintenance(Mode.PLANNED, "support", T0 + 3 * HOUR, "upgrade", T0 - HOUR)
    assert [(e.action, e.window_id) for e in store.history()] == [("off", old.id), ("on", new.id), ("on", old.id)]


def test_windows_of_the_files_past_are_not_stored(store: SqliteMaintenance) -> None:
    past = declared("planned", T0 - 3 * HOUR, T0 - HOUR, "last week's upgrade")
    assert store.sync_declared("support", [past], by=FILE) == DeclaredChanges()
    assert store.windows(T0 - 2 * HOUR) == [] and store.history() == []


def test_declared_windows_and_operators_windows_leave_each_other_alone(
    store: SqliteMaintenance, clock: Clock
) -> None:
    operator = store.switch_on("support", Mode.PLANNED, by="alice", source=Source.CLI, reason="hotfix")
    tripped = store.switch_on("support", Mode.EMERGENCY, by="system", source=Source.BREAKER, reason="300 calls")
    other = store.sync_declared("billing", [declared("closed", T0, T0 + HOUR, flow="billing")], by="flows/b.yaml")
    clock.now = T0 + dt.timedelta(minutes=5)
    (own,) = store.sync_declared("support", [declared("planned", T0 - HOUR, T0 + 2 * HOUR, "upgrade")],
                                 by=FILE).added  # fmt: skip
    assert store.replaced(own.id) == [] and store.windows(clock.now) == [own, operator, tripped, *other.added]
    meets = store.in_force("support", clock.now)
    assert meets is not None and meets.mode is Mode.EMERGENCY  # emergency first
    store.cancel(tripped.id, by="alice", source=Source.CLI)
    assert store.in_force("support", clock.now) == operator.maintenance()  # of the two planned, the later start
    # operators' switches do not reach the window the file declares
    assert store.switch_off("support", by="alice", source=Source.CLI) == [replace(operator, ended_at=clock.now)]
    assert store.in_force("support", clock.now) == own.maintenance()
    assert store.switch_off("support", by="alice", source=Source.CLI) == []
    newer = store.switch_on("support", Mode.PLANNED, by="bob", source=Source.API)
    assert store.replaced(newer.id) == []
    with pytest.raises(WindowDeclared) as refused:
        store.cancel(own.id, by="alice", source=Source.CLI)
    assert str(refused.value) == (
        f"maintenance window {own.id} is declared in flows/support.yaml: take it out of that file (or change its "
        "`until`) to end it; a running server stores the change when it reloads the file"
    )
    # and the file's changes do not reach operators' windows, nor other flows' declared ones
    assert store.sync_declared("support", [], by=FILE).removed == (replace(own, ended_at=clock.now),)
    assert store.windows(clock.now) == [*other.added, newer]
    assert [e.action for e in store.history("support")][:3] == ["off", "on", "off"]


def test_windows_from_the_schedule_come_from_flow_files_only(store: SqliteMaintenance) -> None:
    with pytest.raises(ValueError) as refused:
        store.switch_on("support", Mode.PLANNED, by="alice", source=Source.SCHEDULE)
    assert str(refused.value) == (
        "windows from the schedule are declared in a flow file (`maintenance: windows:`) and stored with "
        "sync_declared; switch on from cli, api or breaker"
    )


@pytest.mark.parametrize(
    ("flow", "window", "message"),
    [
        (GLOBAL, declared("planned", T0, T0 + HOUR, flow=GLOBAL),
         "a flow file declares windows of its own flow, not global ones; give the flow's name"),
        ("support", declared("planned", T0, T0 + HOUR, flow="billing"),
         "window billing#1 is a window of 'billing', not of 'support'"),
        ("support", replace(declared("planned", T0, T0 + HOUR), ends_at=None),
         "the window from 2027-01-15 08:00 UTC has no end; a declared window has an `until`"),
        ("support", declared("planned", T0, T0 - HOUR),
         "the end 2027-01-15 07:00 UTC is not after the start 2027-01-15 08:00 UTC; give a later end"),
        ("support", declared("planned", dt.datetime(2027, 1, 15, 9, 0), T0 + HOUR),
         "the start 2027-01-15T09:00:00 has no time zone; give an aware datetime (e.g. with tz=UTC)"),
    ],
)  # fmt: skip
def test_declared_windows_that_make_no_sense_are_refused_and_nothing_is_written(
    store: SqliteMaintenance, flow: str, window: Window, message: str
) -> None:
    good = declared("closed", T0, T0 + HOUR, flow=flow)
    with pytest.raises(ValueError) as refused:
        store.sync_declared(flow, [good, window], by=FILE)
    assert str(refused.value) == message
    assert store.windows(T0) == [] and store.history() == []


RACING_RELOAD = textwrap.dedent(
    """
    import datetime as dt
    import sys
    from pathlib import Path
    from ivrkit.maintenance.model import Mode, Source, Window
    from ivrkit.store import SqliteMaintenance, open_database

    day = dt.timedelta(days=1)
    start = dt.datetime(2999, 1, 1, tzinfo=dt.timezone.utc)
    windows = [Window("", "support", Mode.PLANNED, start + n * day, start + n * day + day / 12, f"upgrade {n}", "",
                      Source.SCHEDULE) for n in range(10)]
    with open_database(Path(sys.argv[1])) as db:
        store = SqliteMaintenance(db)
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in range(5):
            changes = store.sync_declared("support", windows, by=sys.argv[2])
            print(len(changes.added), flush=True)
    """
)


def test_a_server_and_a_dispatcher_loading_one_file_at_once_store_each_window_once(tmp_path: Path) -> None:
    with open_database(tmp_path) as database:
        store = SqliteMaintenance(database)
        outputs = run_together(RACING_RELOAD, [str(tmp_path), FILE], [str(tmp_path), FILE])
        assert sum(int(count) for out in outputs for count in out.split()) == 10
        assert len(store.windows()) == 10
        assert [e.action for e in store.history("support")] == ["scheduled"] * 10
