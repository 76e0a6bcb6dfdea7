"""Requests to a real admin endpoint for the ops tests: never through a configured proxy, errors as answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

TOKEN = "t0k3n-for-tests-0123456789"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    token: str | None = TOKEN,
    method: str = "GET",
    auth: str | None = None,
    *,
    body: Any = None,
    raw: bytes | None = None,
) -> Response:
    """``body`` is sent as JSON, ``raw`` as it is; ``auth`` replaces the bearer header of ``token``."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if auth is not None:
        req.add_header("Authorization", auth)
    elif token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with _opener.open(req, timeout=10) as resp:
            return Response(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read())
