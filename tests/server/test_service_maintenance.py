"""``ivrkit serve`` in-process: the maintenance windows the flow files declare reach the store at every load, so
``ivrkit maintenance status`` and ``history`` (and the admin API) show them, from the schedule, by the file."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from ivrkit.cli import main
from ivrkit.maintenance.model import Window
from ivrkit.ops.maintenance import history_route, status_route
from ivrkit.server.listener import ListenerSettings
from ivrkit.server.service import Service, ServiceSettings
from ivrkit.store import DeclaredChanges, StoreError

UPGRADE = '{mode: planned, from: "2999-01-01T22:00", until: "2999-01-02T02:00", reason: database upgrade}'
MOVE = '{mode: closed, from: "2000-01-01T00:00", until: "2999-01-01T00:00", reason: office move}'
FAULT = '{mode: emergency, from: "2999-02-01T08:00", until: "2999-02-01T12:00", reason: carrier works}'


def support(*windows: str) -> str:
    block = "".join(f"    - {window}\n" for window in windows)
    return textwrap.dedent(
        """\
        flow: support
        timezone: Europe/Berlin
        start: bye
        maintenance:
          windows:
        """
    ) + block + "steps:\n  bye: {hangup: true}\n"


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # flow files are named relative to the working directory, as the server logs them
    monkeypatch.delenv("IVRKIT_DATA_DIR", raising=False)
    directory = Path("flows")
    directory.mkdir()
    (directory / "support.yaml").write_text(support(UPGRADE, MOVE))
    (directory / "billing.yaml").write_text("flow: billing\nstart: bye\nsteps:\n  bye: {hangup: true}\n")
    return directory


def settings(flows: Path, reload_seconds: float = 0) -> ServiceSettings:
    return ServiceSettings(flows=flows, prompts=None, listener=ListenerSettings(port=0), admin_port=0,
                           reload_seconds=reload_seconds, data_dir=Path("data"))  # fmt: skip


@pytest.fixture
def service(flows: Path) -> Iterator[Service]:
    service = Service(settings(flows))
    yield service
    service.stop()


def history(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    """``ivrkit maintenance history --json``, as an operator runs it beside the server, oldest first."""
    capsys.readouterr()
    assert main(["maintenance", "history", "--flow", "support", "--json", "--data-dir", "data"]) == 0
    entries: list[dict[str, object]] = json.loads(capsys.readouterr().out)["entries"]
    return [{key: entry[key] for key in ("action", "mode", "by", "source", "reason", "detail")}
            for entry in reversed(entries)]  # fmt: skip


def test_a_reload_stores_the_windows_a_changed_flow_file_adds_and_cancels_those_it_drops(
    service: Service, flows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service.reload()
    status, body = status_route(service.maintenance_store, "")
    assert status == 200
    assert [(w["flow"], w["mode"], w["state"], w["by"], w["source"], w["reason"]) for w in body["windows"]] == [
        ("support", "closed", "in-force", "flows/support.yaml", "schedule", "office move"),
        ("support", "planned", "scheduled", "flows/support.yaml", "schedule", "database upgrade"),
    ]
    assert history(capsys) == [
        {"action": "on", "mode": "closed", "by": "flows/support.yaml", "source": "schedule", "reason": "office move",
         "detail": "from 1999-12-31 23:00 UTC"},
        {"action": "scheduled", "mode": "planned", "by": "flows/support.yaml", "source": "schedule",
         "reason": "database upgrade", "detail": "starts 2999-01-01 21:00 UTC"},
    ]  # fmt: skip

    service.reload()  # the same files: nothing new in the trail
    assert len(history(capsys)) == 2

    (flows / "support.yaml").write_text(support(MOVE, FAULT))  # the upgrade is dropped, a fault window added
    report = service.reload()
    assert sorted(report.loaded) == ["billing", "support"]
    assert history(capsys)[2:] == [
        {"action": "scheduled", "mode": "emergency", "by": "flows/support.yaml", "source": "schedule",
         "reason": "carrier works", "detail": "starts 2999-02-01 07:00 UTC"},
        {"action": "off", "mode": "planned", "by": "flows/support.yaml", "source": "schedule",
         "reason": "removed from the flow file", "detail": "cancelled before its start"},
    ]  # fmt: skip
    capsys.readouterr()
    assert main(["maintenance", "status", "--data-dir", "data"]) == 0
    out = capsys.readouterr().out
    assert "office move" in out and "carrier works" in out and "database upgrade" not in out

    (flows / "support.yaml").unlink()  # the flow is served no more: its windows end
    assert service.reload().removed == ["support"]
    assert [(e["action"], e["mode"], e["reason"]) for e in history(capsys)[4:]] == [
        ("off", "closed", "removed from the flow file"), ("off", "emergency", "removed from the flow file"),
    ]  # fmt: skip
    assert service.maintenance_store.status() == []
    status, body = history_route(service.maintenance_store, "flow=support")
    assert status == 200 and {entry["source"] for entry in body["entries"]} == {"schedule"}


def test_a_broken_flow_file_keeps_its_windows_until_it_is_fixed(
    service: Service, flows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service.reload()
    (flows / "support.yaml").write_text(support(FAULT).replace("start: bye", "start: nowhere"))
    assert service.reload().kept == ["support"]  # the previous version serves, with its windows
    assert len(history(capsys)) == 2 and len(service.maintenance_store.status()) == 2
    (flows / "support.yaml").write_text(support(FAULT))
    service.reload()
    assert [(e["action"], e["mode"]) for e in history(capsys)[2:]] == [
        ("scheduled", "emergency"), ("off", "closed"), ("off", "planned"),
    ]  # fmt: skip


def test_windows_not_stored_because_the_store_failed_are_stored_at_the_next_look(
    flows: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = Service(settings(flows, reload_seconds=0.05))
    store = service.maintenance_store
    sync = store.sync_declared
    failing = threading.Event()
    failing.set()

    def flaky(flow: str, windows: Iterable[Window], *, by: str) -> DeclaredChanges:
        if flow == "support" and failing.is_set():
            failing.clear()
            raise StoreError("database is locked")
        return sync(flow, windows, by=by)

    store.sync_declared = flaky  # type: ignore[method-assign]
    try:
        service.start()
        assert "maintenance windows of flow support (flows/support.yaml) not stored: database is locked" in (
            caplog.text
        )
        deadline = time.monotonic() + 10
        while len(store.status()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [window.reason for window in store.status()] == ["office move", "database upgrade"]
    finally:
        service.stop()
