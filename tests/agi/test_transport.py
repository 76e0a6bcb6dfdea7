"""Lines and blocks over a socket, whatever way the bytes are cut into segments; time limits; big writes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from ivrkit.agi.transport import BLOCKING, LineSocket, LineTooLong


@pytest.fixture
def pair() -> Iterator[tuple[LineSocket, socket.socket]]:
    ours, peer = socket.socketpair()
    lines = LineSocket(ours)
    yield lines, peer
    lines.close()
    peer.close()


def feed(peer: socket.socket, *segments: bytes) -> threading.Thread:
    """Send each segment on its own, the next only once the reader has asked for more."""

    def send() -> None:
        for segment in segments:
            peer.sendall(segment)
            threading.Event().wait(0.01)  # let the reader consume it first: separate segments

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "segments",
    [
        [b"agi_a: 1\nagi_b: 2\n\n200 result=1\n"],
        [b"agi_a: 1\n", b"agi_b: 2\n", b"\n", b"200 result=1\n"],
        [b"agi_a: 1\nagi_b: 2\n", b"\n200 result=1\n"],
        [b"agi_a", b": 1\nagi_b: 2\n\n200 re", b"sult=1\n"],
    ],
)
def test_a_block_then_a_line_however_the_segments_fall(
    pair: tuple[LineSocket, socket.socket], segments: list[bytes]
) -> None:
    lines, peer = pair
    feed(peer, *segments)
    assert lines.read_block(100, 10, 5.0) == [b"agi_a: 1", b"agi_b: 2"]
    assert lines.read_line(100, 5.0) == b"200 result=1"


def test_a_block_of_one_line_whose_blank_line_comes_later(pair: tuple[LineSocket, socket.socket]) -> None:
    lines, peer = pair
    feed(peer, b"agi_a: 1\n", b"\n")
    assert lines.read_block(100, 10, 5.0) == [b"agi_a: 1"]


def test_an_empty_block_and_the_end_of_the_stream(pair: tuple[LineSocket, socket.socket]) -> None:
    lines, peer = pair
    peer.sendall(b"\nlast\n")
    peer.shutdown(socket.SHUT_WR)
    assert lines.read_block(100, 10, 5.0) == []
    assert lines.read_line(100, 5.0) == b"last"
    assert lines.read_line(100, 5.0) is None


def test_limits(pair: tuple[LineSocket, socket.socket]) -> None:
    lines, peer = pair
    peer.sendall(b"x" * 101 + b"\n")
    with pytest.raises(LineTooLong, match="longer than 100 bytes"):
        lines.read_line(100, 5.0)
    peer.sendall(b"a\n" * 20)
    with pytest.raises(LineTooLong, match="more than 10 lines"):
        lines.read_block(100, 10, 5.0)


def test_a_line_that_never_ends_is_refused_before_it_fills_memory(pair: tuple[LineSocket, socket.socket]) -> None:
    lines, peer = pair
    peer.sendall(b"y" * 5000)  # no newline yet: refused once past the limit, without waiting for more
    with pytest.raises(LineTooLong):
        lines.read_line(1000, 5.0)


def test_silence_raises_timeout_error_and_the_partial_line_is_kept(pair: tuple[LineSocket, socket.socket]) -> None:
    lines, peer = pair
    peer.sendall(b"200 res")
    with pytest.raises(TimeoutError):
        lines.read_line(100, 0.05)
    peer.sendall(b"ult=0\n")
    assert lines.read_line(100, 5.0) == b"200 result=0"


def test_a_write_larger_than_the_socket_buffer_waits_for_the_reader(pair: tuple[LineSocket, socket.socket]) -> None:
    lines, peer = pair
    data = b"z" * (4 << 20)
    received = bytearray()

    def read() -> None:
        while len(received) < len(data):
            chunk = peer.recv(1 << 16)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    lines.send(data, 5.0)
    reader.join(5)
    assert bytes(received) == data


def test_a_reader_that_takes_nothing_times_the_write_out(pair: tuple[LineSocket, socket.socket]) -> None:
    lines, _ = pair
    with pytest.raises(TimeoutError, match="took no data"):
        lines.send(b"z" * (16 << 20), 0.05)


def test_close_twice_is_harmless(pair: tuple[LineSocket, socket.socket]) -> None:
    lines, _ = pair
    lines.close()
    lines.close()
    assert lines.fd == -1


class CountingWaiter:
    """Blocks like the default waiter, and counts how often a read had to wait."""

    def __init__(self) -> None:
        self.waits = 0

    def attach(self, fd: int) -> None:
        pass

    def detach(self, fd: int) -> None:
        pass

    def wait_readable(self, fd: int, deadline: float) -> bool:
        self.waits += 1
        return BLOCKING.wait_readable(fd, deadline)

    def wait_writable(self, fd: int, deadline: float) -> bool:
        return BLOCKING.wait_writable(fd, deadline)

    def write_soon(self, sock: socket.socket, data: bytes) -> bool:
        return False


def test_an_environment_already_there_is_read_without_waiting_and_a_reply_after_a_wait() -> None:
    """Asterisk writes the environment as it connects: waiting first would cost a new call a loop round."""
    ours, peer = socket.socketpair()
    waiter = CountingWaiter()
    lines = LineSocket(ours, waiter)
    try:
        peer.sendall(b"agi_a: 1\nagi_b: 2\n\n")
        assert lines.read_block(100, 10, 5.0) == [b"agi_a: 1", b"agi_b: 2"]
        assert waiter.waits == 0
        peer.sendall(b"200 result=1\n")
        assert lines.read_line(100, 5.0) == b"200 result=1"
        assert waiter.waits == 1  # a reply is never there the moment a command has gone out: wait, then read
    finally:
        lines.close()
        peer.close()
