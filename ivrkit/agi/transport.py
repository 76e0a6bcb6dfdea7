"""Lines over a non-blocking socket, waiting through a :class:`Waiter`: the same code serves a call on the
server's event loop (the waiter switches to other calls) and in a plain thread (the waiter blocks).

A line is read straight from ``recv`` into one buffer; the standard library's ``makefile`` layers
(``SocketIO``, ``BufferedReader``, a timeout per call) cost more than the rest of a command's handling.
"""

from __future__ import annotations

import functools
import select
import socket
import time
from collections.abc import Callable
from typing import Protocol

RECV_BYTES = 65536
SOON_BYTES = 8192  # a command line: it fits an idle socket's send buffer whole


class Waiter(Protocol):
    """How a connection waits for its socket. ``deadline`` is on ``time.monotonic``; False means it passed."""

    def attach(self, fd: int) -> None: ...

    def detach(self, fd: int) -> None: ...

    def wait_readable(self, fd: int, deadline: float) -> bool: ...

    def wait_writable(self, fd: int, deadline: float) -> bool: ...

    def write_soon(self, sock: socket.socket, data: bytes) -> bool:
        """Take a short write to send together with others; False: the caller writes it now itself."""
        ...


class BlockingWaiter:
    """Waits in the calling thread (tests, tools, anything outside the server's loop)."""

    def attach(self, fd: int) -> None:
        pass

    def detach(self, fd: int) -> None:
        pass

    def wait_readable(self, fd: int, deadline: float) -> bool:
        return _poll(fd, select.POLLIN, deadline)

    def wait_writable(self, fd: int, deadline: float) -> bool:
        return _poll(fd, select.POLLOUT, deadline)

    def write_soon(self, sock: socket.socket, data: bytes) -> bool:
        return False


def _poll(fd: int, events: int, deadline: float) -> bool:
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000.0))


BLOCKING = BlockingWaiter()


class LineTooLong(ValueError):
    """The peer sent more than a line or a block may hold."""


class _LongerThan:
    """The check :meth:`LineSocket.read_line` makes of the unread bytes while it waits for a newline."""

    __slots__ = ("limit",)

    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, unread: bytes) -> str | None:
        return f"a line longer than {self.limit} bytes" if len(unread) > self.limit else None


_longer_than = functools.lru_cache(maxsize=8)(_LongerThan)  # one check per limit, not one per line read


class LineSocket:
    """A socket read as lines and written as whole commands, each with its own time limit."""

    def __init__(self, sock: socket.socket, waiter: Waiter | None = None):
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.waiter = waiter or BLOCKING
        self.waiter.attach(self.fd)
        self._buffer = b""
        self._start = 0  # where the unread part of _buffer begins

    def read_line(self, limit: int, seconds: float, ready: bool = False) -> bytes | None:
        """The next line without its newline; None when the peer has closed. Raises TimeoutError when no
        whole line arrives within ``seconds``, LineTooLong beyond ``limit`` bytes, OSError from the socket.
        ``ready``: the data is likely there already, so read before waiting (saves a loop round)."""
        buffer, start = self._buffer, self._start
        end = buffer.find(b"\n", start)
        if end >= 0:  # already read (a HANGUP line and a reply arrive together)
            self._start = end + 1
            line: bytes | None = buffer[start:end]
        else:
            line = self._read_until(b"\n", seconds, _longer_than(limit), ready)
        if line is not None and len(line) > limit:
            raise LineTooLong(f"a line longer than {limit} bytes")
        return line

    def read_block(self, limit: int, max_lines: int, seconds: float) -> list[bytes] | None:
        """The lines up to the next empty line, in one go (the AGI environment); otherwise as
        :meth:`read_line`, and LineTooLong for more than ``max_lines`` lines."""

        def too_much(unread: bytes) -> str | None:
            if unread.count(b"\n") > max_lines:
                return f"more than {max_lines} lines"
            if len(unread) - unread.rfind(b"\n") > limit:
                return f"a line longer than {limit} bytes"
            return None

        # Asterisk writes the environment as soon as it connects: it is there by the time we accepted
        first = self.read_line(limit, seconds, ready=True)  # an empty block ends at once
        if not first:
            return None if first is None else []
        self._start -= 1  # the first line's newline may be the first half of the blank line's "\n\n"
        rest = self._read_until(b"\n\n", seconds, too_much)
        if rest is None:
            return None
        block = first + rest
        lines = block.split(b"\n")
        if len(lines) > max_lines:
            raise LineTooLong(f"more than {max_lines} lines")
        if max(map(len, lines)) > limit:
            raise LineTooLong(f"a line longer than {limit} bytes")
        return lines

    def _read_until(
        self, separator: bytes, seconds: float, too_much: Callable[[bytes], str | None], ready: bool = False
    ) -> bytes | None:
        buffer, start = self._buffer, self._start
        end = buffer.find(separator, start)
        if end >= 0:
            self._start = end + len(separator)
            return buffer[start:end]
        buffer = buffer[start:]
        deadline = time.monotonic() + seconds
        while True:
            problem = too_much(buffer)
            if problem:
                raise LineTooLong(problem)
            # wait first (unless ``ready``): a reply is never there the moment a command has gone out
            if not ready and not self.waiter.wait_readable(self.fd, deadline):
                self._buffer, self._start = buffer, 0
                raise TimeoutError(f"nothing whole within {seconds:g} s")
            ready = False
            try:
                chunk = self.sock.recv(RECV_BYTES)
            except BlockingIOError:
                continue  # woken for nothing (another event on the socket)
            if not chunk:
                self._buffer, self._start = b"", 0
                return None
            searched = max(0, len(buffer) - len(separator) + 1)
            buffer += chunk
            end = buffer.find(separator, searched)
            if end >= 0:
                self._buffer, self._start = buffer, end + len(separator)
                return buffer[:end]

    def send(self, data: bytes, seconds: float) -> None:
        """Write all of ``data``; TimeoutError when the peer does not take it within ``seconds``. A command line
        may be handed to the waiter, which writes it with others shortly (the server's loop, before it next
        waits): the reply cannot come before the command has gone, and a peer woken once reads several."""
        if len(data) <= SOON_BYTES and self.waiter.write_soon(self.sock, data):
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        deadline = time.monotonic() + seconds
        while view:
            if not self.waiter.wait_writable(self.fd, deadline):
                raise TimeoutError(f"the peer took no data for {seconds:g} s")
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                continue

    def close(self) -> None:
        """Shut down and close; safe to call twice."""
        if self.fd < 0:
            return
        self.waiter.detach(self.fd)
        self.fd = -1
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            self.sock.close()
