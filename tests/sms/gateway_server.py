"""A real local HTTP server standing in for an SMS provider: scripted answers, every request recorded.

Each request takes the next scripted :class:`Answer` (200 with a provider id once the script is used up). An
answer with ``hang`` never responds: it holds the connection until the test ends, which is how a gateway that
times out looks from the client. Tests wait on :meth:`GatewayServer.next_request` (an event), never on sleeps.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (the client times out)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for every handler: no socket outlives the test
    gateway: GatewayServer


class _Handler(BaseHTTPRequestHandler):
    def _any(self) -> None:
        gateway = self.server.gateway  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = Received(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
        answer = gateway.take(received)
        if answer.hang:
            gateway.released.wait(WAIT_SECONDS)
            self.close_connection = True
            return
        data = answer.body.encode("utf-8")
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


class GatewayServer:
    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.gateway = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/messages"
        self.answers: deque[Answer] = deque()
        self.received: list[Received] = []
        self._arrivals: queue.Queue[Received] = queue.Queue()
        self._lock = threading.Lock()
        self._count = 0
        self.released = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def script(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def take(self, received: Received) -> Answer:
        with self._lock:
            self.received.append(received)
            self._count += 1
            answer = self.answers.popleft() if self.answers else Answer(200, json.dumps({"id": f"p-{self._count}"}))
        self._arrivals.put(received)
        return answer

    def next_request(self, timeout: float = WAIT_SECONDS) -> Received:
        return self._arrivals.get(timeout=timeout)

    def requests_for(self, key: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.headers.get("Idempotency-Key") == key]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextmanager
def gateway_server() -> Iterator[GatewayServer]:
    server = GatewayServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
