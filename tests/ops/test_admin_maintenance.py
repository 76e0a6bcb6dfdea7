"""The admin endpoint's maintenance routes, over real HTTP on 127.0.0.1 against a real SQLite store: status,
history, switching on (with the second confirmation of a global emergency) and off, the token, and the errors a
client can act on."""

from __future__ import annotations

import datetime as dt
import doctest
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ivrkit.ops.maintenance
from ivrkit.maintenance.model import GLOBAL, AuditEntry, Maintenance, Mode, Source, Window
from ivrkit.ops.admin import AdminServer
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.store import Database, SqliteMaintenance, open_database
from tests.ops.http import TOKEN, Response, request

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
ON_EXAMPLE = '{"mode": "planned", "flow": "support", "until": "+2h", "reason": "database upgrade", "by": "alice"}'
OFF_EXAMPLE = '{"flow": "support", "by": "alice", "reason": "upgrade done"}'


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


class ThreadRecordingStore(SqliteMaintenance):
    """The real store, noting which threads read it."""

    threads: set[str]

    def status(self, now: dt.datetime | None = None) -> list[Window]:
        self.threads.add(threading.current_thread().name)
        return super().status(now)

    def history(self, scope: str | None = None, limit: int = 100) -> list[AuditEntry]:
        self.threads.add(threading.current_thread().name)
        return super().history(scope, limit)


@dataclass
class Admin:
    server: AdminServer
    store: ThreadRecordingStore
    clock: Clock

    def call(
        self, path: str, method: str = "GET", body: Any = None, *, raw: bytes | None = None, token: str | None = TOKEN
    ) -> Response:
        return request(self.server.url + path, token, method, body=body, raw=raw)

    def on(self, **body: Any) -> Response:
        return self.call("/v1/maintenance", "POST", {"by": "alice", "reason": "upgrade", **body})

    def off(self, **body: Any) -> Response:
        return self.call("/v1/maintenance/off", "POST", {"by": "alice", **body})


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path) as database:
        yield database


def serve(store: SqliteMaintenance | None, **options: Any) -> AdminServer:
    server = AdminServer("127.0.0.1", 0, TOKEN, lambda: {"status": "ok"}, ServerMetrics(), maintenance=store, **options)
    server.start()
    return server


@pytest.fixture
def admin(database: Database) -> Iterator[Admin]:
    clock = Clock(NOW)
    store = ThreadRecordingStore(database, clock)
    store.threads = set()
    server = serve(store, flow_names=lambda: {"support", "billing"})
    try:
        yield Admin(server, store, clock)
    finally:
        server.stop()


def window_json(window: Window, state: str, ended_at: str | None = None) -> dict[str, Any]:
    return {
        "id": window.id,
        "flow": None if window.scope == GLOBAL else window.scope,
        "mode": window.mode.value,
        "state": state,
        "from": window.starts_at.isoformat().replace("+00:00", "Z"),
        "until": None if window.ends_at is None else window.ends_at.isoformat().replace("+00:00", "Z"),
        "reason": window.reason,
        "by": window.by,
        "source": window.source.value,
        "ended_at": ended_at,
    }


def test_status_is_empty_at_first(admin: Admin) -> None:
    resp = admin.call("/v1/maintenance")
    assert resp.status == 200
    assert resp.headers.get_content_type() == "application/json"
    assert resp.json() == {"now": "2026-11-23T10:00:00Z", "windows": [], "count": 0}


def test_switching_on_answers_201_with_the_window_and_records_the_api_as_the_source(admin: Admin) -> None:
    resp = admin.on(mode="planned", flow="support", until="+2h", reason="database upgrade")
    assert resp.status == 201
    (window,) = admin.store.windows()
    assert resp.json() == {
        "window": {
            "id": window.id,
            "flow": "support",
            "mode": "planned",
            "state": "in-force",
            "from": "2026-11-23T10:00:00Z",
            "until": "2026-11-23T12:00:00Z",
            "reason": "database upgrade",
            "by": "alice",
            "source": "api",
            "ended_at": None,
        },
        "replaced": [],
    }
    assert admin.store.in_force("support") == Maintenance(
        Mode.PLANNED, "support", NOW + 2 * HOUR, "database upgrade", NOW
    )
    (entry,) = admin.store.history()
    assert (entry.action, entry.by, entry.source) == ("on", "alice", Source.API)


