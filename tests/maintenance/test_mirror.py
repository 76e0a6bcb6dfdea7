"""The AstDB mirror against a real store file and an AstDB that answers as Asterisk 22.10 does (``DBGetTree``
lists ``/<family>/<key>``; ``DBDel`` of a missing key is an error; a user without ``write = system`` is
refused), with a fixed clock: what it writes, what it repairs, when it records starts and ends, how it fails.
"""

from __future__ import annotations

import datetime as dt
import doctest
import logging
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

import ivrkit.maintenance.mirror
from ivrkit.ami.client import AmiConnectionLost, AmiError, HeaderValue, Message
from ivrkit.callbacks.running import AmiSettings
from ivrkit.engine.maintenance import in_force_for
from ivrkit.engine.world import World
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_text
from ivrkit.flow.model import Flow
from ivrkit.maintenance.mirror import AstDbMirror, Write
from ivrkit.maintenance.model import GLOBAL, Maintenance, Mode, Source
from ivrkit.server.listener import ListenerSettings
from ivrkit.server.service import Service, ServiceSettings
from ivrkit.store import SqliteMaintenance, open_database
from ivrkit.store.database import StoreError
from tests.callbacks.test_dispatcher import FakeAmi

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
FAMILY = "ivrkit-maintenance"
SUPPORT = """
flow: support
start: bye
steps:
  bye: {hangup: true}
"""
BILLING = """
flow: billing
timezone: UTC
start: bye
maintenance:
  windows:
    - {mode: planned, from: "2026-11-23T10:30", until: "2026-11-23T11:00", reason: upgrade}
steps:
  bye: {hangup: true}
"""


class FakeAstDb:
    """An AMI link to an AstDB: answers DBGetTree, DBPut and DBDel as Asterisk 22.10 does, logs in on demand."""

    def __init__(self) -> None:
        self.tree: dict[str, str] = {}  # "/family/key" → value
        self.actions: list[tuple[str, dict[str, HeaderValue]]] = []
        self.connected = False
        self.refuse: set[str] = set()  # actions answered "Permission denied"
        self.lose_on: str | None = None  # the connection goes when this action is sent
        self.hooks: list[Callable[[int], None]] = []
        self.generation = 0

    def on_connected(self, hook: Callable[[int], None]) -> Callable[[], None]:
        self.hooks.append(hook)
        return lambda: self.hooks.remove(hook)

    def login(self) -> None:
        self.connected = True
        self.generation += 1
        for hook in self.hooks:
            hook(self.generation)

    def send(self, action: str, /, *, timeout: float | None = None, generation: int | None = None,
             **headers: HeaderValue) -> Message:  # fmt: skip
        return self._answer(action, headers)

    def send_list(self, action: str, /, *, timeout: float | None = None, generation: int | None = None,
                  **headers: HeaderValue) -> Message:  # fmt: skip
        return self._answer(action, headers)

    def _answer(self, action: str, headers: dict[str, HeaderValue]) -> Message:
        if not self.connected:
            raise AmiConnectionLost(f"cannot send AMI action {action!r}: not connected")
        if action == self.lose_on:
            self.connected, self.lose_on = False, None
            raise AmiConnectionLost(f"AMI action {action!r} got no response: Asterisk closed the AMI connection")
        self.actions.append((action, headers))
        if action in self.refuse:
            raise AmiError(f"AMI action {action!r} failed: Permission denied",
                           Message([("Response", "Error"), ("Message", "Permission denied")]))  # fmt: skip
        path = f"/{headers.get('Family')}/{headers.get('Key')}"
        if action == "DBPut":
            self.tree[path] = str(headers["Val"])
            return Message([("Response", "Success"), ("Message", "Updated database successfully")])
        if action == "DBDel":
            if self.tree.pop(path, None) is None:
                raise AmiError(f"AMI action {action!r} failed: Database entry could not be deleted",
                               Message([("Response", "Error"), ("Message", "Database entry could not be deleted")]))
            return Message([("Response", "Success"), ("Message", "Key deleted successfully")])
        if action == "DBGetTree":
            prefix = f"/{headers['Family']}/"
            events = [Message([("Event", "DBGetTreeResponse"), ("Key", key), ("Val", value)])
                      for key, value in sorted(self.tree.items()) if key.startswith(prefix)]  # fmt: skip
            return Message([("Response", "Success"), ("EventList", "start")], events)
        raise AssertionError(f"the mirror sent {action}")

    @property
    def family(self) -> dict[str, str]:
        prefix = f"/{FAMILY}/"
        return {key[len(prefix):]: value for key, value in self.tree.items() if key.startswith(prefix)}

    def writes(self) -> list[tuple[str, str, HeaderValue]]:
        """(action, key, value) of the DBPut and DBDel actions so far; then forgets them."""
        done = [(action, str(h["Key"]), h.get("Val")) for action, h in self.actions if action in ("DBPut", "DBDel")]
        self.actions.clear()
        return done


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.seconds = 0.0  # the mirror's monotonic clock

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, by: dt.timedelta) -> None:
        self.now += by
        self.seconds += by.total_seconds()


