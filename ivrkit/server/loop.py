"""The server's event loop: every call a greenlet, every wait a switch back to one epoll loop.

A flow is plain sequential code (play, wait for a key, branch) and pyst2's command layer blocks; greenlets
keep both as they are while one thread serves thousands of calls. Waiting costs no system call beyond the
``epoll_wait`` shared by all calls: a socket is registered once, edge-triggered, for its whole session, and
an edge that arrives while nobody waits is remembered. Against a thread per call (``tools/bench/agi_server.py``)
it cut p99 command turnaround at 100 calls from 52 to 30 ms and the memory of a held call by a third.

Only :meth:`Loop.call_soon_threadsafe` may be called from another thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import logging
import os
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

log = logging.getLogger("ivrkit.server")

WRITE_BATCH = 16  # command lines held back at most (write_soon)
MAX_IDLE_WORKERS = 256  # greenlets kept for the next calls; beyond these, a worker ends with its task
READ_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
WRITE_EVENTS = READ_EVENTS | select.EPOLLOUT


class _Wait:
    __slots__ = ("done", "fd", "task")

    def __init__(self, task: greenlet, fd: int):
        self.task = task
        self.fd = fd  # -1: a plain sleep
        self.done = False


class Loop:
    """Greenlets on epoll. Create and :meth:`run` it in the thread that will serve the calls."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wakeup, select.EPOLLIN)
        self._hub: greenlet | None = None
        self._calls: deque[Callable[[], None]] = deque()  # from other threads
        self._starting: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._idle: list[greenlet] = []  # workers waiting for a task
        self._writes: list[tuple[socket.socket, bytes]] = []  # command lines to send before the next wait
        self._waits: dict[int, _Wait] = {}  # fd → the greenlet waiting on it
        self._pending: set[int] = set()  # fds that had an event while nobody waited
        self._timers: list[tuple[float, int, _Wait]] = []  # heap; entries of finished waits stay until popped
        self._sequence = itertools.count()
        self.tasks = 0  # greenlets started and not yet finished

    # -- from the loop's own thread -------------------------------------------------------------------

    def spawn(self, function: Callable[..., None], *args: Any) -> None:
        """Run ``function(*args)`` in a greenlet of its own, soon. An exception it lets out is logged."""
        self.tasks += 1
        self._starting.append((function, args))

    def _work(self, job: tuple[Callable[..., None], tuple[Any, ...]]) -> None:
        """A worker greenlet: runs one task after another. Once done it waits among the idle workers for the
        next (a new greenlet costs a stack of its own, mapped and unmapped, on every call)."""
        while True:
            function, args = job
            try:
                contextvars.Context().run(function, *args)  # nothing a task set is seen by the next
            except BaseException:
                log.exception("a server task failed")
            finally:
                self.tasks -= 1
            if len(self._idle) >= MAX_IDLE_WORKERS:
                return
            self._idle.append(getcurrent())
            assert self._hub is not None
            job = self._hub.switch()

    def attach(self, fd: int) -> None:
        self._epoll.register(fd, READ_EVENTS)

    def detach(self, fd: int) -> None:
        self._pending.discard(fd)
        with contextlib.suppress(OSError, ValueError):  # already closed
            self._epoll.unregister(fd)

    def wait_readable(self, fd: int, deadline: float) -> bool:
        if fd in self._pending:
            self._pending.discard(fd)
            return True
        return self._wait(fd, deadline)

    def wait_writable(self, fd: int, deadline: float) -> bool:
        self._epoll.modify(fd, WRITE_EVENTS)  # rare: the peer's receive window is full
        try:
            return self._wait(fd, deadline)
        finally:
            self._epoll.modify(fd, READ_EVENTS)

    def write_soon(self, sock: socket.socket, data: bytes) -> bool:
        """Queue a command line; the queue is written when it holds ``WRITE_BATCH`` lines and whenever the loop
        is about to wait. At 100 busy calls a peer (Asterisk, the load generator) is then woken once for several
        commands: each wake-up of a process on another core cost more than the rest of the ``send()``. A lone
        call's command goes out as soon as it waits for its reply."""
        self._writes.append((sock, data))
        if len(self._writes) >= WRITE_BATCH:
            self._flush_writes()
        return True

    def _flush_writes(self) -> None:
        writes, self._writes = self._writes, []
        for sock, data in writes:
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as error:  # the peer is gone: the call's read finds out and ends the session
                log.debug("write to a closed connection dropped: %s", error)
                continue
            if sent < len(data):
                # one command in flight and no room for the next: the peer reads nothing; end the connection
                log.warning("peer %s takes no data; connection ended", _peer(sock))
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def sleep(self, seconds: float) -> None:
        self._wait(-1, time.monotonic() + seconds)

    def wake(self, fd: int) -> None:
        """End the wait on ``fd`` now, as if its deadline had passed (stops an accept loop)."""
        wait = self._waits.pop(fd, None)
        if wait is not None:
            wait.done = True
            self._calls.append(lambda: wait.task.switch(False))

    def _wait(self, fd: int, deadline: float) -> bool:
        assert self._hub is not None and getcurrent() is not self._hub, "wait from a task of a running loop"
        wait = _Wait(getcurrent(), fd)
        if fd >= 0:
            self._waits[fd] = wait
        if deadline != float("inf"):
            heapq.heappush(self._timers, (deadline, next(self._sequence), wait))
        return bool(self._hub.switch())

    # -- from any thread ------------------------------------------------------------------------------

    def call_soon_threadsafe(self, function: Callable[[], None]) -> None:
        self._calls.append(function)
        os.eventfd_write(self._wakeup, 1)

    # -- the loop -------------------------------------------------------------------------------------

    def run(self, until: Callable[[], bool]) -> None:
        """Serve until ``until()`` is true (checked after each round of events)."""
        self._hub = hub = getcurrent()
        poll, waits, pending = self._epoll.poll, self._waits, self._pending
        while True:
            while self._calls:
                self._calls.popleft()()
            while self._starting:
                job = self._starting.popleft()
                worker = self._idle.pop() if self._idle else greenlet(self._work, parent=hub)
                worker.switch(job)  # returns here when the task waits, ends, or its worker goes idle
            if self._writes:
                self._flush_writes()
            if until():
                return
            timeout = self._next_timeout()
            for fd, _events in poll(timeout):
                wait = waits.pop(fd, None)
                if wait is None:
                    if fd == self._wakeup:
                        os.eventfd_read(self._wakeup)
                    else:
                        pending.add(fd)
                    continue
                wait.done = True
                wait.task.switch(True)
            if self._timers and self._timers[0][0] <= time.monotonic():
                self._expire()

    def _next_timeout(self) -> float:
        if self._calls or self._starting:
            return 0.0
        timers = self._timers
        while timers and timers[0][2].done:
            heapq.heappop(timers)
        if len(timers) > 1024 and len(timers) > 4 * (len(self._waits) + 1):
            self._timers = timers = [entry for entry in timers if not entry[2].done]  # finished waits pile up
            heapq.heapify(timers)
        if not timers:
            return -1.0
        return max(0.0, timers[0][0] - time.monotonic())

    def _expire(self) -> None:
        now = time.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now:
            wait = heapq.heappop(timers)[2]
            if wait.done:
                continue
            wait.done = True
            if wait.fd >= 0:
                del self._waits[wait.fd]
            wait.task.switch(False)

    def close(self) -> None:
        """From the loop's thread, once :meth:`run` has returned: ends the idle workers, closes the epoll."""
        self._flush_writes()
        while self._idle:
            self._idle.pop().throw(GreenletExit)
        self._epoll.close()
        os.close(self._wakeup)


def _peer(sock: socket.socket) -> str:
    try:
        name = sock.getpeername()
    except OSError:
        return "(gone)"
    return str(name[0]) if isinstance(name, tuple) else str(name) or "(local)"
