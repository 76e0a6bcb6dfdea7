"""``ivrkit maintenance on|off|status|history`` on a real store file, in-process (with a fixed clock, in Berlin
time) and once as a separate process beside this one (as an operator runs it next to a live server)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.cli import main
from ivrkit.cli import maintenance as command
from ivrkit.maintenance.model import GLOBAL, Maintenance, Mode, Source, Window
from ivrkit.store import Database, SqliteMaintenance, open_database
from tests.hosttime import host_timezone

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)  # 11:00 in Berlin
HOUR = dt.timedelta(hours=1)


@pytest.fixture(autouse=True)
def berlin_time() -> Iterator[None]:
    """Times without an offset, and text output, are in the host's time zone: pin one."""
    with host_timezone("Europe/Berlin"):
        yield


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(command, "clock", clock)
    return clock


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("IVRKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("IVRKIT_FLOWS", "flows")  # relative to the working directory, as an operator types it
    monkeypatch.chdir(tmp_path)
    flows = tmp_path / "flows"
    flows.mkdir()
    for name in ("support", "billing"):
        (flows / f"{name}.yaml").write_text(f"flow: {name}\nstart: bye\nsteps:\n  bye: {{hangup: true}}\n")
    return tmp_path / "state"


@pytest.fixture
def database(data_dir: Path) -> Iterator[Database]:
    with open_database(data_dir) as database:
        yield database


@pytest.fixture
def store(database: Database, clock: Clock) -> SqliteMaintenance:
    return SqliteMaintenance(database, clock)


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *argv: str) -> tuple[int, str, str]:
    status = main(["maintenance", *argv, "--data-dir", str(data_dir)])
    out, err = capsys.readouterr()
    return status, out, err


def test_on_puts_a_flow_into_maintenance_until_a_time_and_records_who_and_why(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, data_dir, "on", "--mode", "planned", "--flow", "support", "--until", "+2h",
                           "--reason", "database upgrade", "--by", "alice")  # fmt: skip
    assert (status, err) == (0, "")
    (window,) = store.windows()
    assert out == f"support: planned maintenance from now until 2026-11-23 13:00 CET (window {window.id})\n"
    assert store.in_force("support") == Maintenance(Mode.PLANNED, "support", NOW + 2 * HOUR, "database upgrade", NOW)
    (entry,) = store.history()
    assert (entry.action, entry.by, entry.source, entry.reason) == ("on", "alice", Source.CLI, "database upgrade")


def test_a_time_without_offset_is_the_hosts_local_time_and_one_with_an_offset_is_kept(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, data_dir, "on", "--mode", "closed", "--flow", "support", "--until", "2026-11-23T14:00",
               "--reason", "team meeting", "--by", "alice")[0] == 0  # fmt: skip
    assert run(capsys, data_dir, "on", "--mode", "closed", "--flow", "billing", "--until", "2026-11-23T14:00Z",
               "--reason", "team meeting", "--by", "alice")[0] == 0  # fmt: skip
    ends = {window.scope: window.ends_at for window in store.windows()}
    assert ends == {
        "support": dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC),  # 14:00 in Berlin
        "billing": dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC),
    }


@pytest.mark.parametrize(
    ("argv", "until"),
    [
        (["--until", "14:30"], dt.datetime(2026, 11, 23, 13, 30, tzinfo=dt.UTC)),  # today, Berlin time
        (["--until", "08:00"], dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC)),  # passed today: tomorrow
        (["--until", "11:00"], dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)),  # now is not later than now
        (["--from", "2026-11-25T20:00", "--until", "08:00"], dt.datetime(2026, 11, 26, 7, 0, tzinfo=dt.UTC)),
    ],
)
def test_a_time_of_day_is_the_next_one_in_local_time(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], until: dt.datetime
) -> None:
    status, _, err = run(capsys, data_dir, "on", "--mode", "closed", "--flow", "support", *argv, "--reason", "r",
                         "--by", "alice")  # fmt: skip
    assert (status, err) == (0, "")
    assert [window.ends_at for window in store.windows()] == [until]


