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
import heapq
import itertools
import logging
import os
import select
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent, greenlet

log = logging.getLogger("ivrkit.server")

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
        self._waits: dict[int, _Wait] = {}  # fd → the greenlet waiting on it
        self._pending: set[int] = set()  # fds that had an event while nobody waited
        self._timers: list[tuple[float, int, _Wait]] = []  # heap; entries of finished waits stay until popped
        self._sequence = itertools.count()
        self.tasks = 0  # greenlets started and not yet finished

    # -- from the loop's own thread -------------------------------------------------------------------

    def spawn(self, function: Callable[..., None], *args: Any) -> None:
        """Run ``function(*args)`` as a new greenlet, soon. An exception it lets out is logged."""
        self.tasks += 1
        self._starting.append((function, args))

    def _guarded(self, function: Callable[..., None]) -> Callable[..., None]:
        def task(*args: Any) -> None:
            try:
                function(*args)
            except BaseException:
                log.exception("a server task failed")
            finally:
                self.tasks -= 1

        return task

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
                function, args = self._starting.popleft()
                greenlet(self._guarded(function), parent=hub).switch(*args)  # finished tasks return here
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
        self._epoll.close()
        os.close(self._wakeup)
