"""The admin HTTP endpoint: `/healthz` for load balancers, `/metrics` for Prometheus, `/v1/links/verify` for the
web side of a text message's link (the context of the call it came from), `/v1/callbacks` to list, show and
cancel callbacks, `/v1/maintenance` to switch maintenance on and off and read its status and audit trail.

Secure by default: it listens on loopback unless told otherwise, and every request must carry the bearer
token, so exposing it by mistake shows nothing. It runs in daemon threads beside the FastAGI server and
never blocks it. Whatever reads the store (the callback and maintenance routes, the callback gauges of
`/metrics`) runs on one worker thread: the store keeps a connection per thread, and a thread per request would
open one each.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qs, unquote, urlsplit

from ivrkit.ops import callbacks as views
from ivrkit.ops import maintenance as maintenance_views
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.ops.secrets import MIN_SECRET_LENGTH, load_or_create_secret
from ivrkit.sms.links import BadSignature, ExpiredToken, LinkSigner, MalformedToken, TokenError
from ivrkit.store.callbacks import CallbackFinished, CallbackNotFound
from ivrkit.store.database import StoreError

if TYPE_CHECKING:
    from collections.abc import Collection

    from ivrkit.callbacks.model import Callback, CallbackEvent
    from ivrkit.store.callbacks import CallbackStore
    from ivrkit.store.maintenance import MaintenanceStore

T = TypeVar("T")

log = logging.getLogger("ivrkit.admin")

MIN_TOKEN_LENGTH = MIN_SECRET_LENGTH
_POLL_SECONDS = 0.1  # how often the idle server looks for stop(): bounds how long stop() waits
MAX_BODY = 64 * 1024  # a cancel or a switch is a few hundred bytes; more is a mistake or an attack
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


class StoreUnavailable(Exception):
    """The store could not be read or written (logged with its cause); the client gets a 503."""


class Stopping(Exception):
    """The endpoint is stopping: requests still in flight get a 503."""


class AdminServer:
    """`GET /healthz`, `/metrics`, `/v1/links/verify`, the callback and maintenance routes behind a bearer token,
    served from a background thread.

    ``flow_names`` (the server's flows) lets a switch-on refuse a flow name that is no flow (a typo would put
    nothing into maintenance); without it any well-formed name is taken.
    """

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
        callbacks: CallbackStore | None = None,
        maintenance: MaintenanceStore | None = None,
        flow_names: Callable[[], Collection[str]] | None = None,
    ) -> None:
        _check_token(token)
        self._family = _check_host(host, allow_remote)
        self.host = host
        self._port = port
        self._token = token.encode("ascii")
        self.health = health
        self.metrics = metrics
        self.links = links  # None: links are not verified here (the route answers 404)
        self.callbacks = callbacks  # None: the callback routes answer 503
        self.maintenance = maintenance  # None: the maintenance routes answer 503
        self.flow_names = flow_names
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._store_thread: ThreadPoolExecutor | None = None

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
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ivrkit-admin-store")
        self._thread = threading.Thread(
            target=server.serve_forever, args=(_POLL_SECONDS,), name="ivrkit-admin", daemon=True
        )
        self._thread.start()
        log.info("admin endpoint on %s (%s; bearer token required)", self.url, _ROUTE_LIST)

    def stop(self) -> None:
        """Stop listening and wait for the serving thread; requests in flight finish in their daemon threads."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        if self._store_thread is not None:
            self._store_thread.shutdown(wait=True)  # a store call in flight ends within the store's busy timeout
        self._server = self._thread = self._store_thread = None

    def in_store_thread(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the endpoint's one store thread and return its result (its exceptions raise here);
        :class:`Stopping` when the endpoint is not running."""
        executor = self._store_thread
        if executor is None:
            raise Stopping("the admin endpoint is not running")
        try:
            future = executor.submit(work)
        except RuntimeError as error:  # shut down between the check and the submit
            raise Stopping(str(error)) from error
        return future.result()

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), self._token)


LINKS_ROUTE = "/v1/links/verify"
CALLBACKS_ROUTE = "/v1/callbacks"
MAINTENANCE_ROUTE = "/v1/maintenance"
MAINTENANCE_HISTORY_ROUTE = MAINTENANCE_ROUTE + "/history"
MAINTENANCE_OFF_ROUTE = MAINTENANCE_ROUTE + "/off"
_TOKEN_ERRORS = {MalformedToken: "malformed", BadSignature: "bad signature", ExpiredToken: "expired"}
# (method, path template); "<id>" matches one path segment
_ROUTES = (
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", LINKS_ROUTE),
    ("GET", CALLBACKS_ROUTE),
    ("GET", CALLBACKS_ROUTE + "/<id>"),
    ("POST", CALLBACKS_ROUTE + "/<id>/cancel"),
    ("GET", MAINTENANCE_ROUTE),
    ("POST", MAINTENANCE_ROUTE),
    ("GET", MAINTENANCE_HISTORY_ROUTE),
    ("POST", MAINTENANCE_OFF_ROUTE),
)
_ROUTE_LIST = ", ".join(f"{method} {template}" for method, template in _ROUTES)
CALLBACK_QUERY = ("state", "queue", "limit")
NO_CALLBACKS_HINT = "this server keeps no callback store; ask the `ivrkit serve` that runs the flows"
NO_MAINTENANCE_HINT = "this server keeps no maintenance store; ask the `ivrkit serve` that runs the flows"
STORE_HINT = "the store could not be read or written; see the server log, then try again"
STOPPING_HINT = "the server is shutting down; try again once it is back"


def match_route(path: str) -> tuple[tuple[str, ...], str, str | None] | None:
    """(the methods it allows, template, the ``<id>`` segment or None) of the route ``path`` names; None for no
    route.

    >>> match_route("/v1/callbacks/4f2a/cancel")
    (('POST',), '/v1/callbacks/<id>/cancel', '4f2a')
    >>> match_route("/v1/maintenance")
    (('GET', 'POST'), '/v1/maintenance', None)
    >>> match_route("/v1/callbacks/") is None
    True
    """
    parts = path.split("/")
    for template in dict.fromkeys(template for _, template in _ROUTES):
        expected = template.split("/")
        if len(expected) != len(parts):
            continue
        ident = None
        for want, got in zip(expected, parts):
            if want == "<id>" and got:
                ident = unquote(got)
            elif want != got:
                break
        else:
            return tuple(method for method, known in _ROUTES if known == template), template, ident
    return None


_CANCEL_EXAMPLE = '{"by": "alice", "reason": "the customer called in"}'


class _BadBody(Exception):
    def __init__(self, status: int, error: str, hint: str):
        super().__init__(hint)
        self.status, self.error, self.hint = status, error, hint


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
        url = urlsplit(self.path)
        route = match_route(url.path)
        if route is None:
            self._json(404, {"error": "not found", "hint": f"the admin endpoint serves {_ROUTE_LIST}"})
            return
        allowed, template, ident = route
        if method not in allowed:
            hint = f"use {' or '.join(allowed)}"
            self._json(405, {"error": f"method {method} not allowed", "hint": hint}, {"Allow": ", ".join(allowed)})
        elif template == "/healthz":
            self._healthz()
        elif template == LINKS_ROUTE:
            self._verify_link(parse_qs(url.query).get("token", []))
        elif template == "/metrics":
            self._metrics()
        elif template.startswith(MAINTENANCE_ROUTE):
            self._maintenance(method, template, url.query)
        else:
            self._callbacks(template, ident, url.query)

    def _metrics(self) -> None:
        try:  # the callback gauges read the store: on the store thread like every other store read
            body, content_type = self.admin.in_store_thread(self.admin.metrics.render)
        except Stopping:
            self._json(503, {"error": "stopping", "hint": STOPPING_HINT})
            return
        self._send(200, body, content_type)

    # -- callbacks ------------------------------------------------------------------------------------

    def _callbacks(self, template: str, ident: str | None, query: str) -> None:
        store = self.admin.callbacks
        if store is None:
            self._json(503, {"error": "callbacks are not available here", "hint": NO_CALLBACKS_HINT})
            return
        try:
            if template == CALLBACKS_ROUTE:
                self._list_callbacks(store, query)
            elif template.endswith("/cancel"):
                self._cancel_callback(store, str(ident))
            else:
                self._show_callback(store, str(ident))
        except StoreUnavailable:
            self._json(503, {"error": "store unavailable", "hint": STORE_HINT})
        except Stopping:
            self._json(503, {"error": "stopping", "hint": STOPPING_HINT})
        except Exception:
            log.exception("admin endpoint: %s %s failed", self.command, template)
            self._json(500, {"error": "internal error", "hint": "see the server log"})

    def _store(self, work: Callable[[], T]) -> T:
        """``work`` on the store thread; a store failure is logged and raised as StoreUnavailable."""
        try:
            return self.admin.in_store_thread(work)
        except (CallbackNotFound, CallbackFinished):
            raise  # answers, not failures
        except (StoreError, sqlite3.Error) as error:
            log.error("admin endpoint: the store failed: %s", error, extra={"path": self.path})
            raise StoreUnavailable(str(error)) from error

    def _list_callbacks(self, store: CallbackStore, query: str) -> None:
        params = parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(params) - set(CALLBACK_QUERY))
        try:
            if unknown:
                raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(CALLBACK_QUERY)}")
            states = views.parse_states(params.get("state", []))
            queues = [queue for queue in params.get("queue", []) if queue]
            if len(queues) > 1:
                raise ValueError("give one queue (queue=support), or none for every queue")
            limits = params.get("limit", [])
            if len(limits) > 1:
                raise ValueError("give one limit")
            limit = views.parse_limit(limits[0]) if limits else views.DEFAULT_LIMIT
        except ValueError as error:
            self._json(400, {"error": "bad query", "hint": str(error)})
            return
        queue = queues[0] if queues else None
        found = self._store(lambda: store.list(states=states, queue=queue, limit=limit))
        self._json(200, views.list_json(found, limit))

    def _show_callback(self, store: CallbackStore, ident: str) -> None:
        def read() -> dict[str, Any] | None:
            callback = store.get(ident)
            return None if callback is None else views.detail_json(callback, store.events(ident))

        detail = self._store(read)
        if detail is None:
            self._not_found(ident)
        else:
            self._json(200, detail)

    def _cancel_callback(self, store: CallbackStore, ident: str) -> None:
        try:
            body = self._read_json(_CANCEL_EXAMPLE)
            unknown = sorted(set(body) - {"by", "reason"})
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(unknown)}; send {_CANCEL_EXAMPLE}")
            by, reason = views.check_cancel(body.get("by"), body.get("reason", ""))
        except _BadBody as error:
            self._json(error.status, {"error": error.error, "hint": error.hint})
            return
        except ValueError as error:
            self._json(400, {"error": "bad request", "hint": str(error)})
            return

        def cancel() -> tuple[Callback | None, Callback, list[CallbackEvent]]:
            before = store.get(ident)  # for the note on an attempt in flight
            cancelled = store.cancel(ident, by=f"{by} (admin API)", reason=reason)
            return before, cancelled, store.events(ident)

        try:
            before, cancelled, events = self._store(cancel)
        except CallbackNotFound:
            self._not_found(ident)
            return
        except CallbackFinished as finished:
            state = finished.callback.state.value
            hint = (
                f"callback {ident} is no longer active, so there is nothing to cancel; "
                f"GET {CALLBACKS_ROUTE}/{ident} shows what happened"
            )
            self._json(409, {"error": f"already {state}", "state": state, "hint": hint})
            return
        log.info("callback cancelled through the admin endpoint", extra={"callback": ident, "by": by})
        detail = views.detail_json(cancelled, events)
        note = views.in_flight_note(before) if before is not None else None
        self._json(200, {**detail, "note": note} if note else detail)

    # -- maintenance ----------------------------------------------------------------------------------

    def _maintenance(self, method: str, template: str, query: str) -> None:
        store = self.admin.maintenance
        if store is None:
            self._json(503, {"error": "maintenance is not available here", "hint": NO_MAINTENANCE_HINT})
            return
        route: Callable[[], tuple[int, dict[str, Any]]]
        try:
            if template == MAINTENANCE_OFF_ROUTE:
                body = self._read_json(maintenance_views.OFF_EXAMPLE)
                route = partial(maintenance_views.switch_off_route, store, body)
            elif method == "POST":
                body = self._read_json(maintenance_views.ON_EXAMPLE)
                route = partial(maintenance_views.switch_on_route, store, body, self.admin.flow_names)
            elif template == MAINTENANCE_HISTORY_ROUTE:
                route = partial(maintenance_views.history_route, store, query)
            else:
                route = partial(maintenance_views.status_route, store, query)
            status, answer = self._store(route)  # checks included: they read the store's clock
        except _BadBody as error:
            self._json(error.status, {"error": error.error, "hint": error.hint})
            return
        except StoreUnavailable:
            self._json(503, {"error": "store unavailable", "hint": STORE_HINT})
            return
        except Stopping:
            self._json(503, {"error": "stopping", "hint": STOPPING_HINT})
            return
        except Exception:
            log.exception("admin endpoint: %s %s failed", self.command, template)
            self._json(500, {"error": "internal error", "hint": "see the server log"})
            return
        if method == "POST" and status < 300:
            changed = [answer["window"]] if "window" in answer else answer["ended"]
            log.info(
                "maintenance changed through the admin endpoint",
                extra={"route": template, "windows": [window["id"] for window in changed]},
            )
        self._json(status, answer)

    def _not_found(self, ident: str) -> None:
        self._json(
            404,
            {
                "error": "no such callback",
                "hint": f"no callback has the id {ident!r}; GET {CALLBACKS_ROUTE} lists them with their ids",
            },
        )

    def _read_json(self, example: str) -> dict[str, Any]:
        """The request's JSON object; _BadBody says what is wrong with it (``example``: what to send)."""
        if self.headers.get("Transfer-Encoding"):
            raise _BadBody(411, "length required", "send the body with a Content-Length header, not chunked")
        length_header = self.headers.get("Content-Length")
        if not length_header:
            raise _BadBody(411, "length required", f"send a Content-Length header and a JSON body: {example}")
        try:
            length = int(length_header)
        except ValueError:
            raise _BadBody(400, "bad request", "Content-Length must be a number") from None
        if length > MAX_BODY or length < 0:
            raise _BadBody(413, "body too large", f"send at most {MAX_BODY} bytes")
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _BadBody(400, "bad request", f"the body is not JSON ({error}); send {example}") from None
        if not isinstance(body, dict):
            raise _BadBody(400, "bad request", f"send a JSON object: {example}")
        return body

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