def test_a_scheduled_window_starts_later_and_a_duration_in_until_counts_from_its_start(
    store: SqliteMaintenance, clock: Clock, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, data_dir, "on", "--mode", "planned", "--global", "--from", "2026-12-01T22:00",
                         "--until", "+4h", "--reason", "data centre move", "--by", "carol")  # fmt: skip
    assert status == 0
    (window,) = store.windows()
    assert out == (
        f"every flow: planned maintenance scheduled from 2026-12-01 22:00 CET until 2026-12-02 02:00 CET "
        f"(window {window.id})\n"
    )
    assert (window.scope, window.starts_at, window.ends_at) == (
        GLOBAL,
        dt.datetime(2026, 12, 1, 21, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 2, 1, 0, tzinfo=dt.UTC),
    )
    assert store.in_force("support") is None
    assert store.history()[0].action == "scheduled"
    clock.now = dt.datetime(2026, 12, 1, 22, 0, tzinfo=dt.UTC)
    # the start is recorded, at its own time, once someone looks
    status, out, _ = run(capsys, data_dir, "history", "--limit", "1")
    assert out.splitlines()[:2] == [
        "AT (CET)          ACTION  SCOPE   MODE     UNTIL             BY      SOURCE    REASON",
        "2026-12-01 22:00  on      global  planned  2026-12-02 02:00  system  schedule  data centre move (scheduled by "
        "carol (cli))",
    ]


