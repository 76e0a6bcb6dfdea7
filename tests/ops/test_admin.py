"""The admin endpoint, over real HTTP on 127.0.0.1: health for load balancers, metrics, the token, safe defaults."""

from __future__ import annotations

import logging
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivrkit.ops.admin import AdminServer, load_or_create_token
from ivrkit.ops.metrics import ServerMetrics
from tests.ops.http import TOKEN, Response, request


@dataclass
class Admin:
    server: AdminServer
    metrics: ServerMetrics
    state: dict[str, Any] = field(default_factory=lambda: {"status": "ok", "sessions_active": 0})

    def get(self, path: str, **kwargs: Any) -> Response:
        return request(self.server.url + path, **kwargs)


@pytest.fixture
def admin() -> Iterator[Admin]:
    metrics = ServerMetrics()
    state: dict[str, Any] = {"status": "ok", "sessions_active": 0}
    server = AdminServer("127.0.0.1", 0, TOKEN, lambda: dict(state), metrics)
    server.start()
    try:
        yield Admin(server, metrics, state)
    finally:
        server.stop()


def test_port_zero_picks_a_free_port_and_url_names_it(admin: Admin) -> None:
    assert admin.server.port > 0
    assert admin.server.url == f"http://127.0.0.1:{admin.server.port}"


def test_healthz_is_200_with_the_health_json_when_ok(admin: Admin) -> None:
    admin.state["sessions_active"] = 3
    resp = admin.get("/healthz")
    assert resp.status == 200
    assert resp.headers.get_content_type() == "application/json"
    assert resp.json() == {"status": "ok", "sessions_active": 3}


def test_healthz_is_503_while_draining_so_the_load_balancer_sends_no_more_calls(admin: Admin) -> None:
    admin.state["status"] = "draining"
    resp = admin.get("/healthz")
    assert resp.status == 503
    assert resp.json()["status"] == "draining"


def test_healthz_is_500_when_the_health_callback_fails(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("library lock poisoned")

    server = AdminServer("127.0.0.1", 0, TOKEN, broken, ServerMetrics())
    server.start()
    try:
        with caplog.at_level(logging.ERROR, logger="ivrkit.admin"):
            resp = request(server.url + "/healthz")
    finally:
        server.stop()
    assert resp.status == 500
    assert resp.json()["status"] == "error"
    assert b"poisoned" not in resp.body  # details go to the log, not to whoever asks
    assert any(r.exc_info and "poisoned" in str(r.exc_info[1]) for r in caplog.records)


def test_metrics_serves_prometheus_text_that_follows_the_server(admin: Admin) -> None:
    def sessions() -> float:
        resp = admin.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        families = {f.name: f for f in text_string_to_metric_families(resp.body.decode())}
        return sum(s.value for s in families["ivrkit_sessions"].samples if s.name == "ivrkit_sessions_total")

    assert sessions() == 0
    admin.metrics.session_started("support")
    admin.metrics.session_started("billing")
    assert sessions() == 2


def test_query_strings_are_ignored(admin: Admin) -> None:
    assert admin.get("/metrics?name[]=ivrkit_sessions_active").status == 200


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/healthz", None),
        ("/metrics", None),
        ("/metrics", "Bearer wrong-token-wrong-token"),
        ("/metrics", f"Bearer {TOKEN}x"),
        ("/metrics", f"Basic {TOKEN}"),
        ("/metrics", "Bearer"),
        ("/nowhere", None),
    ],
)
def test_requests_without_the_right_token_get_401_saying_how_to_send_it(
    admin: Admin, path: str, auth: str | None
) -> None:
    resp = admin.get(path, token=None, auth=auth)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert "Authorization: Bearer <token>" in resp.json()["hint"]
    assert b"ivrkit_" not in resp.body


def test_the_scheme_is_case_insensitive(admin: Admin) -> None:
    assert admin.get("/healthz", auth=f"bearer {TOKEN}").status == 200


def test_unknown_paths_are_404_and_other_methods_405(admin: Admin) -> None:
    assert admin.get("/").status == 404
    assert admin.get("/metrics/extra").status == 404
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        resp = admin.get("/metrics", method=method)
        assert resp.status == 405, method
        assert resp.headers["Allow"] == "GET"
    assert admin.get("/metrics", method="POST", token=None).status == 401


def test_access_log_goes_to_the_ivrkit_admin_logger_not_stderr(
    admin: Admin, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG, logger="ivrkit.admin"):
        admin.get("/metrics")
        admin.get("/metrics", token="wrong-token-wrong-token")
    records = [r for r in caplog.records if r.name == "ivrkit.admin" and r.getMessage() == "admin request"]
    assert [(r.levelno, r.__dict__["status"], r.__dict__["path"]) for r in records] == [
        (logging.DEBUG, 200, "/metrics"),
        (logging.WARNING, 401, "/metrics"),
    ]
    assert TOKEN not in caplog.text
    assert capsys.readouterr().err == ""


def test_stop_closes_the_port(admin: Admin) -> None:
    url = admin.server.url
    admin.server.stop()
    with pytest.raises(urllib.error.URLError):
        request(url + "/healthz")
    admin.server.stop()  # a second stop is harmless


def test_a_port_in_use_is_reported_with_what_to_do(admin: Admin) -> None:
    other = AdminServer("127.0.0.1", admin.server.port, TOKEN, lambda: {"status": "ok"}, ServerMetrics())
    with pytest.raises(OSError, match="choose another port"):
        other.start()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_a_non_loopback_host_is_refused_unless_allowed(host: str) -> None:
    with pytest.raises(ValueError, match=r"not a loopback address.*allow_remote=True"):
        AdminServer(host, 0, TOKEN, lambda: {"status": "ok"}, ServerMetrics())
    AdminServer(host, 0, TOKEN, lambda: {"status": "ok"}, ServerMetrics(), allow_remote=True)  # not started


def test_localhost_by_name_is_loopback() -> None:
    AdminServer("localhost", 0, TOKEN, lambda: {"status": "ok"}, ServerMetrics())


@pytest.mark.parametrize("token", ["", "short", "x" * 15, "sixteen chars ok", "tab\tin-the-token-1234"])
def test_empty_short_or_unsendable_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="token"):
        AdminServer("127.0.0.1", 0, token, lambda: {"status": "ok"}, ServerMetrics())


def test_token_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ivrkit" / "admin-token"
    token = load_or_create_token(path)
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == token
    assert load_or_create_token(path) == token
    AdminServer("127.0.0.1", 0, token, lambda: {"status": "ok"}, ServerMetrics())  # good enough for the server


def test_an_existing_token_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    assert load_or_create_token(path) == TOKEN


def test_a_token_file_others_can_read_is_used_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "admin-token"
    path.write_text(TOKEN)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ivrkit.admin"):
        assert load_or_create_token(path) == TOKEN
    assert "chmod 600" in caplog.text


def test_an_empty_token_file_is_an_error_saying_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    path.write_text("\n")
    with pytest.raises(ValueError, match="delete it"):
        load_or_create_token(path)