def test_status_lists_windows_in_force_in_the_order_they_apply_then_scheduled(admin: Admin) -> None:
    assert admin.on(mode="closed", flow=None, until="2026-11-23T18:00:00+01:00").status == 201
    assert admin.on(mode="planned", flow="billing", **{"from": "2026-11-24T08:00Z", "until": "+2h"}).status == 201
    assert admin.on(mode="planned", flow="support").status == 201
    closed, planned, scheduled = admin.store.windows()  # by start
    assert admin.call("/v1/maintenance").json() == {
        "now": "2026-11-23T10:00:00Z",
        "windows": [
            window_json(planned, "in-force"),
            window_json(closed, "in-force"),
            window_json(scheduled, "scheduled"),
        ],
        "count": 3,
    }
    assert (closed.scope, closed.ends_at) == (GLOBAL, dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.UTC))
    assert (scheduled.starts_at, scheduled.ends_at) == (
        dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC),
    )


def test_a_new_window_replaces_the_running_one_and_the_answer_says_which(admin: Admin) -> None:
    first = admin.on(mode="planned", flow="support").json()["window"]
    admin.clock.now = NOW + HOUR
    resp = admin.on(mode="planned", flow="support", until="+1h", reason="takes longer", by="bob")
    assert resp.status == 201
    (replaced,) = resp.json()["replaced"]
    assert replaced == {**first, "state": "ended", "ended_at": "2026-11-23T11:00:00Z"}


def test_switching_on_notes_a_window_that_takes_precedence(admin: Admin) -> None:
    admin.store.switch_on(GLOBAL, Mode.EMERGENCY, by="bob", source=Source.CLI, reason="outage")
    resp = admin.on(mode="planned", flow="support")
    assert resp.status == 201
    assert resp.json()["note"] == "callers of support hear global emergency maintenance first: it takes precedence"


def test_a_global_emergency_needs_the_confirmation_field(admin: Admin) -> None:
    for confirm in ({}, {"confirm": True}, {"confirm": "yes"}):
        resp = admin.on(mode="emergency", flow=None, reason="carrier outage", **confirm)
        assert (resp.status, resp.json()) == (
            409,
            {
                "error": "confirmation required",
                "hint": 'a global emergency stops every flow: send the same request again with "confirm": '
                '"global-emergency"',
            },
        )
    assert admin.store.history() == []
    resp = admin.on(mode="emergency", flow=None, reason="carrier outage", confirm="global-emergency")
    assert resp.status == 201
    assert admin.store.in_force("billing") == Maintenance(Mode.EMERGENCY, GLOBAL, None, "carrier outage", NOW)
    # a flow's emergency, or a global planned window, needs no confirmation
    assert admin.on(mode="emergency", flow="support").status == 201
    assert admin.on(mode="planned", flow=None).status == 201


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        ({"mode": "paused", "flow": "support"}, "unknown mode 'paused'; modes are planned, emergency, closed"),
        ({"flow": "support"}, "say which mode: one of planned, emergency, closed"),
        ({"mode": "planned"}, 'say which flow: "flow": "support", or "flow": null for every flow'),
        ({"mode": "planned", "flow": "suport"},
         "no flow named 'suport' here (flows: billing, support); check \"flow\""),
        ({"mode": "planned", "flow": "sup/port"},
         "'sup/port' is not a flow name: letters, digits, '_' and '-', as in the flow's `flow:` key"),
        ({"mode": "closed", "flow": "support"},
         'closed needs "until": callers hear when you reopen (e.g. "until": "+2h")'),
        ({"mode": "planned", "flow": "support", "until": "2026-11-23T14:00"},
         "time '2026-11-23T14:00' has no UTC offset; add one (2026-11-23T14:00Z, 2026-11-23T14:00+01:00) or give a "
         "duration (+2h)"),
        ({"mode": "planned", "flow": "support", "until": "2026-11-23T09:00Z"},
         "the end 2026-11-23 09:00 UTC is not in the future (now 2026-11-23 10:00 UTC); give a later end"),
        ({"mode": "planned", "flow": "support", "until": 7200},
         '"until" is a time as text: ISO 8601 with an offset ("2026-12-01T14:00+01:00") or "+2h"'),
        ({"mode": "planned", "flow": "support", "reason": ""},
         "say why: a non-empty 'reason', recorded in the audit trail"),
        ({"mode": "planned", "flow": "support", "by": None},
         "say who makes the change: a non-empty 'by' (your name or ticket), recorded in the audit trail"),
        ({"mode": "planned", "flow": "support", "util": "+2h"}, f"unknown field(s) util; send {ON_EXAMPLE}"),
    ],
)  # fmt: skip
def test_a_bad_switch_on_is_400_saying_what_to_send_and_changes_nothing(
    admin: Admin, body: dict[str, Any], hint: str
) -> None:
    resp = admin.call("/v1/maintenance", "POST", {"by": "alice", "reason": "upgrade", **body})
    assert (resp.status, resp.json()) == (400, {"error": "bad request", "hint": hint})
    assert admin.store.windows() == [] and admin.store.history() == []


