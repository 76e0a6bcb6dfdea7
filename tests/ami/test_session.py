"""The reconnecting AMI session against the real Asterisk: dropped, silent and refused connections (through a
relay the test controls), and a real restart of Asterisk."""

from __future__ import annotations

import doctest
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import ivrkit.ami.session
from ivrkit.ami.client import AmiConnectionLost, Message
from ivrkit.ami.session import AmiSession, backoff_delays
from ivrkit.qa.asterisk.sandbox import AsteriskInstance
from tests.ami.relay import Relay
from tests.asterisk.conftest import asterisk, require_root

__all__ = ["asterisk"]

pytestmark = pytest.mark.asterisk


class Watcher:
    """What the session told: connections (by generation) and events, each waited for with a deadline."""

    def __init__(self, session: AmiSession) -> None:
        self.generations: list[int] = []
        self.events: list[Message] = []
        self.changed = threading.Condition()
        session.on_connected(self._connected)
        session.add_listener(self._event)

    def _connected(self, generation: int) -> None:
        with self.changed:
            self.generations.append(generation)
            self.changed.notify_all()

    def _event(self, event: Message) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_generation(self, generation: int, timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: generation in self.generations, timeout), self.generations

    def wait_user_event(self, token: str, timeout: float = 5.0) -> Message:
        def found() -> Message | None:
            return next((e for e in self.events if e.name == "UserEvent" and e.get("Token") == token), None)

        with self.changed:
            assert self.changed.wait_for(lambda: found() is not None, timeout), [e.name for e in self.events]
            event = found()
        assert event is not None
        return event


@pytest.fixture
def relay(asterisk: AsteriskInstance) -> Iterator[Relay]:
    with Relay(asterisk.ami_port) as relayed:
        yield relayed


def session_for(
    asterisk: AsteriskInstance, port: int | None = None, secret: str | None = None, **options: Any
) -> AmiSession:
    return AmiSession(asterisk.ami_host, port or asterisk.ami_port, asterisk.ami_username,
                      secret if secret is not None else asterisk.ami_secret, **options)  # fmt: skip


def sessions_of(asterisk: AsteriskInstance) -> int:
    """AMI sessions Asterisk has open for the instance's user (its own control connection included)."""
    lines = asterisk.command("manager show connected")
    return sum(1 for line in lines if line.split()[:1] == [asterisk.ami_username])


def test_the_session_logs_in_runs_its_hook_and_delivers_events(asterisk: AsteriskInstance) -> None:
    before = sessions_of(asterisk)
    session = session_for(asterisk)
    watcher = Watcher(session)
    with session.start():
        watcher.wait_generation(1)
        assert session.connected and session.generation == 1
        assert sessions_of(asterisk) == before + 1
        session.send("UserEvent", UserEvent="ivrkit-session", Token="first")
        assert watcher.wait_user_event("first")["UserEvent"] == "ivrkit-session"
        assert session.send_list("QueueSummary").events[0]["Queue"] == "ivrkit-test"
    assert not session.connected
    assert sessions_of(asterisk) == before  # stop() logged off
    with pytest.raises(AmiConnectionLost, match=r"cannot send AMI action 'Ping': not connected to 127\.0\.0\.1:"):
        session.send("Ping")


def test_a_dropped_connection_comes_back_with_back_off_and_sends_fail_at_once_meanwhile(
    asterisk: AsteriskInstance, relay: Relay
) -> None:
    session = session_for(asterisk, relay.port, min_delay=0.05, max_delay=0.2)
    watcher = Watcher(session)
    with session.start():
        watcher.wait_generation(1)
        relay.refusing = True
        relay.cut()
        assert relay.wait_accepted(6)  # the first and five refused attempts
        assert not session.connected
        started = time.monotonic()
        with pytest.raises(AmiConnectionLost, match=r"not connected to .*; the session is reconnecting"):
            session.send("Ping")
        assert time.monotonic() - started < 0.5  # no waiting for a connection
        assert session.delays[:5] == [0.05, 0.1, 0.2, 0.2, 0.2]
        assert session.last_error is not None
        assert "closed the connection before sending the AMI banner" in session.last_error

        relay.refusing = False
        watcher.wait_generation(2)
        assert watcher.generations == [1, 2]
        session.send("UserEvent", UserEvent="ivrkit-session", Token="after")
        watcher.wait_user_event("after")  # the listener hears the new connection
        with pytest.raises(AmiConnectionLost, match=r"connection 1 is gone \(now 2\)"):
            session.send("Ping", generation=1)
        assert session.send("Ping", generation=2)["Ping"] == "Pong"


def test_a_silent_peer_is_noticed_by_the_ping_and_replaced(asterisk: AsteriskInstance, relay: Relay) -> None:
    session = session_for(asterisk, relay.port, min_delay=0.05, ping_interval=0.2, ping_timeout=0.3)
    watcher = Watcher(session)
    with session.start():
        watcher.wait_generation(1)
        relay.freeze()  # the connection stays open; nothing passes any more
        watcher.wait_generation(2)
        assert session.send("Ping")["Ping"] == "Pong"
        assert relay.accepted == 2


def test_a_refused_login_is_retried_and_stop_does_not_wait_for_the_back_off(
    asterisk: AsteriskInstance, relay: Relay
) -> None:
    session = session_for(asterisk, relay.port, secret="wrong", min_delay=0.05, max_delay=30)
    session.start()
    try:
        assert relay.wait_accepted(2)  # Asterisk answers a wrong secret after a second
        assert session.last_error is not None
        assert "was refused (Authentication failed)" in session.last_error
        assert not session.wait_connected(0.1)
    finally:
        started = time.monotonic()
        session.stop()
    assert time.monotonic() - started < 2


def test_the_session_comes_back_after_asterisk_restarts() -> None:
    instance = AsteriskInstance(require_root()).start()
    try:
        session = session_for(instance, min_delay=0.1, max_delay=0.5)
        watcher = Watcher(session)
        with session.start():
            watcher.wait_generation(1)
            control = instance.ami
            assert control is not None
            with pytest.raises(AmiConnectionLost):
                control.send("Command", Command="core restart now", timeout=5)
            control.close()
            watcher.wait_generation(2, timeout=30)
            instance.ami = instance.ami_client()
            uptime = session.send("Command", Command="core show uptime seconds").get_all("Output")
            assert int(uptime[0].split(":")[1]) < 30  # the new Asterisk
            session.send("UserEvent", UserEvent="ivrkit-session", Token="restarted")
            watcher.wait_user_event("restarted")
    finally:
        instance.stop()


def test_backoff_doubles_up_to_the_longest_wait() -> None:
    delays = backoff_delays(0.5, 4)
    assert [next(delays) for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert doctest.testmod(ivrkit.ami.session).failed == 0
