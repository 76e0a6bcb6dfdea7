"""The admin HTTP endpoint: `/healthz` for load balancers, `/metrics` for Prometheus, `/v1/links/verify` for the
web side of a text message's link (the context of the call it came from).

Secure by default: it listens on loopback unless told otherwise, and every request must carry the bearer
token, so exposing it by mistake shows nothing. It runs in daemon threads beside the FastAGI server and
never blocks it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from ivrkit.ops.metrics import ServerMetrics
from ivrkit.ops.secrets import MIN_SECRET_LENGTH, load_or_create_secret
from ivrkit.sms.links import BadSignature, ExpiredToken, LinkSigner, MalformedToken, TokenError

log = logging.getLogger("ivrkit.admin")

MIN_TOKEN_LENGTH = MIN_SECRET_LENGTH
_POLL_SECONDS = 0.1  # how often the idle server looks for stop(): bounds how long stop() waits
TOKEN_HINT = (
    "send the admin token in the header 'Authorization: Bearer <token>' "
    "(the token the server was started with: its command line, $IVRKIT_ADMIN_TOKEN or its token file)"
)


def load_or_create_token(path: Path) -> str:
    """The admin token in `path`; on first use a new random one, written readable by the owner only (0600)."""
    return load_or_create_secret(path, "admin token")


def _check_host(host: str, allow_remote: bool) -> int:
    """The address family to listen with; refuses non-loopback addresses unless `allow_remote`."""
    if not host:
        raise ValueError("admin endpoint: no host given; use 127.0.0.1 (or 0.0.0.0 with allow_remote=True)")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ValueError(f"admin endpoint: cannot resolve host {host!r} ({e.strerror}); use e.g. 127.0.0.1") from e
    if not allow_remote:
        remote = sorted({str(info[4][0]) for info in infos if not ipaddress.ip_address(info[4][0]).is_loopback})
        if remote:
            raise ValueError(
                f"admin endpoint: host {host!r} is not a loopback address ({', '.join(remote)}); "
                "listen on 127.0.0.1 or ::1 and reach it through a proxy or tunnel, "
                "or pass allow_remote=True to expose it on the network"
            )
    return int(infos[0][0])


def _check_token(token: str) -> None:
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"admin endpoint: the token must have at least {MIN_TOKEN_LENGTH} characters; "
            "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError("admin endpoint: the token must be printable ASCII without spaces, to travel in a header")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: int, admin: AdminServer) -> None:
        self.address_family = family  # before binding: the base class creates the socket with it
        self.admin = admin
        super().__init__(address, _Handler)


class AdminServer:
    """`GET /healthz`, `/metrics` and `/v1/links/verify` behind a bearer token, served from a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        health: Callable[[], dict[str, Any]],
        metrics: ServerMetrics,
        *,
        allow_remote: bool = False,
        links: LinkSigner | None = None,
    ) -> None:
        _check_token(token)
        self._family = _check_host(host, allow_remote)
        self.host = host
        self._port = port
        self._token = token.encode("ascii")
        self.health = health
        self.metrics = metrics
        self.links = links  # None: links are not verified here (the route answers 404)
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on: the real one once started (also when 0 asked for a free one)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("admin endpoint already started")
        try:
            server = _HTTPServer((self.host, self._port), self._family, self)
        except OSError as e:
            raise OSError(
                e.errno,
                f"admin endpoint cannot listen on {self.host}:{self._port} ({e.strerror}): "
                "choose another port or stop the program using it",
            ) from e
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(_POLL_SECONDS,), name="ivrkit-admin", daemon=True
        )
        self._thread.start()
        log.info("admin endpoint on %s (%s; bearer token required)", self.url, ", ".join(_ROUTES))

    def stop(self) -> None:
        """Stop listening and wait for the serving thread; requests in flight finish in their daemon threads."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), self._token)


LINKS_ROUTE = "/v1/links/verify"
_TOKEN_ERRORS = {MalformedToken: "malformed", BadSignature: "bad signature", ExpiredToken: "expired"}
_ROUTES = ("/healthz", "/metrics", LINKS_ROUTE)


class _Handler(BaseHTTPRequestHandler):
    server_version = "ivrkit-admin"
    sys_version = ""
    timeout = 10  # a client that stops sending does not hold a thread for long

    @property
    def admin(self) -> AdminServer:
        return cast(_HTTPServer, self.server).admin

    def do_GET(self) -> None:
        self._serve("GET")

    def _other(self) -> None:
        self._serve(self.command)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other

    def _serve(self, method: str) -> None:
        if not self.admin._authorized(self.headers.get("Authorization")):
            self._json(401, {"error": "unauthorized", "hint": TOKEN_HINT}, {"WWW-Authenticate": "Bearer"})
            return
        path = urlsplit(self.path).path
        if path not in _ROUTES:
            self._json(404, {"error": "not found", "hint": f"the admin endpoint serves {', '.join(_ROUTES)}"})
        elif method != "GET":
            self._json(405, {"error": f"method {method} not allowed", "hint": "use GET"}, {"Allow": "GET"})
        elif path == "/healthz":
            self._healthz()
        elif path == LINKS_ROUTE:
            self._verify_link(parse_qs(urlsplit(self.path).query).get("token", []))
        else:
            body, content_type = self.admin.metrics.render()
            self._send(200, body, content_type)

    def _healthz(self) -> None:
        try:
            state = self.admin.health()
            status = 200 if state.get("status") == "ok" else 503
        except Exception:
            log.exception("health check failed")
            self._json(500, {"status": "error", "error": "the health check failed; see the server log"})
            return
        self._json(status, state)

    def _verify_link(self, tokens: list[str]) -> None:
        """200 with the call's context, 400 malformed, 401 bad signature, 410 expired."""
        links = self.admin.links
        if links is None:
            self._json(404, {"error": "link verification is off", "hint": "the server was started without a store"})
            return
        if len(tokens) != 1:
            self._json(400, {"error": "malformed", "hint": "pass exactly one token: /v1/links/verify?token=<t>"})
            return
        try:
            context = links.verify(tokens[0])
        except TokenError as error:
            self._json(error.status, {"error": _TOKEN_ERRORS.get(type(error), "invalid"), "detail": str(error)})
            return
        self._json(200, context.to_json())

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, default=str).encode("utf-8") + b"\n"
        self._send(status, data, "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        level = logging.DEBUG if 200 <= status < 400 else logging.WARNING if status == 401 else logging.INFO
        log.log(
            level,
            "admin request",
            extra={
                "client": self.client_address[0],
                "method": self.command,
                "path": getattr(self, "path", None),
                "status": status,
            },
        )

    def log_message(self, format: str, *args: Any) -> None:
        log.info("admin endpoint: " + format, *args)  # protocol errors (bad request lines, timeouts)