def test_switching_off_ends_the_flows_windows_and_notes_what_still_applies(admin: Admin) -> None:
    window = admin.store.switch_on("support", Mode.PLANNED, by="bob", source=Source.CLI, reason="upgrade")
    admin.store.switch_on(GLOBAL, Mode.CLOSED, by="bob", source=Source.CLI, until=NOW + 8 * HOUR)
    admin.clock.now = NOW + HOUR
    resp = admin.off(flow="support", reason="upgrade done")
    assert resp.status == 200
    assert resp.json() == {
        "ended": [window_json(window, "ended", "2026-11-23T11:00:00Z")],
        "count": 1,
        "note": "callers of support still meet global closed maintenance",
    }
    entry = admin.store.history("support")[0]
    assert (entry.action, entry.by, entry.source, entry.reason) == ("off", "alice", Source.API, "upgrade done")


def test_switching_off_the_global_windows_and_one_mode(admin: Admin) -> None:
    admin.store.switch_on(GLOBAL, Mode.EMERGENCY, by="bob", source=Source.CLI)
    admin.store.switch_on(GLOBAL, Mode.PLANNED, by="bob", source=Source.CLI)
    admin.store.switch_on("support", Mode.PLANNED, by="bob", source=Source.CLI)
    resp = admin.off(flow=None, mode="emergency")
    assert resp.status == 200
    assert [(w["flow"], w["mode"]) for w in resp.json()["ended"]] == [(None, "emergency")]
    resp = admin.off(flow=None)
    assert [(w["flow"], w["mode"]) for w in resp.json()["ended"]] == [(None, "planned")]
    assert resp.json()["note"] == "flows with their own maintenance still in force: support"


def test_switching_off_nothing_is_409_saying_what_is_in_force(admin: Admin) -> None:
    admin.store.switch_on(GLOBAL, Mode.EMERGENCY, by="bob", source=Source.CLI)
    resp = admin.off(flow="support")
    assert (resp.status, resp.json()) == (
        409,
        {
            "error": "not in maintenance",
            "hint": "support is not in maintenance: nothing to switch off; a global window is in force: switch it off "
            'with "flow": null; GET /v1/maintenance shows what is in force',
        },
    )
    assert len(admin.store.history()) == 1


def test_a_removed_flows_window_can_still_be_switched_off(admin: Admin) -> None:
    admin.store.switch_on("sales", Mode.PLANNED, by="bob", source=Source.CLI)  # "sales" is no flow (any more)
    resp = admin.off(flow="sales")
    assert resp.status == 200
    assert [w["flow"] for w in resp.json()["ended"]] == ["sales"]


def test_switching_off_by_id_cancels_a_scheduled_window_and_an_unknown_id_is_404(admin: Admin) -> None:
    window = admin.store.switch_on("billing", Mode.PLANNED, by="bob", source=Source.CLI, starts_at=NOW + 24 * HOUR)
    resp = admin.off(id=window.id, reason="postponed")
    assert resp.status == 200
    assert resp.json() == {"ended": [window_json(window, "ended", "2026-11-23T10:00:00Z")], "count": 1}
    assert admin.store.history()[0].detail == "cancelled before its start"
    resp = admin.off(id=window.id)
    assert (resp.status, resp.json()) == (
        404,
        {
            "error": "no such window",
            "hint": f"no running or scheduled maintenance window has the id {window.id!r}; GET /v1/maintenance "
            "shows them with their ids",
        },
    )


