"""The server's event loop: calls as greenlets that wait on their sockets, deadlines, wake-ups from threads."""

from __future__ import annotations

import contextlib
import contextvars
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from greenlet import getcurrent

from ivrkit.agi.transport import LineSocket
from ivrkit.server.loop import Loop

Pair = Callable[[], tuple[socket.socket, socket.socket]]


@pytest.fixture
def loop() -> Iterator[Loop]:
    loop = Loop()
    yield loop
    loop.close()


@pytest.fixture
def pair() -> Iterator[Callable[[], tuple[socket.socket, socket.socket]]]:
    """Socket pairs (ours, the peer's), all closed after the test."""
    made: list[socket.socket] = []

    def make() -> tuple[socket.socket, socket.socket]:
        ours, peer = socket.socketpair()
        made.extend((ours, peer))
        return ours, peer

    yield make
    for sock in made:
        sock.close()


def run_until_done(loop: Loop) -> None:
    loop.run(until=lambda: loop.tasks == 0)


def test_calls_wait_on_their_own_sockets_and_finish_in_the_order_their_data_comes(loop: Loop, pair: Pair) -> None:
    pairs = [pair() for _ in range(3)]
    finished: list[tuple[int, bytes | None]] = []

    def call(number: int, sock: socket.socket) -> None:
        lines = LineSocket(sock, loop)
        finished.append((number, lines.read_line(100, 5.0)))
        lines.close()

    for number, (ours, _) in enumerate(pairs):
        loop.spawn(call, number, ours)

    def peer() -> None:  # answers the calls in reverse order, each after the previous one was served
        for number in (2, 1, 0):
            pairs[number][1].sendall(b"reply %d\n" % number)
            while len(finished) < 3 - number:
                time.sleep(0.001)

    threading.Thread(target=peer, daemon=True).start()
    run_until_done(loop)
    assert finished == [(2, b"reply 2"), (1, b"reply 1"), (0, b"reply 0")]


def test_a_deadline_ends_the_wait_with_false_and_other_calls_go_on(loop: Loop, pair: Pair) -> None:
    silent, _ = pair()
    talking, talking_peer = pair()
    results: dict[str, object] = {}

    def wait_silent() -> None:
        lines = LineSocket(silent, loop)
        try:
            lines.read_line(100, 0.05)
        except TimeoutError as error:
            results["silent"] = str(error)

    def wait_talking() -> None:
        results["talking"] = LineSocket(talking, loop).read_line(100, 5.0)

    loop.spawn(wait_silent)
    loop.spawn(wait_talking)
    talking_peer.sendall(b"hello\n")
    run_until_done(loop)
    assert results == {"silent": "nothing whole within 0.05 s", "talking": b"hello"}


def test_another_thread_can_hand_work_to_a_loop_that_waits_forever(loop: Loop, pair: Pair) -> None:
    done = threading.Event()
    ran_on: list[str] = []
    sock, _ = pair()

    def idle() -> None:  # waits on a socket that never speaks, with no deadline
        loop.attach(sock.fileno())
        ran_on.append("waiting")
        loop.wait_readable(sock.fileno(), float("inf"))
        ran_on.append("woken")

    loop.spawn(idle)
    thread = threading.Thread(target=lambda: loop.run(until=done.is_set), daemon=True)
    thread.start()
    while not ran_on:
        time.sleep(0.001)
    loop.call_soon_threadsafe(lambda: (ran_on.append(threading.current_thread().name), done.set()))
    thread.join(5)
    assert not thread.is_alive()
    assert ran_on == ["waiting", thread.name]


def test_wake_ends_a_wait_as_if_its_deadline_had_passed(loop: Loop, pair: Pair) -> None:
    sock, _ = pair()
    results: list[bool] = []

    def waiter() -> None:
        loop.attach(sock.fileno())
        results.append(loop.wait_readable(sock.fileno(), float("inf")))

    loop.spawn(waiter)
    loop.spawn(lambda: loop.wake(sock.fileno()))
    run_until_done(loop)
    assert results == [False]


def test_a_task_that_fails_is_logged_and_the_loop_goes_on(loop: Loop, caplog: pytest.LogCaptureFixture) -> None:
    after: list[str] = []

    def broken() -> None:
        raise RuntimeError("a bug")

    loop.spawn(broken)
    loop.spawn(lambda: after.append("still serving"))
    run_until_done(loop)
    assert after == ["still serving"]
    assert loop.tasks == 0
    assert "a server task failed" in caplog.text and "RuntimeError: a bug" in caplog.text


def test_each_call_keeps_its_own_context_variables(loop: Loop, pair: Pair) -> None:
    """Log lines carry the call's unique id through context variables: interleaved calls must not mix."""
    uniqueid: contextvars.ContextVar[str] = contextvars.ContextVar("uniqueid", default="none")
    a, a_peer = pair()
    b, b_peer = pair()
    seen: dict[str, str] = {}

    def call(name: str, sock: socket.socket) -> None:
        uniqueid.set(name)
        LineSocket(sock, loop).read_line(100, 5.0)  # the other call runs meanwhile
        seen[name] = uniqueid.get()

    loop.spawn(call, "a", a)
    loop.spawn(call, "b", b)

    def answer_b_first() -> None:
        b_peer.sendall(b"x\n")
        a_peer.sendall(b"y\n")

    loop.spawn(answer_b_first)
    run_until_done(loop)
    assert seen == {"a": "a", "b": "b"}
    assert uniqueid.get() == "none"