def load(*texts: str) -> dict[str, Flow]:
    flows = {}
    for text in texts:
        diagnostics = Diagnostics()
        flow = load_text(textwrap.dedent(text), "flow.yaml", diagnostics)
        assert flow is not None, diagnostics.render()
        flows[flow.name] = flow
    return flows


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[SqliteMaintenance]:
    with open_database(tmp_path / "data") as database:
        yield SqliteMaintenance(database, clock)


@pytest.fixture
def astdb() -> FakeAstDb:
    return FakeAstDb()


@pytest.fixture
def flows() -> dict[str, Flow]:
    return load(SUPPORT, BILLING)


@pytest.fixture
def mirror(store: SqliteMaintenance, flows: dict[str, Flow], astdb: FakeAstDb, clock: Clock) -> AstDbMirror:
    mirror = AstDbMirror(store, lambda: flows, astdb, interval=30, monotonic=lambda: clock.seconds)
    astdb.login()
    return mirror


def on(store: SqliteMaintenance, scope: str, mode: str, **options: dt.datetime) -> None:
    store.switch_on(scope, Mode(mode), by="alice", source=Source.CLI, reason="test", **options)


# -- what is written ------------------------------------------------------------------------------------------


def test_each_flow_gets_the_mode_it_is_in_and_global_the_global_one(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb
) -> None:
    assert mirror.sync() == [] and astdb.family == {}  # nothing in force: nothing written
    on(store, "support", "planned")
    assert [w.describe() for w in mirror.sync()] == [f"AstDB {FAMILY}/support set to planned (was unset)"]
    on(store, GLOBAL, "emergency")
    mirror.sync()
    assert astdb.family == {"global": "emergency", "support": "emergency", "billing": "emergency"}  # it wins
    store.switch_off(GLOBAL, by="bob", source=Source.CLI)
    writes = mirror.sync()
    assert astdb.family == {"support": "planned"}
    assert [(w.key, w.value, w.was) for w in writes] == [
        ("billing", None, "emergency"), ("global", None, "emergency"), ("support", "planned", "emergency")]
    store.switch_off("support", by="bob", source=Source.CLI)
    mirror.sync()
    assert astdb.family == {}


def test_a_change_is_announced_before_astdb_has_it(
    store: SqliteMaintenance, flows: dict[str, Flow], astdb: FakeAstDb, clock: Clock
) -> None:
    seen: list[dict[str, str]] = []
    mirror = AstDbMirror(store, lambda: flows, astdb, monotonic=lambda: clock.seconds,
                         on_change=lambda: seen.append(dict(astdb.family)))  # fmt: skip
    astdb.login()
    mirror.sync()
    on(store, "support", "planned")
    mirror.sync()
    mirror.sync()
    assert seen == [{}, {}] and astdb.family == {"support": "planned"}  # the start, then the change, once


