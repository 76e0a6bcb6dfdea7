"""The admin endpoint's callback routes, over real HTTP on 127.0.0.1 against a real SQLite store: list, show,
cancel, the token, the errors a client can act on, and the store read from one thread only."""

from __future__ import annotations

import datetime as dt
import doctest
import http.client
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivrkit.callbacks.model import Callback, NewCallback, Origin, Result, State
from ivrkit.ops import admin as admin_module
from ivrkit.ops.admin import AdminServer
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.store import Database, SqliteCallbacks, open_database
from tests.ops.http import TOKEN, Response, request

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC).timestamp()
EXAMPLE = '{"by": "alice", "reason": "the customer called in"}'


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


class ThreadRecordingStore(SqliteCallbacks):
    """The real store, noting which threads read it."""

    threads: set[str]

    def get(self, callback_id: str) -> Callback | None:
        self.threads.add(threading.current_thread().name)
        return super().get(callback_id)

    def list(
        self, *, states: Iterable[State | str] | None = None, queue: str | None = None, limit: int = 100
    ) -> list[Callback]:
        self.threads.add(threading.current_thread().name)
        return super().list(states=states, queue=queue, limit=limit)


@dataclass
class Admin:
    server: AdminServer
    store: ThreadRecordingStore
    clock: Clock

    def call(
        self,
        path: str,
        method: str = "GET",
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = TOKEN,
    ) -> Response:
        return request(self.server.url + path, token, method, body=body, raw=raw)

    def add(self, number: str, queue: str = "support", at: float = NOW, **fields: Any) -> Callback:
        new = NewCallback(number, queue, "support", fields.pop("origin", Origin.REQUEST), at - 120, at, **fields)
        callback, created = self.store.request(new)
        assert created
        return callback


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path) as database:
        yield database


@pytest.fixture
def admin(database: Database) -> Iterator[Admin]:
    clock = Clock(NOW)
    store = ThreadRecordingStore(database, clock=clock)
    store.threads = set()
    metrics = ServerMetrics()
    metrics.watch_callbacks(lambda: store.summary(clock()))
    server = AdminServer("127.0.0.1", 0, TOKEN, lambda: {"status": "ok"}, metrics, callbacks=store)
    server.start()
    try:
        yield Admin(server, store, clock)
    finally:
        server.stop()


def test_list_is_empty_at_first(admin: Admin) -> None:
    resp = admin.call("/v1/callbacks")
    assert resp.status == 200
    assert resp.headers.get_content_type() == "application/json"
    assert resp.json() == {"callbacks": [], "count": 0, "limit": 100, "truncated": False}


def test_a_callback_as_the_api_shows_it(admin: Admin) -> None:
    made = admin.add("+4930123456", reason="billing", language="de", priority=10, uniqueid="1700000000.7")
    assert admin.call("/v1/callbacks").json()["callbacks"] == [
        {
            "id": made.id,
            "state": "pending",
            "number": "+4930123456",
            "queue": "support",
            "flow": "support",
            "origin": "request",
            "reason": "billing",
            "language": "de",
            "priority": 10,
            "attempts": 0,
            "last_result": None,
            "joined_at": "2026-11-23T09:58:00Z",
            "requested_at": "2026-11-23T10:00:00Z",
            "updated_at": "2026-11-23T10:00:00Z",
            "next_attempt_at": "2026-11-23T10:00:00Z",
            "channel_id": None,
            "uniqueid": "1700000000.7",
        }
    ]


def test_list_filters_by_state_and_queue_newest_first_and_says_when_the_limit_cut_it(admin: Admin) -> None:
    a = admin.add("+4930000001", at=NOW)
    b = admin.add("+4930000002", at=NOW + 60, queue="billing")
    c = admin.add("+4930000003", at=NOW + 120)
    admin.store.cancel(a.id, by="ops")
    admin.store.start_attempt(c.id, channel_id="ivrkit-cb-c-1", action_id="x")

    def ids(query: str) -> list[str]:
        resp = admin.call("/v1/callbacks" + query)
        assert resp.status == 200, resp.body
        return [callback["id"] for callback in resp.json()["callbacks"]]

    assert ids("") == [c.id, b.id, a.id]
    assert ids("?state=pending") == [b.id]
    assert ids("?state=active") == [c.id, b.id]
    assert ids("?state=cancelled,dialing") == [c.id, a.id]
    assert ids("?state=cancelled&state=pending") == [b.id, a.id]
    assert ids("?queue=support") == [c.id, a.id]
    assert ids("?queue=support&state=active") == [c.id]
    assert ids("?state=") == [c.id, b.id, a.id]
    page = admin.call("/v1/callbacks?limit=2").json()
    assert ([x["id"] for x in page["callbacks"]], page["limit"], page["truncated"]) == ([c.id, b.id], 2, True)