def test_finished_waits_do_not_pile_up(loop: Loop, pair: Pair) -> None:
    ours, peer = pair()
    lines_read = 0

    def chatty() -> None:
        nonlocal lines_read
        lines = LineSocket(ours, loop)
        for _ in range(5000):
            lines.read_line(100, 600.0)  # each wait leaves a timer 10 minutes out
            lines_read += 1

    def answer() -> None:
        for _ in range(5000):
            peer.sendall(b"line\n")
            loop.sleep(0)  # one line per wait

    loop.spawn(chatty)
    loop.spawn(answer)
    run_until_done(loop)
    assert lines_read == 5000
    assert len(loop._timers) < 2048  # finished waits are swept, not kept for ten minutes


def test_a_sleeping_task_resumes(loop: Loop) -> None:
    order: list[str] = []

    def sleeper() -> None:
        loop.sleep(0.01)
        order.append("slept")

    loop.spawn(sleeper)
    loop.spawn(lambda: order.append("ran meanwhile"))
    run_until_done(loop)
    assert order == ["ran meanwhile", "slept"]


def test_tasks_reuse_idle_greenlets_and_a_failed_task_leaves_its_worker_serving(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[object] = []

    def task(number: int) -> None:
        loop.sleep(0)
        ran.append(getcurrent())
        if number == 1:
            raise RuntimeError("a bug in a task")

    for number in range(3):  # one after another: each finds the worker of the one before idle
        loop.spawn(task, number)
        run_until_done(loop)
    assert len(ran) == 3 and len(set(map(id, ran))) == 1
    assert "a server task failed" in caplog.text and "a bug in a task" in caplog.text

    for number in range(3, 6):  # at once: each needs a worker of its own
        loop.spawn(task, number)
    run_until_done(loop)
    assert len(set(map(id, ran[3:]))) == 3 and loop.tasks == 0


def test_workers_beyond_the_idle_limit_end_with_their_task(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ivrkit.server.loop.MAX_IDLE_WORKERS", 2)
    workers: list[object] = []

    def task() -> None:
        workers.append(getcurrent())
        loop.sleep(0)

    for _ in range(5):
        loop.spawn(task)
    run_until_done(loop)
    assert [worker.dead for worker in workers].count(False) == 2  # type: ignore[attr-defined]


def test_a_reused_worker_starts_each_task_with_fresh_context_variables(loop: Loop) -> None:
    tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="none")
    seen: list[str] = []

    def task(value: str) -> None:
        seen.append(tag.get())
        tag.set(value)  # never reset: the next task on this worker must not see it
        loop.sleep(0)

    for value in ("a", "b"):
        loop.spawn(task, value)
        run_until_done(loop)
    assert seen == ["none", "none"]


def test_commands_are_written_in_batches_and_always_before_the_loop_waits(
    loop: Loop, pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines are held back until WRITE_BATCH of them gather; whatever is held goes out before the loop waits,
    so a lone call's command is never stuck. Each call still gets its own reply."""
    monkeypatch.setattr("ivrkit.server.loop.WRITE_BATCH", 3)
    pairs = [pair() for _ in range(4)]
    readable_after_send: list[bool] = []
    replies: dict[int, bytes | None] = {}

    def call(number: int, sock: socket.socket, peer: socket.socket) -> None:
        lines = LineSocket(sock, loop)
        lines.send(b"COMMAND %d\n" % number, 5.0)
        readable_after_send.append(bool(select.select([peer], [], [], 0)[0]))
        replies[number] = lines.read_line(100, 5.0)
        lines.close()

    def answer() -> None:
        for _, peer in pairs:
            line = peer.recv(100)
            peer.sendall(b"reply to " + line)

    for number, (ours, peer) in enumerate(pairs):
        loop.spawn(call, number, ours, peer)
    threading.Thread(target=answer, daemon=True).start()
    run_until_done(loop)
    # the first two wait in the batch; the third fills it and all three go; the fourth goes when the loop waits
    assert readable_after_send == [False, False, True, False]
    assert replies == {number: b"reply to COMMAND %d" % number for number in range(4)}


def test_a_held_command_to_a_peer_that_has_gone_ends_only_that_call(loop: Loop, pair: Pair) -> None:
    gone_ours, gone_peer = pair()
    live_ours, live_peer = pair()
    results: dict[str, object] = {}

    def call(name: str, sock: socket.socket) -> None:
        lines = LineSocket(sock, loop)
        lines.send(b"ANSWER\n", 5.0)
        try:
            results[name] = lines.read_line(100, 5.0)
        except OSError as error:
            results[name] = type(error).__name__
        lines.close()

    gone_peer.close()
    loop.spawn(call, "gone", gone_ours)
    loop.spawn(call, "live", live_ours)
    threading.Thread(target=lambda: (live_peer.recv(100), live_peer.sendall(b"200 result=0\n")), daemon=True).start()
    run_until_done(loop)
    assert results["live"] == b"200 result=0"
    assert results["gone"] in (None, "ConnectionResetError")  # the end of the stream, however the kernel says it


def test_a_peer_that_reads_nothing_has_its_connection_ended(
    loop: Loop, pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """A held line that does not fit whole (the peer left everything before it unread) is not retried from the
    loop: the connection is shut down, so the call's read ends at once instead of at its deadline."""
    ours, _silent = pair()
    ours.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            ours.send(b"x" * 65536)  # fill both buffers: the peer reads nothing
    result: list[bytes | None] = []

    def call() -> None:
        lines = LineSocket(ours, loop)
        lines.send(b"ANSWER\n", 5.0)
        result.append(lines.read_line(100, 5.0))

    loop.spawn(call)
    run_until_done(loop)
    assert result == [None]
    assert "takes no data; connection ended" in caplog.text