def test_a_round_without_a_change_sends_nothing(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb
) -> None:
    on(store, "support", "closed", until=NOW + MINUTE)
    mirror.sync()
    astdb.actions.clear()
    assert mirror.sync() == [] and astdb.actions == []  # the store is read, AstDB is not even read back


def test_a_flows_yaml_window_is_mirrored_with_the_engines_precedence(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb, flows: dict[str, Flow], clock: Clock
) -> None:
    mirror.sync()
    assert astdb.family == {}
    clock.advance(30 * MINUTE)  # billing's own window (10:30-11:00) starts
    mirror.sync()
    assert astdb.family == {"billing": "planned"}
    on(store, GLOBAL, "closed", until=NOW + 2 * dt.timedelta(hours=1))
    mirror.sync()
    assert astdb.family == {"billing": "planned", "global": "closed", "support": "closed"}  # planned beats closed

    class StoreWorld:
        def maintenance(self, flow: str, now: dt.datetime) -> Maintenance | None:
            return store.in_force(flow, now)

    world = cast(World, StoreWorld())
    for name, flow in flows.items():  # the same choice as the engine makes for a call
        found = in_force_for(world, flow, clock.now)
        assert (found.mode.value if found else None) == astdb.family.get(name)
    clock.advance(30 * MINUTE)
    mirror.sync()
    assert astdb.family == {"billing": "closed", "global": "closed", "support": "closed"}


def test_a_scope_of_a_flow_not_loaded_here_is_mirrored_while_the_store_knows_it(
    store: SqliteMaintenance, astdb: FakeAstDb, clock: Clock
) -> None:
    loaded = load(SUPPORT)
    mirror = AstDbMirror(store, lambda: loaded, astdb, monotonic=lambda: clock.seconds)
    astdb.login()
    astdb.tree[f"/{FAMILY}/other-server"] = "planned"  # another server's flow: left alone
    on(store, "sales", "emergency")
    on(store, "not a flow", "planned")  # no compiled flow can have this key
    mirror.sync()
    assert astdb.family == {"sales": "emergency", "other-server": "planned"}
    store.switch_off("sales", by="bob", source=Source.CLI)  # the store no longer names it; the mirror wrote it
    mirror.sync()
    assert astdb.family == {"other-server": "planned"}


def test_doctests() -> None:
    failures, tried = doctest.testmod(ivrkit.maintenance.mirror)
    assert (failures, tried > 0) == (0, True)


# -- repairs --------------------------------------------------------------------------------------------------


def test_every_login_reads_the_family_back_and_repairs_what_disagrees(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb, caplog: pytest.LogCaptureFixture
) -> None:
    on(store, "support", "planned")
    mirror.sync()
    astdb.tree = {f"/{FAMILY}/support": "closed", f"/{FAMILY}/billing": "planned", f"/{FAMILY}/other": "none",
                  f"/{FAMILY}x/support": "kept"}  # fmt: skip  (edited by hand while the connection was down)
    astdb.writes()
    mirror.sync()
    assert astdb.writes() == []  # the mirror does not know yet
    astdb.login()  # e.g. Asterisk restarted
    caplog.clear()
    with caplog.at_level(logging.INFO, "ivrkit.maintenance"):
        writes = mirror.sync()
    assert [w.describe() for w in writes] == [
        f"AstDB {FAMILY}/billing repaired: it held 'planned', the maintenance store says unset",
        f"AstDB {FAMILY}/support repaired: it held 'closed', the maintenance store says 'planned'",
    ]
    assert astdb.family == {"support": "planned", "other": "none"} and astdb.tree[f"/{FAMILY}x/support"] == "kept"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", writes[0].describe()), ("WARNING", writes[1].describe()),
        ("INFO", f"AstDB mirror checked {FAMILY}: 2 repaired; flags: support=planned"),
    ]