@pytest.mark.parametrize(
    ("query", "hint"),
    [
        ("?state=waiting", "unknown state 'waiting'; states are pending, dialing, connected, completed, failed, "
         "cancelled, active"),
        ("?limit=0", "limit 0 is out of range; give 1 to 1000"),
        ("?limit=lots", "limit 'lots' is not a number; give 1 to 1000"),
        ("?limit=1&limit=2", "give one limit"),
        ("?queue=a&queue=b", "give one queue (queue=support), or none for every queue"),
        ("?status=pending", "unknown parameter(s) status; use state, queue, limit"),
    ],
)  # fmt: skip
def test_a_bad_list_query_is_400_saying_what_to_send(admin: Admin, query: str, hint: str) -> None:
    resp = admin.call("/v1/callbacks" + query)
    assert resp.status == 400
    assert resp.json() == {"error": "bad query", "hint": hint}


def test_show_gives_the_callback_with_its_events_oldest_first(admin: Admin) -> None:
    made = admin.add("+4930123456")
    admin.clock.now = NOW + 30
    admin.store.start_attempt(made.id, channel_id="ivrkit-cb-1", action_id="a1")
    admin.clock.now = NOW + 60
    admin.store.finish_attempt(made.id, "ivrkit-cb-1", Result.BUSY, retry_at=NOW + 180, reason="Originate reason 5")
    resp = admin.call(f"/v1/callbacks/{made.id}")
    assert resp.status == 200
    detail = resp.json()
    assert (detail["id"], detail["state"], detail["attempts"], detail["last_result"]) == (made.id, "pending", 1, "busy")
    assert detail["next_attempt_at"] == "2026-11-23T10:03:00Z"
    assert detail["events"] == [
        {"at": "2026-11-23T10:00:00Z", "from": None, "to": "pending", "attempt": 0, "reason": "requested (request)"},
        {"at": "2026-11-23T10:00:30Z", "from": "pending", "to": "dialing", "attempt": 1,
         "reason": "dialling (channel ivrkit-cb-1)"},
        {"at": "2026-11-23T10:01:00Z", "from": "dialing", "to": "pending", "attempt": 1,
         "reason": "busy (Originate reason 5); next attempt at 2026-11-23 10:03:00 UTC"},
    ]  # fmt: skip


def test_an_unknown_id_is_404_saying_where_the_ids_are(admin: Admin) -> None:
    for path, method, body in [
        ("/v1/callbacks/0123456789abcdef0123456789abcdef", "GET", None),
        ("/v1/callbacks/0123456789abcdef0123456789abcdef/cancel", "POST", {"by": "alice"}),
    ]:
        resp = admin.call(path, method, body)
        assert resp.status == 404
        assert resp.json() == {
            "error": "no such callback",
            "hint": "no callback has the id '0123456789abcdef0123456789abcdef'; GET /v1/callbacks lists them with "
            "their ids",
        }


def test_cancel_cancels_records_who_and_why_and_answers_with_the_callback(admin: Admin) -> None:
    made = admin.add("+4930123456")
    admin.clock.now = NOW + 90
    resp = admin.call(f"/v1/callbacks/{made.id}/cancel", "POST", {"by": "alice", "reason": "customer called in"})
    assert resp.status == 200
    detail = resp.json()
    assert (detail["id"], detail["state"], detail["next_attempt_at"]) == (made.id, "cancelled", None)
    assert "note" not in detail  # nothing was in flight
    assert detail["events"][-1] == {
        "at": "2026-11-23T10:01:30Z",
        "from": "pending",
        "to": "cancelled",
        "attempt": 0,
        "reason": "cancelled by alice (admin API): customer called in",
    }
    stored = admin.store.get(made.id)
    assert stored is not None and stored.state is State.CANCELLED


