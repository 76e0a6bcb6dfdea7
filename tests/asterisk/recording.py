"""The real session handler, keeping each session's result for the test to read, and an in-process server
running it on a flow written by the test."""

from __future__ import annotations

import contextlib
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

from ivrkit.agi.transport import Waiter
from ivrkit.engine.runner import SessionResult
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.library import FlowLibrary
from ivrkit.server.listener import AgiListener, ListenerSettings
from ivrkit.server.session import SessionHandler


class RecordingHandler(SessionHandler):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.results: list[SessionResult | None] = []  # None: a session that ran no flow

    def handle(self, sock: socket.socket, peer: str, waiter: Waiter | None = None) -> SessionResult | None:
        result = super().handle(sock, peer, waiter)
        self.results.append(result)
        return result


@contextlib.contextmanager
def serving(folder: Path, name: str, flow: str) -> Iterator[tuple[AgiListener, RecordingHandler]]:
    """A listener on a free port serving the one flow ``flow`` (YAML, dedented), written to ``folder``."""
    flows = folder / "flows"
    flows.mkdir()
    (flows / f"{name}.yaml").write_text(textwrap.dedent(flow))
    library = FlowLibrary(flows)
    assert library.reload().ok
    handler = RecordingHandler(library, ServerMetrics())
    listener = AgiListener(handler, handler.metrics, ListenerSettings(port=0))
    listener.start()
    try:
        yield listener, handler
    finally:
        listener.stop_accepting()