def test_every_interval_the_family_is_checked_and_a_wiped_astdb_is_written_again(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb, clock: Clock
) -> None:
    on(store, GLOBAL, "planned")
    mirror.sync()
    astdb.tree.clear()  # `database deltree ivrkit-maintenance`
    clock.advance(dt.timedelta(seconds=29))
    assert mirror.sync() == []
    clock.advance(dt.timedelta(seconds=1))
    writes = mirror.sync()
    assert {(w.key, w.value, w.repair) for w in writes} == {
        ("global", "planned", True), ("support", "planned", True), ("billing", "planned", True)}
    assert astdb.family == {"global": "planned", "support": "planned", "billing": "planned"}


def test_a_key_deleted_behind_the_mirrors_back_is_no_failure(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb
) -> None:
    on(store, "support", "planned")
    mirror.sync()
    del astdb.tree[f"/{FAMILY}/support"]
    store.switch_off("support", by="bob", source=Source.CLI)
    assert [(w.key, w.value) for w in mirror.sync()] == [("support", None)]  # DBDel said "could not be deleted"


# -- starts and ends ------------------------------------------------------------------------------------------


def test_a_timed_window_ends_by_itself_and_its_expiry_is_recorded(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb, clock: Clock
) -> None:
    on(store, "support", "closed", until=NOW + dt.timedelta(seconds=5))
    mirror.sync()
    assert astdb.family == {"support": "closed"}
    assert mirror._pause() == 1.0  # the end is 5 s away: the next poll
    clock.advance(dt.timedelta(seconds=4.5))
    assert mirror._pause() == pytest.approx(0.51)  # just past the end
    clock.advance(dt.timedelta(seconds=0.5))
    mirror.sync()
    assert astdb.family == {}
    (entry, _) = store.history("support")
    assert (entry.action, entry.by, entry.source, entry.at) == ("expired", "system", Source.SCHEDULE,
                                                                NOW + dt.timedelta(seconds=5))  # fmt: skip


def test_a_scheduled_window_starts_by_itself_and_its_start_is_recorded(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb, clock: Clock
) -> None:
    on(store, GLOBAL, "planned", starts_at=NOW + MINUTE, until=NOW + 2 * MINUTE)
    mirror.sync()
    assert astdb.family == {}
    clock.advance(MINUTE)
    mirror.sync()
    assert astdb.family == {"global": "planned", "support": "planned", "billing": "planned"}
    assert [(e.action, e.by, e.source) for e in store.history(GLOBAL)] == [
        ("on", "system", Source.SCHEDULE), ("scheduled", "alice", Source.CLI)]


# -- failures -------------------------------------------------------------------------------------------------


def test_without_write_system_the_mirror_says_what_to_grant_once_and_recovers(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb, clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    astdb.refuse = {"DBPut", "DBDel"}
    on(store, "support", "emergency")
    caplog.clear()
    with caplog.at_level(logging.INFO, "ivrkit.maintenance"):
        assert mirror.sync() == []
        clock.advance(dt.timedelta(seconds=1))
        mirror.sync()  # not tried again every second: at the next check
        clock.advance(dt.timedelta(seconds=30))
        mirror.sync()
    assert [action for action, _ in astdb.actions].count("DBPut") == 2
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "AstDB mirror: Asterisk refused DBGetTree, DBPut or DBDel (Permission denied): give the AMI user "
                  "`write = system` in manager.conf; until then the compiled gate keeps the flags it has"),
    ]  # fmt: skip
    astdb.refuse = set()
    caplog.clear()
    clock.advance(dt.timedelta(seconds=30))
    with caplog.at_level(logging.INFO, "ivrkit.maintenance"):
        mirror.sync()
    assert astdb.family == {"support": "emergency"}
    assert caplog.records[-1].getMessage() == "AstDB mirror: Asterisk accepts its writes again"


