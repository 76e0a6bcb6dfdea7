"""The TCP side of the FastAGI server: accept, check the peer, bound the sessions, one greenlet per call.

Every call runs as a greenlet on the server's event loop (:mod:`ivrkit.server.loop`), in a thread of its
own (``agi-loop``); the engine and pyst2's command layer stay plain sequential code.
Beyond ``max_sessions`` a connection is refused clearly: the dialplan gets ``IVRKIT_RESULT=error`` and
``IVRKIT_OUTCOME=busy`` from a short refusal session, so the call can take its fallback at once.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from asterisk.agi import AGIError

from ivrkit.agi.connection import AgiConnection
from ivrkit.agi.wire import ProtocolError
from ivrkit.engine.runner import OUTCOME_VARIABLE, RESULT_VARIABLE
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.loop import Loop
from ivrkit.server.session import SessionHandler

log = logging.getLogger("ivrkit.server")

LOOPBACK = ("127.0.0.0/8", "::1/128")
REFUSALS_WAITING = 64  # refused connections answered at once; beyond this they are just closed
REFUSAL_SECONDS = 2.0
ACCEPT_RETRY_SECONDS = 0.1  # after a failed accept (out of file descriptors), try again this much later


@dataclass(frozen=True)
class ListenerSettings:
    host: str = "127.0.0.1"
    port: int = 4573
    max_sessions: int = 2500
    allow: Sequence[str] = LOOPBACK  # client networks allowed to connect
    backlog: int = 1024  # socketserver's default of 5 loses most of a burst of calls


def parse_networks(specs: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``10.0.0.5``, ``10.0.0.0/24``, ``::1`` → networks; a bad entry raises ValueError saying which."""
    networks = []
    for spec in specs:
        try:
            networks.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError as error:
            raise ValueError(f"--allow: '{spec}' is not an address or network (e.g. 10.0.0.0/24)") from error
    return networks


class AgiListener:
    """Owns the event loop thread. ``start``, ``stop_accepting`` and ``wait_idle`` may be called from any
    other thread; everything else runs on the loop."""

    def __init__(self, handler: SessionHandler, metrics: ServerMetrics, settings: ListenerSettings | None = None):
        self.handler = handler
        self.metrics = metrics
        self.settings = settings or ListenerSettings()
        self.networks = parse_networks(self.settings.allow)
        self.active = 0
        self.total = 0
        self._idle = threading.Condition()
        self._port = 0
        self._loop: Loop | None = None
        self._listening: socket.socket | None = None
        self._stopping = False  # read and written on the loop only
        self._accepting_ended = threading.Event()
        self._refusing = 0
        self._allowed_peers: dict[str, bool] = {}

    @property
    def port(self) -> int:
        assert self._port, "start() first"
        return self._port

    def start(self) -> None:
        """Bind (errors raise here) and serve on the loop thread."""
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.host, self.settings.port))
        except OSError as error:
            sock.close()
            raise OSError(
                f"cannot listen on {self.settings.host}:{self.settings.port}: {error.strerror}; "
                "is another server running? choose another --port"
            ) from error
        sock.listen(self.settings.backlog)
        sock.setblocking(False)
        self._port = int(sock.getsockname()[1])
        self._listening = sock
        running = threading.Event()
        threading.Thread(target=self._run_loop, args=(running,), name="agi-loop", daemon=True).start()
        running.wait()
        log.info("FastAGI server listening", extra={"host": self.settings.host, "port": self._port})

    def stop_accepting(self) -> None:
        """No new sessions; running ones go on."""
        if self._loop is not None and not self._accepting_ended.is_set():
            self._loop.call_soon_threadsafe(self._stop_accepting)
            self._accepting_ended.wait()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no session runs; False when some still do after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self.active == 0, timeout)

    # -- the loop thread ------------------------------------------------------------------------------

    def _run_loop(self, running: threading.Event) -> None:
        loop = self._loop = Loop()
        loop.spawn(self._accept_loop)
        running.set()
        loop.run(until=lambda: self._accepting_ended.is_set() and loop.tasks == 0)
        loop.close()

    def _stop_accepting(self) -> None:
        self._stopping = True
        assert self._loop is not None and self._listening is not None
        self._loop.wake(self._listening.fileno())

    def _accept_loop(self) -> None:
        loop, listening = self._loop, self._listening
        assert loop is not None and listening is not None
        loop.attach(listening.fileno())
        try:
            while not self._stopping:
                try:
                    conn, address = listening.accept()
                except BlockingIOError:
                    loop.wait_readable(listening.fileno(), float("inf"))
                    continue
                except OSError as error:
                    log.error("accept failed: %s", error)  # e.g. out of file descriptors: keep serving
                    self.metrics.error("accept")
                    loop.sleep(ACCEPT_RETRY_SECONDS)
                    continue
                self._admit(conn, address[0])
        finally:
            loop.detach(listening.fileno())
            listening.close()
            self._accepting_ended.set()

    def _admit(self, conn: socket.socket, peer: str) -> None:
        if not self._allowed(peer):
            self.metrics.error("refused-address")
            log.warning("connection from %s refused: not in --allow", peer, extra={"peer": peer})
            conn.close()
        elif self.active >= self.settings.max_sessions:
            self.metrics.error("refused-capacity")
            self._refuse(conn, peer)
        else:
            self.active += 1
            self.total += 1
            assert self._loop is not None
            self._loop.spawn(self._serve, conn, peer)

    def _allowed(self, peer: str) -> bool:
        known = self._allowed_peers.get(peer)
        if known is None:
            known = self._check_address(peer)
            if len(self._allowed_peers) < 1024:  # PBXes are few; a scan of many addresses is not cached
                self._allowed_peers[peer] = known
        return known

    def _check_address(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def _serve(self, conn: socket.socket, peer: str) -> None:
        try:
            self.handler.handle(conn, peer, self._loop)
        except BaseException:  # never reached in practice: the handler ends every session itself
            self.metrics.error("crash")
            log.exception("session failed")
        finally:
            with self._idle:
                self.active -= 1
                self._idle.notify_all()

    # -- refusing -------------------------------------------------------------------------------------

    def _refuse(self, conn: socket.socket, peer: str) -> None:
        log.warning(
            "connection from %s refused: %d sessions running (--max-sessions)",
            peer,
            self.settings.max_sessions,
            extra={"peer": peer},
        )
        if self._refusing >= REFUSALS_WAITING:
            conn.close()
            return
        self._refusing += 1
        assert self._loop is not None
        self._loop.spawn(self._tell_busy, conn, peer)

    def _tell_busy(self, conn: socket.socket, peer: str) -> None:
        connection = None
        try:
            connection = AgiConnection(
                conn, environment_seconds=REFUSAL_SECONDS, command_seconds=REFUSAL_SECONDS, waiter=self._loop
            )
            connection.run("SET VARIABLE", OUTCOME_VARIABLE, "busy")
            connection.run("SET VARIABLE", RESULT_VARIABLE, "error")
            connection.close()
        except (AGIError, ProtocolError, OSError) as error:
            log.debug("refusal to %s not delivered: %s", peer, error)
            if connection is not None:
                connection.close()
            else:
                conn.close()
        finally:
            self._refusing -= 1