def test_cancelling_a_finished_callback_is_409_with_its_state(admin: Admin) -> None:
    made = admin.add("+4930123456")
    assert admin.call(f"/v1/callbacks/{made.id}/cancel", "POST", {"by": "alice"}).status == 200
    resp = admin.call(f"/v1/callbacks/{made.id}/cancel", "POST", {"by": "bob"})
    assert resp.status == 409
    assert resp.json() == {
        "error": "already cancelled",
        "state": "cancelled",
        "hint": f"callback {made.id} is no longer active, so there is nothing to cancel; "
        f"GET /v1/callbacks/{made.id} shows what happened",
    }
    assert [e.reason for e in admin.store.events(made.id)] == ["requested (request)", "cancelled by alice (admin API)"]


def test_cancelling_an_attempt_in_flight_says_the_call_is_not_hung_up(admin: Admin) -> None:
    made = admin.add("+4930123456")
    admin.store.start_attempt(made.id, channel_id="ivrkit-cb-1", action_id="a1")
    resp = admin.call(f"/v1/callbacks/{made.id}/cancel", "POST", {"by": "alice"})
    assert resp.status == 200
    assert resp.json()["note"] == (
        "an attempt was dialing (channel ivrkit-cb-1): no further attempt is made, but a call already in progress "
        "is not hung up"
    )
    # the dispatcher's news of that attempt changes nothing any more
    assert admin.store.finish_attempt(made.id, "ivrkit-cb-1", Result.BUSY, retry_at=NOW, reason="") is None


@pytest.mark.parametrize(
    ("raw", "status", "error", "hint"),
    [
        (None, 400, "bad request", f"send a JSON object: {EXAMPLE}"),
        (b"by=alice", 400, "bad request",
         f"the body is not JSON (Expecting value: line 1 column 1 (char 0)); send {EXAMPLE}"),
        (b'["alice"]', 400, "bad request", f"send a JSON object: {EXAMPLE}"),
        (b"{}", 400, "bad request",
         "say who cancels: a non-empty 'by' (your name or ticket), recorded in the audit trail"),
        (b'{"by": "  "}', 400, "bad request",
         "say who cancels: a non-empty 'by' (your name or ticket), recorded in the audit trail"),
        (b'{"by": 7}', 400, "bad request",
         "say who cancels: a non-empty 'by' (your name or ticket), recorded in the audit trail"),
        (b'{"by": "alice", "reason": 3}', 400, "bad request", "'reason' must be text"),
        (b'{"by": "alice\\nbob"}', 400, "bad request",
         "'by' must be printable text of at most 100 characters"),
        (b'{"by": "alice", "reson": "typo"}', 400, "bad request",
         f"unknown field(s) reson; send {EXAMPLE}"),
        (b"{" + b" " * 70_000 + b"}", 413, "body too large", "send at most 65536 bytes"),
    ],
)  # fmt: skip
def test_a_bad_cancel_body_is_refused_saying_what_to_send_and_cancels_nothing(
    admin: Admin, raw: bytes | None, status: int, error: str, hint: str
) -> None:
    made = admin.add("+4930123456")
    resp = admin.call(f"/v1/callbacks/{made.id}/cancel", "POST", raw=raw)
    assert (resp.status, resp.json()) == (status, {"error": error, "hint": hint})
    stored = admin.store.get(made.id)
    assert stored is not None and stored.state is State.PENDING


def test_a_cancel_without_content_length_is_411(admin: Admin) -> None:
    made = admin.add("+4930123456")
    connection = http.client.HTTPConnection("127.0.0.1", admin.server.port, timeout=10)
    try:
        connection.putrequest("POST", f"/v1/callbacks/{made.id}/cancel")
        connection.putheader("Authorization", f"Bearer {TOKEN}")
        connection.endheaders()
        with connection.getresponse() as resp:
            status, body = resp.status, json.loads(resp.read())
    finally:
        connection.close()
    assert (status, body) == (
        411,
        {
            "error": "length required",
            "hint": f"send a Content-Length header and a JSON body: {EXAMPLE}",
        },
    )


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/callbacks", "GET"),
        ("/v1/callbacks/0123456789abcdef0123456789abcdef", "GET"),
        ("/v1/callbacks/{id}", "GET"),
        ("/v1/callbacks/{id}/cancel", "POST"),
    ],
)
def test_every_callback_route_needs_the_token_and_a_refused_cancel_changes_nothing(
    admin: Admin, path: str, method: str
) -> None:
    made = admin.add("+4930123456")
    url = path.format(id=made.id)
    body = {"by": "mallory"} if method == "POST" else None
    for token in (None, "wrong-token-wrong-token"):
        resp = admin.call(url, method, body, token=token)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert b"+4930" not in resp.body
    stored = admin.store.get(made.id)
    assert stored is not None and stored.state is State.PENDING


