"""Asterisk's side of a connection with canned replies, for tests of the connection and the channel."""

from __future__ import annotations

import socket
import threading

from ivrkit.agi.connection import AgiConnection
from tests.agi.pbx import environment


class Peer:
    """Asterisk's side with canned replies: each command line read gets the next batch of reply lines."""

    def __init__(self, replies: list[list[str]], env: bytes | None = None):
        self.replies = list(replies)
        self.received: list[str] = []
        self.server, self.pbx = socket.socketpair()
        self.env = environment("support") if env is None else env
        self.connections: list[AgiConnection] = []
        self.reader = self.pbx.makefile("rb")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        reader = self.reader
        self.pbx.sendall(self.env)
        for batch in self.replies:
            line = reader.readline()
            if not line:
                return
            self.received.append(line.decode())
            for reply in batch:
                self.pbx.sendall(reply.encode() + b"\n")

    def connect(self, **options: float) -> AgiConnection:
        try:
            connection = AgiConnection(self.server, **options)
        except Exception:
            self.server.close()
            raise
        self.connections.append(connection)
        return connection

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        self.server.close()
        self.reader.close()
        self.pbx.close()


def make(peers: list[Peer], replies: list[list[str]], env: bytes | None = None) -> tuple[Peer, AgiConnection]:
    peer = Peer(replies, env)
    peers.append(peer)
    return peer, peer.connect()
