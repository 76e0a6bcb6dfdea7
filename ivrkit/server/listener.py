"""The TCP side of the FastAGI server: accept, check the peer, bound the sessions, one thread per call.

A thread per call fits the engine (a flow is plain sequential code) and pyst2's blocking command layer, and
a call spends nearly all its life waiting for Asterisk, so thousands of mostly idle threads cost little.
Threads are kept for the next call (starting one took a sixth of the server's time under load) and end
after ``IDLE_WORKER_SECONDS`` without work.
Beyond ``max_sessions`` a connection is refused clearly: the dialplan gets ``IVRKIT_RESULT=error`` and
``IVRKIT_OUTCOME=busy`` from a small refusal worker, so the call can take its fallback at once.
"""

from __future__ import annotations

import _thread
import ipaddress
import logging
import queue
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from asterisk.agi import AGIError

from ivrkit.agi.connection import AgiConnection
from ivrkit.agi.wire import ProtocolError
from ivrkit.engine.runner import OUTCOME_VARIABLE, RESULT_VARIABLE
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.session import SessionHandler

log = logging.getLogger("ivrkit.server")

LOOPBACK = ("127.0.0.0/8", "::1/128")
REFUSALS_WAITING = 64  # refused connections answered at once; beyond this they are just closed
REFUSAL_SECONDS = 2.0
ACCEPT_POLL_SECONDS = 0.25  # how soon the accept loop notices it should stop
IDLE_WORKER_SECONDS = 30.0  # a thread with no call for this long ends


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
    def __init__(self, handler: SessionHandler, metrics: ServerMetrics, settings: ListenerSettings | None = None):
        self.handler = handler
        self.metrics = metrics
        self.settings = settings or ListenerSettings()
        self.networks = parse_networks(self.settings.allow)
        self.active = 0
        self.total = 0
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._sock: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._refusals: queue.Queue[tuple[socket.socket, str]] = queue.Queue(REFUSALS_WAITING)
        self._work: queue.SimpleQueue[tuple[socket.socket, str]] = queue.SimpleQueue()
        self._idle_workers = 0  # guarded by _lock
        self._allowed_peers: dict[str, bool] = {}

    @property
    def port(self) -> int:
        assert self._sock is not None, "start() first"
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        """Bind and start accepting in a background thread."""
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
        sock.settimeout(ACCEPT_POLL_SECONDS)
        self._sock = sock
        self._acceptor = threading.Thread(target=self._accept_loop, name="agi-accept", daemon=True)
        self._acceptor.start()
        threading.Thread(target=self._refusal_loop, name="agi-refuse", daemon=True).start()
        log.info("FastAGI server listening", extra={"host": self.settings.host, "port": self.port})

    def stop_accepting(self) -> None:
        """No new sessions; running ones go on."""
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join()
        if self._sock is not None:
            self._sock.close()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no session runs; False when some still do after ``timeout`` seconds."""
        with self._lock:
            return self._lock.wait_for(lambda: self.active == 0, timeout)

    # -- accepting ------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, address = self._sock.accept()
            except TimeoutError:
                continue
            except OSError as error:
                if self._stopping.is_set():
                    return
                log.error("accept failed: %s", error)  # e.g. out of file descriptors: keep serving
                self.metrics.error("accept")
                self._stopping.wait(0.1)
                continue
            conn.settimeout(None)
            self._admit(conn, address[0])

    def _admit(self, conn: socket.socket, peer: str) -> None:
        if not self._allowed(peer):
            self.metrics.error("refused-address")
            log.warning("connection from %s refused: not in --allow", peer, extra={"peer": peer})
            conn.close()
            return
        with self._lock:
            if self.active >= self.settings.max_sessions:
                full = True
            else:
                full = False
                self.active += 1
                self.total += 1
        if full:
            self.metrics.error("refused-capacity")
            self._refuse(conn, peer)
            return
        with self._lock:
            spawn = self._idle_workers == 0
            if not spawn:
                self._idle_workers -= 1  # that worker is promised this call
            self._work.put((conn, peer))
        if spawn:
            try:
                # the low-level call: a threading.Thread object and its events cost 2 kB more per held call
                _thread.start_new_thread(self._worker, ())
            except RuntimeError as error:  # the system will not give us another thread
                conn, peer = self._work.get()
                self._finished()
                self.metrics.error("refused-capacity")
                log.error("cannot start a session thread: %s", error)
                self._refuse(conn, peer)

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

    def _worker(self) -> None:
        """Serve calls one after another; end after a while without one."""
        while True:
            try:
                conn, peer = self._work.get(timeout=IDLE_WORKER_SECONDS)
            except queue.Empty:
                with self._lock:
                    try:
                        conn, peer = self._work.get_nowait()  # promised to us just as we timed out
                    except queue.Empty:
                        self._idle_workers -= 1
                        return
            self._serve(conn, peer)
            with self._lock:
                self._idle_workers += 1

    def _serve(self, conn: socket.socket, peer: str) -> None:
        try:
            self.handler.handle(conn, peer)
        except BaseException:  # never reached in practice: the handler ends every session itself
            self.metrics.error("crash")
            log.exception("session thread failed")
        finally:
            self._finished()

    def _finished(self) -> None:
        with self._lock:
            self.active -= 1
            self._lock.notify_all()

    # -- refusing -------------------------------------------------------------------------------------

    def _refuse(self, conn: socket.socket, peer: str) -> None:
        try:
            self._refusals.put_nowait((conn, peer))
        except queue.Full:
            conn.close()
        log.warning(
            "connection from %s refused: %d sessions running (--max-sessions)",
            peer,
            self.settings.max_sessions,
            extra={"peer": peer},
        )

    def _refusal_loop(self) -> None:
        while True:
            conn, peer = self._refusals.get()
            try:
                connection = AgiConnection(conn, environment_seconds=REFUSAL_SECONDS, command_seconds=REFUSAL_SECONDS)
                connection.run("SET VARIABLE", OUTCOME_VARIABLE, "busy")
                connection.run("SET VARIABLE", RESULT_VARIABLE, "error")
                connection.close()
            except (AGIError, ProtocolError, OSError) as error:
                log.debug("refusal to %s not delivered: %s", peer, error)
                conn.close()