def test_wrong_methods_are_405_naming_the_right_one(admin: Admin) -> None:
    made = admin.add("+4930123456")
    for path, method, allowed in [
        ("/v1/callbacks", "POST", "GET"),
        (f"/v1/callbacks/{made.id}", "DELETE", "GET"),
        (f"/v1/callbacks/{made.id}", "POST", "GET"),
        (f"/v1/callbacks/{made.id}/cancel", "GET", "POST"),
        (f"/v1/callbacks/{made.id}/cancel", "PUT", "POST"),
    ]:
        resp = admin.call(path, method, {"by": "alice"} if method != "GET" else None)
        assert (resp.status, resp.headers["Allow"], resp.json()["hint"]) == (405, allowed, f"use {allowed}"), path
    stored = admin.store.get(made.id)
    assert stored is not None and stored.state is State.PENDING


def test_paths_that_are_no_route_are_404_listing_the_routes(admin: Admin) -> None:
    for path in ("/v1/callbacks/", "/v1/callbacks//cancel", "/v1/callbacks/x/cancel/now", "/v1/callback"):
        resp = admin.call(path)
        assert resp.status == 404, path
        assert "POST /v1/callbacks/<id>/cancel" in resp.json()["hint"]


def test_metrics_show_the_stores_callbacks(admin: Admin) -> None:
    admin.add("+4930000001", at=NOW - 300)
    done = admin.add("+4930000002", at=NOW - 100)
    admin.store.cancel(done.id, by="ops")
    resp = admin.call("/metrics")
    assert resp.status == 200
    values = {
        (s.name, s.labels.get("state")): s.value
        for family in text_string_to_metric_families(resp.body.decode())
        for s in family.samples
    }
    assert values[("ivrkit_callbacks", "pending")] == 1
    assert values[("ivrkit_callbacks", "cancelled")] == 1
    assert values[("ivrkit_callbacks", "completed")] == 0
    assert values[("ivrkit_callback_oldest_pending_seconds", None)] == 300


def test_the_store_is_read_on_one_thread_whatever_the_number_of_requests(admin: Admin) -> None:
    made = admin.add("+4930123456")
    for _ in range(5):
        assert admin.call("/v1/callbacks").status == 200
        assert admin.call(f"/v1/callbacks/{made.id}").status == 200
        assert admin.call("/metrics").status == 200
    assert len(admin.store.threads) == 1
    (name,) = admin.store.threads
    assert name.startswith("ivrkit-admin-store")


def test_without_a_callback_store_the_routes_answer_503(database: Database) -> None:
    server = AdminServer("127.0.0.1", 0, TOKEN, lambda: {"status": "ok"}, ServerMetrics())
    server.start()
    try:
        client = Admin(server, ThreadRecordingStore(database), Clock(NOW))
        answers = [client.call("/v1/callbacks"), client.call("/v1/callbacks/abc/cancel", "POST", {"by": "alice"})]
    finally:
        server.stop()
    for resp in answers:
        assert (resp.status, resp.json()) == (
            503,
            {
                "error": "callbacks are not available here",
                "hint": "this server keeps no callback store; ask the `ivrkit serve` that runs the flows",
            },
        )


class BrokenStore(SqliteCallbacks):
    def list(
        self, *, states: Iterable[State | str] | None = None, queue: str | None = None, limit: int = 100
    ) -> list[Callback]:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_failing_store_is_503_and_logged_without_details_to_the_client(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    server = AdminServer(
        "127.0.0.1", 0, TOKEN, lambda: {"status": "ok"}, ServerMetrics(), callbacks=BrokenStore(database)
    )
    server.start()
    try:
        resp = Admin(server, ThreadRecordingStore(database), Clock(NOW)).call("/v1/callbacks")
    finally:
        server.stop()
    assert resp.status == 503
    assert resp.json() == {
        "error": "store unavailable",
        "hint": "the store could not be read or written; see the server log, then try again",
    }
    assert "disk I/O error" in caplog.text


def test_route_matching_doctests() -> None:
    failures, tried = doctest.testmod(admin_module)
    assert (failures, tried > 0) == (0, True)
