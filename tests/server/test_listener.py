"""The TCP side: allow-list, session bound with a clear refusal, draining, and bad peers of every kind."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.library import FlowLibrary
from ivrkit.server.listener import AgiListener, ListenerSettings
from ivrkit.server.session import SessionHandler, SessionSettings
from tests.agi.pbx import FakePbx, Transcript, environment


def start(library: FlowLibrary, **settings: object) -> AgiListener:
    handler = SessionHandler(library, ServerMetrics(), SessionSettings(environment_seconds=0.5, command_seconds=2.0))
    listener = AgiListener(handler, handler.metrics, ListenerSettings(port=0, **settings))  # type: ignore[arg-type]
    listener.start()
    return listener


@pytest.fixture
def listener(library: FlowLibrary) -> Iterator[AgiListener]:
    listener = start(library)
    yield listener
    listener.stop_accepting()


def call(port: int, actions: list[str] | None = None, script: str = "desk") -> Transcript:
    return FakePbx(script, actions if actions is not None else ["1"]).run(socket.create_connection(("127.0.0.1", port)))


def held_call(port: int) -> tuple[socket.socket, bytes]:
    """A call that stays in progress: the environment is sent, the first command is never answered."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(environment("desk"))
    return sock, readline(sock)


def readline(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return line


def test_a_call_over_tcp(listener: AgiListener) -> None:
    transcript = call(listener.port)
    assert transcript.variables["IVRKIT_RESULT"] == "queue"
    assert listener.wait_idle(5) and listener.total == 1


def test_address_not_allowed_is_closed_unserved(library: FlowLibrary, caplog: pytest.LogCaptureFixture) -> None:
    listener = start(library, allow=("10.0.0.0/8",))
    try:
        transcript = call(listener.port)
        assert transcript.commands == []
        assert "not in --allow" in caplog.text
        assert listener.total == 0
    finally:
        listener.stop_accepting()


def test_bad_allow_list_entry_names_itself(library: FlowLibrary) -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300' is not an address"):
        AgiListener(SessionHandler(library, ServerMetrics()), ServerMetrics(), ListenerSettings(allow=("10.0.0.300",)))


def test_beyond_max_sessions_the_dialplan_is_told_busy(library: FlowLibrary) -> None:
    listener = start(library, max_sessions=1)
    try:
        holder, first = held_call(listener.port)
        assert first == b"ANSWER\n"
        refused = call(listener.port)
        assert refused.variables == {"IVRKIT_OUTCOME": "busy", "IVRKIT_RESULT": "error"}
        holder.close()
        assert listener.wait_idle(5)
        assert call(listener.port).variables["IVRKIT_RESULT"] == "queue"  # room again
    finally:
        listener.stop_accepting()


def test_drain_lets_running_calls_finish(library: FlowLibrary) -> None:
    listener = start(library)
    holder, _ = held_call(listener.port)
    listener.stop_accepting()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", listener.port), timeout=1)
    assert not listener.wait_idle(0.05)  # the held call still runs
    holder.sendall(b"200 result=0\n")  # the call goes on: it is still served
    assert readline(holder).startswith(b"STREAM FILE en/ivrkit/welcome")
    holder.close()
    assert listener.wait_idle(5)


BAD_PEERS: dict[str, bytes | None] = {
    "closes at once": b"",
    "garbage": b"\x00\xff garbage \x01\n\n",
    "http": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "oversized line": b"agi_network: yes\nagi_x: " + b"A" * 100_000 + b"\n\n",
    "endless environment": b"agi_network: yes\n" * 1000,
    "half an environment": b"agi_network: yes\nagi_uniq",
    "silent": None,
}


def bad_peer(port: int, data: bytes | None, half_close: bool) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        if data:
            sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            while sock.recv(4096):
                pass
        elif data is None:
            sock.settimeout(5)
            sock.recv(1)  # the server gives up on a silent peer: recv returns b"" when it closes
    except OSError:
        pass
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
        sock.close()


def test_bad_peers_never_disturb_good_calls(listener: AgiListener, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ivrkit")
    good: list[Transcript] = []
    threads = [threading.Thread(target=lambda: good.append(call(listener.port))) for _ in range(5)]
    threads += [
        threading.Thread(target=bad_peer, args=(listener.port, data, half))
        for data in BAD_PEERS.values()
        for half in (False, True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [t.variables["IVRKIT_RESULT"] for t in good] == ["queue"] * 5
    assert listener.wait_idle(5)
    dropped = [r.getMessage() for r in caplog.records if "dropped before it started" in r.getMessage()]
    assert len(dropped) == 2 * len(BAD_PEERS)
    assert all(("127.0.0.1" in message and ": " in message) for message in dropped)  # each with its cause
    assert call(listener.port).variables["IVRKIT_RESULT"] == "queue"


def test_a_peer_that_vanishes_mid_call(listener: AgiListener, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ivrkit")
    holder, _ = held_call(listener.port)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    holder.close()  # connection reset in the middle of ANSWER
    assert listener.wait_idle(5)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert call(listener.port).variables["IVRKIT_RESULT"] == "queue"