def test_a_window_declared_in_a_flow_file_is_shown_but_not_switched_off_by_the_api(admin: Admin) -> None:
    declared = Window("", "support", Mode.PLANNED, NOW - HOUR, NOW + HOUR, "upgrade", "", Source.SCHEDULE)
    (window,) = admin.store.sync_declared("support", [declared], by="flows/support.yaml").added
    assert admin.call("/v1/maintenance").json()["windows"] == [window_json(window, "in-force")]
    assert window_json(window, "in-force")["source"] == "schedule"
    resp = admin.off(flow="support")
    assert (resp.status, resp.json()) == (
        409,
        {
            "error": "declared in a flow file",
            "hint": "support's planned maintenance is declared in flows/support.yaml: nothing to switch off; take its "
            "window out of that file to end it (a running server stores the change when it reloads the file); "
            "GET /v1/maintenance shows what is in force",
        },
    )
    resp = admin.off(id=window.id)
    assert (resp.status, resp.json()) == (
        409,
        {
            "error": "declared in a flow file",
            "hint": f"maintenance window {window.id} is declared in flows/support.yaml: take it out of that file (or "
            "change its `until`) to end it; a running server stores the change when it reloads the file",
        },
    )
    assert [entry.action for entry in admin.store.history()] == ["on"]  # nothing else recorded


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        ({}, 'say which flow: "flow": "support", or "flow": null for every flow'),
        ({"flow": "support", "id": "abc"},
         'send "flow" (a flow, or null for the global windows) or "id" (one window), not both'),
        ({"id": 5}, '"id" is a window id, as GET /v1/maintenance shows it'),
        ({"flow": "support", "mode": "later"}, "unknown mode 'later'; modes are planned, emergency, closed"),
        ({"flow": "support", "by": ""},
         "say who makes the change: a non-empty 'by' (your name or ticket), recorded in the audit trail"),
        ({"flow": "support", "until": "+1h"}, f"unknown field(s) until; send {OFF_EXAMPLE}"),
    ],
)  # fmt: skip
def test_a_bad_switch_off_is_400_and_changes_nothing(admin: Admin, body: dict[str, Any], hint: str) -> None:
    admin.store.switch_on("support", Mode.PLANNED, by="bob", source=Source.CLI)
    resp = admin.call("/v1/maintenance/off", "POST", {"by": "alice", **body})
    assert (resp.status, resp.json()) == (400, {"error": "bad request", "hint": hint})
    assert len(admin.store.windows()) == 1 and len(admin.store.history()) == 1


@pytest.mark.parametrize(
    ("raw", "status", "error", "hint"),
    [
        (None, 400, "bad request", f"send a JSON object: {ON_EXAMPLE}"),
        (b"mode=planned", 400, "bad request",
         f"the body is not JSON (Expecting value: line 1 column 1 (char 0)); send {ON_EXAMPLE}"),
        (b"{" + b" " * 70_000 + b"}", 413, "body too large", "send at most 65536 bytes"),
    ],
)  # fmt: skip
def test_a_body_that_is_no_json_object_is_refused_with_the_example(
    admin: Admin, raw: bytes | None, status: int, error: str, hint: str
) -> None:
    resp = admin.call("/v1/maintenance", "POST", raw=raw)
    assert (resp.status, resp.json()) == (status, {"error": error, "hint": hint})


def test_history_is_newest_first_filtered_by_flow_and_limited(admin: Admin) -> None:
    planned = admin.store.switch_on("support", Mode.PLANNED, by="bob", source=Source.CLI, reason="upgrade",
                                    until=NOW + HOUR)  # fmt: skip
    admin.clock.now = NOW + dt.timedelta(minutes=10)
    assert admin.on(mode="emergency", flow=None, reason="outage", confirm="global-emergency").status == 201
    admin.clock.now = NOW + 2 * HOUR  # the planned window has expired meanwhile
    resp = admin.call("/v1/maintenance/history")
    assert resp.status == 200
    body = resp.json()
    assert (body["count"], body["limit"], body["truncated"]) == (3, 100, False)
    assert body["entries"][0] == {
        "at": "2026-11-23T11:00:00Z",
        "action": "expired",
        "flow": "support",
        "mode": "planned",
        "until": "2026-11-23T11:00:00Z",
        "by": "system",
        "source": "schedule",
        "reason": "upgrade",
        "detail": "",
        "window": planned.id,
    }
    assert [(e["action"], e["flow"], e["source"]) for e in body["entries"]] == [
        ("expired", "support", "schedule"), ("on", None, "api"), ("on", "support", "cli")
    ]  # fmt: skip
    assert [e["flow"] for e in admin.call("/v1/maintenance/history?flow=*").json()["entries"]] == [None]
    assert [e["action"] for e in admin.call("/v1/maintenance/history?flow=support").json()["entries"]] == [
        "expired",
        "on",
    ]
    page = admin.call("/v1/maintenance/history?limit=1").json()
    assert (page["count"], page["truncated"]) == (1, True)


