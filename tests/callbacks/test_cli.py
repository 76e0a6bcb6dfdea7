"""``ivrkit callbacks list|show|cancel`` on a real store file, in-process and once as a separate process beside
this one (as an operator runs it next to a live server)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivrkit.callbacks.model import Callback, NewCallback, Origin, Result, State
from ivrkit.cli import main
from ivrkit.store import Database, SqliteCallbacks, open_database
from tests.hosttime import host_timezone

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC).timestamp()  # 11:00 in Berlin


@pytest.fixture(autouse=True)
def berlin_time() -> Iterator[None]:
    """Text output is in the host's time zone: pin one."""
    with host_timezone("Europe/Berlin"):
        yield


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("IVRKIT_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "state"


@pytest.fixture
def database(data_dir: Path) -> Iterator[Database]:
    with open_database(data_dir) as database:
        yield database


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database: Database, clock: Clock) -> SqliteCallbacks:
    return SqliteCallbacks(database, clock=clock)


def add(
    store: SqliteCallbacks,
    number: str,
    queue: str = "support",
    at: float = NOW,
    origin: Origin = Origin.REQUEST,
    **fields: Any,
) -> Callback:
    callback, created = store.request(NewCallback(number, queue, "support", origin, at - 120, at, **fields))
    assert created
    return callback


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["callbacks", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_list_shows_a_table_newest_first_in_local_time(
    store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = add(store, "+4930000001", at=NOW)
    b = add(store, "+4940000002", queue="billing", at=NOW + 65, origin=Origin.AUTOMATIC)
    store.start_attempt(a.id, channel_id="ivrkit-cb-1", action_id="x")
    store.finish_attempt(a.id, "ivrkit-cb-1", Result.NO_ANSWER, retry_at=NOW + 600, reason="")
    status, out, err = run(capsys, "list", "--data-dir", str(data_dir))
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "ID                                STATE    QUEUE    NUMBER       ORIGIN     ATTEMPTS  LAST RESULT  "
        "REQUESTED (CET)",
        f"{b.id}  pending  billing  +4940000002  automatic  0         -            2026-11-23 11:01:05",
        f"{a.id}  pending  support  +4930000001  request    1         no-answer    2026-11-23 11:00:00",
        "",
        "2 callbacks, newest first",
    ]


def test_list_filters_by_state_and_queue_and_says_when_nothing_matches(
    store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVRKIT_DATA_DIR", str(data_dir))  # instead of --data-dir
    a = add(store, "+4930000001", at=NOW)
    b = add(store, "+4930000002", at=NOW + 1)
    store.cancel(a.id, by="ops")
    status, out, _ = run(capsys, "list", "--state", "cancelled")
    assert status == 0
    assert a.id in out and b.id not in out
    assert out.splitlines()[-1] == "1 cancelled callback, newest first"
    status, out, _ = run(capsys, "list", "--state", "active", "--queue", "support")
    assert b.id in out and a.id not in out
    assert out.splitlines()[-1] == "1 connected/dialing/pending callback in queue support, newest first"
    assert run(capsys, "list", "--queue", "billing") == (0, "no callbacks in queue billing\n", "")
    assert run(capsys, "list", "--state", "failed,completed") == (0, "no completed/failed callbacks\n", "")


def test_list_says_when_the_limit_may_have_cut_it(
    store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(3):
        add(store, f"+493000000{index}", at=NOW + index)
    status, out, _ = run(capsys, "list", "--data-dir", str(data_dir), "--limit", "2")
    assert status == 0
    assert len(out.splitlines()) == 5  # header, 2 rows, blank, summary
    assert out.splitlines()[-1] == "2 callbacks, newest first; there may be more: pass --limit (at most 1000)"


def test_list_json_is_what_the_admin_api_answers(
    store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = add(store, "+4930000001", reason="billing")
    status, out, _ = run(capsys, "list", "--data-dir", str(data_dir), "--json")
    assert status == 0
    listed = json.loads(out)
    assert (listed["count"], listed["limit"], listed["truncated"]) == (1, 100, False)
    assert listed["callbacks"][0]["id"] == made.id
    assert listed["callbacks"][0]["reason"] == "billing"
    assert listed["callbacks"][0]["requested_at"] == "2026-11-23T10:00:00Z"


def test_bad_list_options_exit_2_naming_what_is_allowed(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open_database(data_dir):
        pass
    status, out, err = run(capsys, "list", "--data-dir", str(data_dir), "--state", "waiting")
    assert (status, out) == (2, "")
    assert err == (
        "ivrkit callbacks: unknown state 'waiting'; states are pending, dialing, connected, completed, failed, "
        "cancelled, active\n"
    )
    status, _, err = run(capsys, "list", "--data-dir", str(data_dir), "--limit", "0")
    assert (status, err) == (2, "ivrkit callbacks: limit 0 is out of range; give 1 to 1000\n")


def test_show_gives_the_callback_and_its_history(
    store: SqliteCallbacks, clock: Clock, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = add(store, "+4930123456", reason="billing", uniqueid="1700000000.7", priority=10)
    clock.now = NOW + 30
    store.start_attempt(made.id, channel_id="ivrkit-cb-1", action_id="a1")
    clock.now = NOW + 60
    store.finish_attempt(made.id, "ivrkit-cb-1", Result.BUSY, retry_at=NOW + 180, reason="Originate reason 5")
    status, out, err = run(capsys, "show", made.id, "--data-dir", str(data_dir))
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"callback {made.id}: pending (times in CET)",
        "  number       +4930123456",
        "  queue        support (flow support, priority 10)",
        "  origin       request, reason billing",
        "  joined       2026-11-23 10:58:00",
        "  requested    2026-11-23 11:00:00 (call 1700000000.7)",
        "  attempts     1, last: busy",
        "  next attempt not before 2026-11-23 11:03:00, once an agent is free in the calling hours",
        "events:",
        "  2026-11-23 11:00:00  - -> pending            requested (request)",
        "  2026-11-23 11:00:30  pending -> dialing      dialling (channel ivrkit-cb-1)",
        "  2026-11-23 11:01:00  dialing -> pending      busy (Originate reason 5); next attempt at "
        "2026-11-23 10:03:00 UTC",
    ]


def test_show_json_has_the_events(store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    made = add(store, "+4930123456")
    status, out, _ = run(capsys, "show", made.id, "--data-dir", str(data_dir), "--json")
    assert status == 0
    detail = json.loads(out)
    assert (detail["id"], detail["state"]) == (made.id, "pending")
    assert detail["events"] == [
        {"at": "2026-11-23T10:00:00Z", "from": None, "to": "pending", "attempt": 0, "reason": "requested (request)"}
    ]


def test_an_unknown_id_exits_1_saying_where_the_ids_are(
    store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["show", "nope"], ["cancel", "nope", "--by", "alice"]):
        status, out, err = run(capsys, *argv, "--data-dir", str(data_dir))
        assert (status, out) == (1, "")
        assert err == "ivrkit callbacks: no callback has the id 'nope'; `ivrkit callbacks list` shows the ids\n"


def test_cancel_cancels_and_records_who_and_why(
    store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = add(store, "+4930123456")
    status, out, err = run(capsys, "cancel", made.id, "--by", "alice", "--reason", "asked by phone", "--data-dir",
                           str(data_dir))  # fmt: skip
    assert (status, err) == (0, "")
    assert out == f"cancelled callback {made.id} (+4930123456, queue support); it was pending\n"
    stored = store.get(made.id)
    assert stored is not None and stored.state is State.CANCELLED
    assert store.events(made.id)[-1].reason == "cancelled by alice (command line): asked by phone"


def test_cancelling_twice_exits_1_with_the_state(
    store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = add(store, "+4930123456")
    assert run(capsys, "cancel", made.id, "--by", "alice", "--data-dir", str(data_dir))[0] == 0
    status, out, err = run(capsys, "cancel", made.id, "--by", "bob", "--data-dir", str(data_dir))
    assert (status, out) == (1, "")
    assert err == (
        f"ivrkit callbacks: callback {made.id} is already cancelled: nothing to cancel "
        f"(`ivrkit callbacks show {made.id}` shows what happened)\n"
    )


def test_cancelling_an_attempt_in_flight_notes_the_call_goes_on(
    store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = add(store, "+4930123456")
    store.start_attempt(made.id, channel_id="ivrkit-cb-1", action_id="a1")
    status, out, _ = run(capsys, "cancel", made.id, "--by", "alice", "--data-dir", str(data_dir))
    assert status == 0
    assert out.splitlines() == [
        f"cancelled callback {made.id} (+4930123456, queue support); it was dialing",
        "note: an attempt was dialing (channel ivrkit-cb-1): no further attempt is made, but a call already in "
        "progress is not hung up",
    ]


def test_cancel_needs_by(store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    made = add(store, "+4930123456")
    with pytest.raises(SystemExit) as exited:
        main(["callbacks", "cancel", made.id, "--data-dir", str(data_dir)])
    assert exited.value.code == 2
    assert "the following arguments are required: --by" in capsys.readouterr().err
    status, _, err = run(capsys, "cancel", made.id, "--by", " ", "--data-dir", str(data_dir))
    assert (status, err) == (
        2,
        "ivrkit callbacks: say who cancels: a non-empty --by (your name or ticket), recorded in the audit trail\n",
    )
    stored = store.get(made.id)
    assert stored is not None and stored.state is State.PENDING


def test_a_directory_without_a_store_is_an_error_and_stays_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IVRKIT_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["callbacks", "list"])
    assert exited.value.code == (
        "ivrkit callbacks: no store in .ivrkit (no ivrkit.sqlite3 there): pass the server's data directory with "
        "--data-dir or $IVRKIT_DATA_DIR"
    )
    assert not (tmp_path / ".ivrkit").exists()  # no new empty store where the operator was wrong


def test_without_an_action_the_usage_names_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["callbacks"])
    assert exited.value.code == 2
    assert "{list,show,cancel}" in capsys.readouterr().err


def test_a_separate_process_cancels_and_this_one_sees_it(store: SqliteCallbacks, data_dir: Path) -> None:
    """As on a PBX host: the operator's command is its own process on the server's store file."""
    made = add(store, "+4930123456")
    other = add(store, "+4930999999", at=NOW + 1)
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from ivrkit.cli import main; sys.exit(main())",
         "callbacks", "cancel", made.id, "--by", "alice", "--reason", "duplicate"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "IVRKIT_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"cancelled callback {made.id} (+4930123456, queue support); it was pending\n"
    cancelled = store.get(made.id)
    assert cancelled is not None and cancelled.state is State.CANCELLED
    assert store.events(made.id)[-1].reason == "cancelled by alice (command line): duplicate"
    assert store.due(NOW + 10) == [store.get(other.id)]  # the other one is still dialled


def test_cancel_json_is_what_the_admin_api_answers(
    store: SqliteCallbacks, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = add(store, "+4930123456")
    store.start_attempt(made.id, channel_id="ivrkit-cb-1", action_id="a1")
    status, out, _ = run(capsys, "cancel", made.id, "--by", "alice", "--json", "--data-dir", str(data_dir))
    assert status == 0
    detail = json.loads(out)
    assert (detail["state"], detail["events"][-1]["reason"]) == ("cancelled", "cancelled by alice (command line)")
    assert detail["note"].startswith("an attempt was dialing (channel ivrkit-cb-1)")


def test_a_store_that_fails_exits_1_saying_so(
    store: SqliteCallbacks, database: Database, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with database.transaction() as conn:
        conn.execute("DROP TABLE callback_events")
        conn.execute("DROP TABLE callbacks")
    status, out, err = run(capsys, "list", "--data-dir", str(data_dir))
    assert (status, out) == (1, "")
    assert err == (
        f"ivrkit callbacks: the store in {data_dir} failed: no such table: callbacks; try again, and if it persists "
        f"check the file with sqlite3 {data_dir / 'ivrkit.sqlite3'} 'PRAGMA integrity_check'\n"
    )