def test_a_new_window_replaces_the_running_one_and_says_so(
    store: SqliteMaintenance, clock: Clock, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = store.switch_on("support", Mode.PLANNED, by="alice", source=Source.CLI, reason="upgrade")
    clock.now = NOW + HOUR
    status, out, _ = run(capsys, data_dir, "on", "--mode", "planned", "--flow", "support", "--until", "+1h",
                         "--reason", "takes longer", "--by", "bob")  # fmt: skip
    assert status == 0
    (second,) = store.windows()
    assert out.splitlines() == [
        f"support: planned maintenance from now until 2026-11-23 13:00 CET (window {second.id})",
        f"replaced window {first.id} (planned since 2026-11-23 11:00 CET, by alice)",
    ]


def test_on_notes_when_another_window_takes_precedence(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.switch_on(GLOBAL, Mode.EMERGENCY, by="bob", source=Source.CLI, reason="carrier outage")
    status, out, _ = run(capsys, data_dir, "on", "--mode", "planned", "--flow", "support", "--reason", "upgrade",
                         "--by", "alice")  # fmt: skip
    assert status == 0
    note = "note: callers of support hear global emergency maintenance first: it takes precedence"
    assert out.splitlines()[-1] == note


def test_closed_needs_until_and_nothing_is_written(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, data_dir, "on", "--mode", "closed", "--flow", "support", "--reason", "r",
                           "--by", "alice")  # fmt: skip
    assert (status, out) == (2, "")
    assert err == (
        "ivrkit maintenance: closed needs --until: callers hear when you reopen (e.g. --until 2026-12-01T14:00)\n"
    )
    assert store.windows() == [] and store.history() == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--flow", "support", "--until", "2h"],
         "time '2h' is neither ISO 8601 (2026-12-01T14:00) nor a time of day (14:00) nor a duration (+2h, +30m, "
         "+1d, +1h30m)"),
        (["--flow", "support", "--until", "+2x"], "duration '+2x' is not understood; write +2h, +30m, +1d or +1h30m"),
        (["--flow", "support", "--until", "2026-11-23T10:00"],
         "the end 2026-11-23 09:00 UTC is not in the future (now 2026-11-23 10:00 UTC); give a later end"),
        (["--flow", "sup port"], "'sup port' is not a flow name: letters, digits, '_' and '-', as in the flow's "
         "`flow:` key"),
        (["--flow", "suport"], "no flow named 'suport' in flows (flows: billing, support); check --flow, or pass "
         "--flows"),
        (["--flow", "support", "--reason", " "], "say why: a non-empty --reason, recorded in the audit trail"),
        (["--flow", "support", "--by", " "],
         "say who makes the change: a non-empty --by (your name or ticket), recorded in the audit trail"),
    ],
)  # fmt: skip
def test_bad_on_options_exit_2_saying_what_to_write(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    defaults = {"--reason": "r", "--by": "alice"}
    extra = [item for key, value in defaults.items() if key not in argv for item in (key, value)]
    status, out, err = run(capsys, data_dir, "on", "--mode", "planned", *argv, *extra)
    assert (status, out, err) == (2, "", f"ivrkit maintenance: {message}\n")
    assert store.history() == []


def test_without_a_flow_directory_the_name_is_taken_with_a_note(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVRKIT_FLOWS", str(data_dir / "nowhere"))
    status, _, err = run(capsys, data_dir, "on", "--mode", "planned", "--flow", "sales", "--reason", "r", "--by", "a")
    assert status == 0
    assert err == (
        f"note: 'sales' not checked against the flows: no flow directory {data_dir / 'nowhere'} (pass --flows or "
        "set $IVRKIT_FLOWS)\n"
    )
    assert [window.scope for window in store.windows()] == ["sales"]


def test_a_global_emergency_needs_a_second_confirmation(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ("on", "--mode", "emergency", "--global", "--reason", "carrier outage", "--by", "bob")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: nobody to ask
    assert run(capsys, data_dir, *argv) == (
        2,
        "",
        "ivrkit maintenance: a global emergency stops every flow: pass --yes to confirm\n",
    )

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("no\n"))
    status, out, err = run(capsys, data_dir, *argv)
    assert (status, out) == (1, "a global emergency stops every flow; type yes to switch it on: ")
    assert err == "ivrkit maintenance: not confirmed; nothing changed\n"
    assert store.history() == []

    monkeypatch.setattr(sys, "stdin", Terminal("yes\n"))
    status, out, _ = run(capsys, data_dir, *argv)
    assert status == 0
    assert out.startswith("a global emergency stops every flow; type yes to switch it on: every flow: emergency ")
    assert store.in_force("support") == Maintenance(Mode.EMERGENCY, GLOBAL, None, "carrier outage", NOW)

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status, out, _ = run(capsys, data_dir, *argv, "--yes")
    assert status == 0 and out.startswith("every flow: emergency maintenance from now until switched off")


def test_off_ends_the_flows_maintenance_and_notes_a_global_window_still_in_force(
    store: SqliteMaintenance, clock: Clock, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = store.switch_on("support", Mode.PLANNED, by="alice", source=Source.CLI, reason="upgrade")
    store.switch_on(GLOBAL, Mode.CLOSED, by="bob", source=Source.API, reason="holiday", until=NOW + 9 * HOUR)
    clock.now = NOW + HOUR
    status, out, err = run(capsys, data_dir, "off", "--flow", "support", "--by", "carol", "--reason", "done")
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"support: planned maintenance switched off; it ran since 2026-11-23 11:00 CET, switched on by alice "
        f"(window {own.id})",
        "note: callers of support still meet global closed maintenance",
    ]
    entry = store.history("support")[0]
    assert (entry.action, entry.by, entry.source, entry.reason) == ("off", "carol", Source.CLI, "done")


def test_off_with_nothing_to_end_exits_1_saying_what_is_in_force(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.switch_on(GLOBAL, Mode.EMERGENCY, by="bob", source=Source.CLI)
    store.switch_on("support", Mode.PLANNED, by="bob", source=Source.CLI, starts_at=NOW + HOUR)
    status, out, err = run(capsys, data_dir, "off", "--flow", "support", "--by", "alice")
    assert (status, out) == (1, "")
    assert err == (
        "ivrkit maintenance: support is not in maintenance: nothing to switch off; a global window is in force: "
        "switch it off with --global; scheduled windows stay until they start: cancel one with --id; "
        "`ivrkit maintenance status` shows what is in force\n"
    )
    status, _, err = run(capsys, data_dir, "off", "--global", "--mode", "planned", "--by", "alice")
    assert status == 1
    assert err == (
        "ivrkit maintenance: no global planned maintenance is in force: nothing to switch off; another mode is in "
        "force: leave out --mode; `ivrkit maintenance status` shows what is in force\n"
    )
    assert len(store.history()) == 2  # the two switch-ons, nothing more


def test_off_by_id_cancels_a_scheduled_window(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = store.switch_on("billing", Mode.PLANNED, by="bob", source=Source.CLI, starts_at=NOW + 24 * HOUR)
    status, out, _ = run(capsys, data_dir, "off", "--id", window.id, "--by", "alice", "--reason", "postponed")
    assert status == 0
    assert out == (
        f"billing: cancelled the planned maintenance scheduled from 2026-11-24 11:00 CET (window {window.id})\n"
    )
    assert store.windows() == []
    status, _, err = run(capsys, data_dir, "off", "--id", window.id, "--by", "alice")
    assert (status, err) == (
        1,
        f"ivrkit maintenance: no running or scheduled maintenance window has the id {window.id!r}; "
        "`ivrkit maintenance status` shows them with their ids\n",
    )


def test_windows_declared_in_a_flow_file_are_listed_and_recorded_but_not_switched_off(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade = Window("", "support", Mode.PLANNED, NOW - HOUR, NOW + HOUR, "database upgrade", "", Source.SCHEDULE)
    (window,) = store.sync_declared("support", [upgrade], by="flows/support.yaml").added
    hotfix = store.switch_on("support", Mode.PLANNED, by="alice", source=Source.CLI, reason="hotfix")
    assert run(capsys, data_dir, "status")[1].splitlines()[1:3] == [
        f"{hotfix.id}  in force  support  planned  2026-11-23 11:00  switched off      alice               cli       "
        "hotfix",
        f"{window.id}  in force  support  planned  2026-11-23 10:00  2026-11-23 12:00  flows/support.yaml  schedule  "
        "database upgrade",
    ]  # the operator's window replaced nothing
    status, out, _ = run(capsys, data_dir, "off", "--flow", "support", "--by", "alice")
    assert status == 0 and out.splitlines() == [
        f"support: planned maintenance switched off; it ran since 2026-11-23 11:00 CET, switched on by alice "
        f"(window {hotfix.id})",
        "note: callers of support still meet planned maintenance of support",
    ]
    status, out, err = run(capsys, data_dir, "off", "--flow", "support", "--by", "alice")
    assert (status, out, err) == (1, "", (
        "ivrkit maintenance: support's planned maintenance is declared in flows/support.yaml: nothing to switch "
        "off; take its window out of that file to end it (a running server stores the change when it reloads the "
        "file); `ivrkit maintenance status` shows what is in force\n"))  # fmt: skip
    status, out, err = run(capsys, data_dir, "off", "--id", window.id, "--by", "alice")
    assert (status, out, err) == (1, "", (
        f"ivrkit maintenance: maintenance window {window.id} is declared in flows/support.yaml: take it out of "
        "that file (or change its `until`) to end it; a running server stores the change when it reloads the "
        "file\n"))  # fmt: skip
    history = run(capsys, data_dir, "history")[1].splitlines()
    assert history[-3:] == [
        "2026-11-23 11:00  on      support  planned  2026-11-23 12:00  flows/support.yaml  schedule  "
        "database upgrade (from 2026-11-23 09:00 UTC)",
        "",
        "3 changes, newest first",
    ]


def test_off_json_is_what_the_admin_api_answers(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = store.switch_on("support", Mode.EMERGENCY, by="bob", source=Source.CLI, reason="fault")
    status, out, _ = run(capsys, data_dir, "off", "--flow", "support", "--by", "alice", "--json")
    assert status == 0
    assert json.loads(out) == {
        "ended": [
            {"id": window.id, "flow": "support", "mode": "emergency", "state": "ended", "from": "2026-11-23T10:00:00Z",
             "until": None, "reason": "fault", "by": "bob", "source": "cli", "ended_at": "2026-11-23T10:00:00Z"}
        ],
        "count": 1,
    }  # fmt: skip


def test_status_shows_windows_in_force_in_the_order_they_apply_then_scheduled_ones(
    store: SqliteMaintenance, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, data_dir, "status") == (0, "no maintenance: no window is in force or scheduled\n", "")
    later = store.switch_on("billing", Mode.PLANNED, by="carol", source=Source.CLI, reason="release",
                            starts_at=NOW + 24 * HOUR, until=NOW + 26 * HOUR)  # fmt: skip
    planned = store.switch_on("support", Mode.PLANNED, by="alice", source=Source.CLI, reason="upgrade")
    emergency = store.switch_on(GLOBAL, Mode.EMERGENCY, by="bob", source=Source.API, reason="carrier outage",
                                until=NOW + 2 * HOUR)  # fmt: skip
    status, out, _ = run(capsys, data_dir, "status")
    assert status == 0
    assert out.splitlines() == [
        "ID            STATE      SCOPE    MODE       FROM (CET)        UNTIL             BY     SOURCE  REASON",
        f"{emergency.id}  in force   global   emergency  2026-11-23 11:00  2026-11-23 13:00  bob    api     "
        "carrier outage",
        f"{planned.id}  in force   support  planned    2026-11-23 11:00  switched off      alice  cli     upgrade",
        f"{later.id}  scheduled  billing  planned    2026-11-24 11:00  2026-11-24 13:00  carol  cli     release",
        "",
        "2 in force, in the order they apply; 1 scheduled",
    ]
    listed = json.loads(run(capsys, data_dir, "status", "--json")[1])
    assert listed["now"] == "2026-11-23T10:00:00Z"
    assert [(w["id"], w["flow"], w["state"]) for w in listed["windows"]] == [
        (emergency.id, None, "in-force"), (planned.id, "support", "in-force"), (later.id, "billing", "scheduled")
    ]  # fmt: skip


def test_a_timed_window_is_gone_after_its_end_and_its_expiry_is_in_the_history(
    store: SqliteMaintenance, clock: Clock, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.switch_on("support", Mode.CLOSED, by="alice", source=Source.CLI, reason="meeting", until=NOW + HOUR)
    clock.now = NOW + 3 * HOUR
    assert run(capsys, data_dir, "status") == (0, "no maintenance: no window is in force or scheduled\n", "")
    status, out, _ = run(capsys, data_dir, "history")
    assert status == 0
    assert out.splitlines() == [
        "AT (CET)          ACTION   SCOPE    MODE    UNTIL             BY      SOURCE    REASON",
        "2026-11-23 12:00  expired  support  closed  2026-11-23 12:00  system  schedule  meeting",
        "2026-11-23 11:00  on       support  closed  2026-11-23 12:00  alice   cli       meeting",
        "",
        "2 changes, newest first",
    ]


def test_history_filters_by_flow_or_global_limits_and_gives_json(
    store: SqliteMaintenance, clock: Clock, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.switch_on("support", Mode.PLANNED, by="alice", source=Source.CLI, reason="upgrade")
    clock.now = NOW + HOUR
    store.switch_on(GLOBAL, Mode.EMERGENCY, by="bob", source=Source.API, reason="outage")
    clock.now = NOW + 2 * HOUR
    store.switch_off(GLOBAL, by="bob", source=Source.API)
    assert run(capsys, data_dir, "history", "--flow", "billing") == (
        0,
        "no maintenance changes recorded for billing\n",
        "",
    )
    out = run(capsys, data_dir, "history", "--global")[1]
    assert [line.split()[2] for line in out.splitlines()[1:3]] == ["off", "on"]
    assert out.splitlines()[-1] == "2 changes, newest first"
    out = run(capsys, data_dir, "history", "--flow", "support")[1]
    assert out.splitlines()[-1] == "1 change, newest first"
    out = run(capsys, data_dir, "history", "--limit", "2")[1]
    assert out.splitlines()[-1] == "2 changes, newest first; there may be more: pass --limit (at most 1000)"
    listed = json.loads(run(capsys, data_dir, "history", "--json")[1])
    assert (listed["count"], listed["limit"], listed["truncated"]) == (3, 100, False)
    assert listed["entries"][0] == {
        "at": "2026-11-23T12:00:00Z", "action": "off", "flow": None, "mode": "emergency", "until": None,
        "by": "bob", "source": "api", "reason": "", "detail": "", "window": listed["entries"][1]["window"],
    }  # fmt: skip
    status, out, err = run(capsys, data_dir, "history", "--limit", "0")
    assert (status, out, err) == (2, "", "ivrkit maintenance: limit 0 is out of range; give 1 to 1000\n")


def test_required_options_are_named_by_the_usage(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, missing in [
        (["on", "--flow", "support", "--reason", "r", "--by", "a"], "--mode"),
        (["on", "--mode", "planned", "--reason", "r", "--by", "a"], "one of the arguments --flow --global"),
        (["on", "--mode", "planned", "--flow", "support", "--by", "a"], "--reason"),
        (["off", "--flow", "support"], "--by"),
        (["off", "--by", "a"], "one of the arguments --flow --global --id"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(["maintenance", *argv, "--data-dir", str(data_dir)])
        assert exited.value.code == 2
        assert missing in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["maintenance", "on", "--mode", "planned", "--flow", "a", "--global", "--reason", "r", "--by", "a"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["maintenance"])
    assert "{on,off,status,history}" in capsys.readouterr().err


def test_a_directory_without_a_store_is_an_error_and_stays_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IVRKIT_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["maintenance", "status"])
    assert exited.value.code == (
        "ivrkit maintenance: no store in .ivrkit (no ivrkit.sqlite3 there): pass the server's data directory with "
        "--data-dir or $IVRKIT_DATA_DIR"
    )
    assert not (tmp_path / ".ivrkit").exists()


def test_a_store_that_fails_exits_1_saying_so(
    store: SqliteMaintenance, database: Database, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with database.transaction() as conn:
        conn.execute("DROP TABLE maintenance_audit")
    status, out, err = run(capsys, data_dir, "history")
    assert (status, out) == (1, "")
    assert err == (
        f"ivrkit maintenance: the store in {data_dir} failed: no such table: maintenance_audit; try again, and if it "
        f"persists check the file with sqlite3 {data_dir / 'ivrkit.sqlite3'} 'PRAGMA integrity_check'\n"
    )


def test_a_separate_process_switches_on_and_off_and_this_one_sees_it(database: Database, data_dir: Path) -> None:
    """As on a PBX host: the operator's command is its own process on the server's store file (real clock)."""
    store = SqliteMaintenance(database)
    env = {**os.environ, "IVRKIT_DATA_DIR": str(data_dir)}

    def ivrkit(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "import sys; from ivrkit.cli import main; sys.exit(main())", "maintenance", *argv],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip

    switched = ivrkit("on", "--mode", "emergency", "--flow", "support", "--until", "+30m", "--reason", "fault",
                      "--by", "alice")  # fmt: skip
    assert (switched.returncode, switched.stderr) == (0, "")
    (window,) = store.windows()
    assert switched.stdout.startswith("support: emergency maintenance from now until ")
    assert switched.stdout.endswith(f"(window {window.id})\n")
    meets = store.in_force("support")
    assert meets is not None and (meets.mode, meets.reason) == (Mode.EMERGENCY, "fault")
    assert store.history()[0].source is Source.CLI
    ended = ivrkit("off", "--flow", "support", "--by", "alice", "--reason", "fixed")
    assert (ended.returncode, ended.stderr) == (0, "")
    assert store.in_force("support") is None
    assert [entry.action for entry in store.history()] == ["off", "on"]