def test_a_connection_lost_in_a_round_is_checked_again_at_the_next_login(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb
) -> None:
    mirror.sync()
    on(store, "support", "planned")
    astdb.lose_on = "DBPut"
    assert mirror.sync() == []
    assert mirror.sync() == []  # down: nothing is sent
    astdb.login()
    assert [(w.key, w.value, w.repair) for w in mirror.sync()] == [("support", "planned", True)]


def test_a_store_that_cannot_be_read_leaves_astdb_as_it_is(
    mirror: AstDbMirror, store: SqliteMaintenance, astdb: FakeAstDb, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    on(store, "support", "planned")
    mirror.sync()

    def broken(*args: object) -> list[object]:
        raise StoreError("data/ivrkit.sqlite3: database disk image is malformed")

    monkeypatch.setattr(store, "windows", broken)
    astdb.actions.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "ivrkit.maintenance"):
        assert mirror.sync(check=True) == []
    assert astdb.actions == [] and astdb.family == {"support": "planned"}
    assert caplog.messages == ["AstDB mirror: the maintenance store cannot be read (data/ivrkit.sqlite3: database "
                               "disk image is malformed); AstDB keeps its flags"]  # fmt: skip


def test_settings_that_would_spin_are_refused(store: SqliteMaintenance, astdb: FakeAstDb) -> None:
    with pytest.raises(ValueError, match="0 < poll <= interval"):
        AstDbMirror(store, dict, astdb, poll=5, interval=1)


# -- the thread -----------------------------------------------------------------------------------------------


def test_the_thread_writes_a_change_at_once_when_woken_and_outlives_a_failing_round(
    store: SqliteMaintenance, astdb: FakeAstDb, flows: dict[str, Flow], caplog: pytest.LogCaptureFixture
) -> None:
    failing = threading.Event()

    def loaded() -> dict[str, Flow]:
        if failing.is_set():
            failing.clear()
            raise RuntimeError("a bug")
        return flows

    mirror = AstDbMirror(store, loaded, astdb, poll=60, interval=60)  # without wake() it would wait a minute
    astdb.login()
    mirror.start()
    try:
        assert mirror.wait_rounds(1, 10)
        on(store, "support", "planned")
        rounds = mirror.rounds
        failing.set()
        with caplog.at_level(logging.ERROR, "ivrkit.maintenance"):
            mirror.wake()
            assert mirror.wait_rounds(rounds + 1, 10)
        assert caplog.messages == ["AstDB mirror round failed; trying again in 60 s"]
        mirror.wake()
        assert mirror.wait_rounds(rounds + 2, 10)
        assert astdb.family == {"support": "planned"}
        assert mirror.writes[-1] == Write("support", "planned", None, True)  # checked again after the failure
    finally:
        assert mirror.stop()


# -- in `ivrkit serve --ami` ----------------------------------------------------------------------------------


def test_serve_with_ami_mirrors_the_store_on_an_ami_connection_of_its_own(tmp_path: Path) -> None:
    fake = FakeAmi()  # accepts every action, as an Asterisk that grants everything
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "support.yaml").write_text(textwrap.dedent(SUPPORT))
    settings = ServiceSettings(flows=flows, prompts=None, listener=ListenerSettings(port=0), admin_port=0,
                               reload_seconds=0, data_dir=tmp_path / "data",
                               ami=AmiSettings("127.0.0.1", fake.port, "ivrkit", "secret"))  # fmt: skip
    service = Service(settings)
    try:
        service.start()
        assert service.mirror is not None
        events_off = fake.wait_action("Events")
        assert events_off["EventMask"] == "off"  # the mirror reads no events
        service.maintenance_store.switch_on("support", Mode.PLANNED, by="alice", source=Source.API)
        put = fake.wait_action("DBPut")
        assert (put["Family"], put["Key"], put["Val"]) == (FAMILY, "support", "planned")
    finally:
        service.stop()
        fake.close()
    assert service.mirror._thread is not None and not service.mirror._thread.is_alive()
