"""A TCP relay between an AMI client and the real Asterisk that a test can cut, freeze or make refuse.

Cutting closes both sides, as a network drop with a reset would; freezing keeps the sockets open but stops
forwarding, as a half-open connection or a hung Asterisk would; refusing closes each new connection at once,
as a firewall would. ``blocked`` holds back (and then drops the connection on) the first client bytes that
contain a given text, e.g. ``b"Action: Originate"``, so an action is lost on the way exactly when sent.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class Relay:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.listener = socket.create_server((host, 0))
        self.port = int(self.listener.getsockname()[1])
        self.accepted = 0
        self.refusing = False
        self.block: bytes | None = None
        """Client bytes containing this are not forwarded: the connection is cut instead (one time)."""
        self.blocked: list[bytes] = []
        self.drop_replies_to: bytes | None = None
        """Client bytes containing this are forwarded, then the connection is cut before any reply (one time)."""
        self._changed = threading.Condition()
        self._pairs: list[_Pair] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="ami-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._changed:
                self.accepted += 1
                self._changed.notify_all()
                refuse = self.refusing or self._closed
            if refuse:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(self, client, server)
            with self._changed:
                self._pairs.append(pair)
            pair.start()

    def wait_accepted(self, count: int, timeout: float = 10.0) -> bool:
        """Until ``count`` connections were accepted in all (refused ones included)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.accepted >= count, timeout)

    def cut(self) -> None:
        """Close every relayed connection, both sides."""
        with self._changed:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()

    def freeze(self) -> None:
        """Stop forwarding on the current connections; sockets stay open (new connections relay normally)."""
        with self._changed:
            for pair in self._pairs:
                pair.frozen = True

    def close(self) -> None:
        with self._changed:
            self._closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        self.listener.close()
        self._thread.join(5)
        self.cut()

    def _forget(self, pair: _Pair) -> None:
        with self._changed:
            if pair in self._pairs:
                self._pairs.remove(pair)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pair:
    def __init__(self, relay: Relay, client: socket.socket, server: socket.socket) -> None:
        self.relay = relay
        self.client = client
        self.server = server
        self.frozen = False
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True),
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        relay = self.relay
        try:
            while True:
                data = source.recv(65536)
                if not data or self.frozen:
                    if data:
                        continue  # frozen: swallow, keep the socket open
                    break
                if from_client and relay.block is not None and relay.block in data:
                    relay.blocked.append(data)
                    relay.block = None
                    break
                target.sendall(data)
                if from_client and relay.drop_replies_to is not None and relay.drop_replies_to in data:
                    relay.drop_replies_to = None
                    break
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(5)
        for sock in (self.client, self.server):
            sock.close()
        self.relay._forget(self)
