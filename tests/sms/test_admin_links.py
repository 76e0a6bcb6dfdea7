"""``GET /v1/links/verify`` on the real admin server: the call's context for a web chat, or why not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from ivrkit.ops.admin import AdminServer
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.sms.links import LinkContext, LinkSigner
from tests.ops.test_admin import TOKEN, Response, request

SIGNER = LinkSigner(b"s" * 32)


@pytest.fixture
def admin() -> Iterator[AdminServer]:
    server = AdminServer("127.0.0.1", 0, TOKEN, lambda: {"status": "ok"}, ServerMetrics(), links=SIGNER)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def verify(admin: AdminServer, link_token: str, token: str | None = TOKEN) -> Response:
    return request(f"{admin.url}/v1/links/verify?token={quote(link_token)}", token=token)


def fresh(queue: str | None = "support", position: int | None = 3) -> str:
    return SIGNER.issue("+4915112345678", "support", queue, position, time.time(), 600)


def test_a_good_token_gives_the_call_context(admin: AdminServer) -> None:
    issued = int(time.time())
    token = SIGNER.sign(LinkContext("+4915112345678", "support", "support", 3, issued, issued + 3600))
    response = verify(admin, token)
    assert (response.status, response.headers["Content-Type"]) == (200, "application/json")
    assert response.json() == {"caller": "+4915112345678", "flow": "support", "queue": "support", "position": 3,
                               "time": issued, "exp": issued + 3600}  # fmt: skip


def test_without_a_queue_the_context_says_so(admin: AdminServer) -> None:
    response = verify(admin, fresh(queue=None, position=None))
    assert response.status == 200
    assert (response.json()["queue"], response.json()["position"]) == (None, None)


def test_malformed_bad_signature_and_expired_are_told_apart(admin: AdminServer) -> None:
    malformed = verify(admin, "not-a-token")
    assert (malformed.status, malformed.json()["error"]) == (400, "malformed")
    other = LinkSigner(b"o" * 32).issue("+491", "support", None, None, time.time(), 600)
    forged = verify(admin, other)
    assert (forged.status, forged.json()["error"]) == (401, "bad signature")
    assert "WWW-Authenticate" not in forged.headers  # the admin token was fine: this is about the link
    expired = verify(admin, SIGNER.issue("+491", "support", None, None, time.time() - 7200, 3600))
    assert (expired.status, expired.json()) == (410, {"error": "expired", "detail": "the link has expired"})


@pytest.mark.parametrize("query", ["", "?token=", "?t=abc", "?token=a&token=b"])
def test_a_missing_or_doubled_token_is_malformed(admin: AdminServer, query: str) -> None:
    response = request(f"{admin.url}/v1/links/verify{query}")
    assert response.status == 400
    assert response.json()["error"] == "malformed"


def test_the_admin_token_is_required_and_only_get_is_served(admin: AdminServer) -> None:
    token = fresh()
    unauthorized = verify(admin, token, token=None)
    assert (unauthorized.status, unauthorized.json()["error"]) == (401, "unauthorized")
    assert request(f"{admin.url}/v1/links/verify?token={token}", method="POST").status == 405


def test_an_admin_server_without_a_signer_does_not_verify() -> None:
    server = AdminServer("127.0.0.1", 0, TOKEN, lambda: {"status": "ok"}, ServerMetrics())
    server.start()
    try:
        response = request(f"{server.url}/v1/links/verify?token={fresh()}")
    finally:
        server.stop()
    assert (response.status, response.json()["error"]) == (404, "link verification is off")
