"""The real session handler, keeping each session's result for the test to read."""

from __future__ import annotations

import socket

from ivrkit.agi.transport import Waiter
from ivrkit.engine.runner import SessionResult
from ivrkit.server.session import SessionHandler


class RecordingHandler(SessionHandler):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.results: list[SessionResult | None] = []  # None: a session that ran no flow

    def handle(self, sock: socket.socket, peer: str, waiter: Waiter | None = None) -> SessionResult | None:
        result = super().handle(sock, peer, waiter)
        self.results.append(result)
        return result