@pytest.mark.parametrize(
    ("query", "hint"),
    [
        ("?limit=0", "limit 0 is out of range; give 1 to 1000"),
        ("?limit=all", "limit 'all' is not a number; give 1 to 1000"),
        ("?flow=a&flow=b", "give one flow (flow=support, or flow=* for global changes) and one limit"),
        ("?flow=a%20b", "'a b' is not a flow name: letters, digits, '_' and '-', as in the flow's `flow:` key"),
        ("?scope=support", "unknown parameter(s) scope; use flow, limit"),
    ],
)
def test_a_bad_history_query_is_400(admin: Admin, query: str, hint: str) -> None:
    resp = admin.call("/v1/maintenance/history" + query)
    assert (resp.status, resp.json()) == (400, {"error": "bad query", "hint": hint})


def test_status_takes_no_query(admin: Admin) -> None:
    resp = admin.call("/v1/maintenance?flow=support")
    assert (resp.status, resp.json()) == (
        400,
        {"error": "bad query", "hint": "GET /v1/maintenance takes no parameters"},
    )


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/maintenance", "GET"),
        ("/v1/maintenance", "POST"),
        ("/v1/maintenance/history", "GET"),
        ("/v1/maintenance/off", "POST"),
    ],
)
def test_every_maintenance_route_needs_the_token_and_a_refused_request_changes_nothing(
    admin: Admin, path: str, method: str
) -> None:
    admin.store.switch_on("support", Mode.PLANNED, by="bob", source=Source.CLI, reason="secret plans")
    body = {"mode": "emergency", "flow": None, "by": "mallory", "reason": "x", "confirm": "global-emergency"}
    for token in (None, "wrong-token-wrong-token"):
        resp = admin.call(path, method, body if method == "POST" else None, token=token)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert b"secret" not in resp.body
    assert [w.scope for w in admin.store.windows()] == ["support"]
    assert len(admin.store.history()) == 1


def test_wrong_methods_are_405_naming_the_right_ones(admin: Admin) -> None:
    for path, method, allowed in [
        ("/v1/maintenance", "DELETE", "GET, POST"),
        ("/v1/maintenance/history", "POST", "GET"),
        ("/v1/maintenance/off", "GET", "POST"),
    ]:
        resp = admin.call(path, method, {"by": "alice"} if method != "GET" else None)
        assert (resp.status, resp.headers["Allow"]) == (405, allowed), path
        assert resp.json()["hint"] == "use " + allowed.replace(", ", " or ")
    assert admin.store.history() == []


def test_the_store_is_read_on_one_thread(admin: Admin) -> None:
    for _ in range(4):
        assert admin.call("/v1/maintenance").status == 200
        assert admin.call("/v1/maintenance/history").status == 200
    (name,) = admin.store.threads
    assert name.startswith("ivrkit-admin-store")


def test_without_a_flow_list_any_well_formed_flow_is_taken(database: Database) -> None:
    store = ThreadRecordingStore(database, Clock(NOW))
    server = serve(store)
    try:
        resp = Admin(server, store, Clock(NOW)).on(mode="planned", flow="sales")
    finally:
        server.stop()
    assert resp.status == 201
    assert [w.scope for w in store.windows()] == ["sales"]


def test_without_a_maintenance_store_the_routes_answer_503(database: Database) -> None:
    server = serve(None)
    try:
        client = Admin(server, ThreadRecordingStore(database), Clock(NOW))
        answers = [client.call("/v1/maintenance"), client.on(mode="planned", flow="support"), client.off(flow=None)]
    finally:
        server.stop()
    for resp in answers:
        assert (resp.status, resp.json()) == (
            503,
            {
                "error": "maintenance is not available here",
                "hint": "this server keeps no maintenance store; ask the `ivrkit serve` that runs the flows",
            },
        )


class BrokenStore(SqliteMaintenance):
    def status(self, now: dt.datetime | None = None) -> list[Window]:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_failing_store_is_503_and_logged_without_details_to_the_client(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    store = BrokenStore(database, Clock(NOW))
    server = serve(store)
    try:
        resp = Admin(server, ThreadRecordingStore(database), Clock(NOW)).call("/v1/maintenance")
    finally:
        server.stop()
    assert (resp.status, resp.json()) == (
        503,
        {"error": "store unavailable", "hint": "the store could not be read or written; see the server log, then try "
         "again"},
    )  # fmt: skip
    assert b"disk" not in resp.body
    assert "disk I/O error" in caplog.text


def test_time_parsing_doctests() -> None:
    failures, tried = doctest.testmod(ivrkit.ops.maintenance)
    assert (failures, tried > 0) == (0, True)
