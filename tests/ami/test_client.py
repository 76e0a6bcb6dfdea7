"""The AMI client against the real Asterisk (the session's instance from tests/asterisk)."""

from __future__ import annotations

import doctest
import socket
import threading
import time

import pytest

from ivrkit.ami.client import (
    AmiAuthenticationError,
    AmiClient,
    AmiConnectionLost,
    AmiError,
    AmiTimeout,
    ConnectionState,
    Message,
    encode_action,
)
from ivrkit.qa.asterisk.sandbox import AsteriskInstance
from tests.asterisk.conftest import ami, asterisk

__all__ = ["ami", "asterisk"]  # the session's Asterisk and a per-test AMI connection, shared with tests/asterisk

pytestmark = pytest.mark.asterisk


def test_login_with_a_wrong_secret_is_refused_with_a_clear_error(asterisk: AsteriskInstance) -> None:
    client = AmiClient()
    try:
        assert client.connect(asterisk.ami_host, asterisk.ami_port).startswith("Asterisk Call Manager/")
        with pytest.raises(AmiAuthenticationError) as raised:
            client.login(asterisk.ami_username, "wrong-secret")
    finally:
        client.close()
    assert str(raised.value) == (
        f"AMI login as 'ivrkit' at 127.0.0.1:{asterisk.ami_port} was refused (Authentication failed): check the"
        " user's secret in manager.conf and its permit/deny lines for this address"
    )


def test_connecting_to_a_closed_port_says_what_to_check() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        expected = rf"cannot connect to AMI at 127.0.0.1:{port}: .*Is Asterisk running"
        with pytest.raises(AmiConnectionLost, match=expected):
            AmiClient().connect("127.0.0.1", port, timeout=2)


def test_responses_reach_their_own_sender_across_threads(ami: AmiClient) -> None:
    threads, per_thread = 8, 25
    for n in range(threads):
        ami.send("Setvar", Variable=f"IVRKIT_THREAD_{n}", Value=f"value-{n}")
    mismatches: list[str] = []

    def ask(n: int) -> None:
        for _ in range(per_thread):
            response = ami.send("Getvar", Variable=f"IVRKIT_THREAD_{n}")
            if response.get("Value") != f"value-{n}":
                mismatches.append(f"thread {n} got {response.summary()}")

    workers = [threading.Thread(target=ask, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert mismatches == []


def test_an_error_response_raises_with_asterisks_message(ami: AmiClient) -> None:
    with pytest.raises(AmiError, match=r"^AMI action 'Originate' failed: Extension does not exist.$") as raised:
        ami.send("Originate", Channel="Local/s@nowhere/n", Context="nowhere", Exten="s", Priority=1, Async=True)
    assert raised.value.response is not None and raised.value.response["Response"] == "Error"


def test_event_list_actions_collect_their_events(asterisk: AsteriskInstance, ami: AmiClient) -> None:
    summary = ami.send_list("QueueSummary")
    assert summary["EventList"] == "start"
    assert [e["Queue"] for e in summary.events] == ["ivrkit-test"]
    assert all(e.name == "QueueSummary" for e in summary.events)

    asterisk.reload_dialplan("[hold]\nexten => s,1,Answer()\n same => n,Wait(30)\n")
    mark = ami.mark()
    ami.send("Originate", Channel="Local/s@hold/n", Application="Wait", Data="30", Async=True, ChannelId="ami-list-1")
    ami.wait_for(lambda e: e.name == "Newexten" and e.get("Application") == "Wait", 10, since=mark)
    try:
        channels = ami.send_list("CoreShowChannels")
        mine = sorted(e["Channel"] for e in channels.events if e.get("Linkedid") == "ami-list-1")
        assert len(mine) == 2 and mine[0].endswith(";1") and mine[1].endswith(";2")
    finally:
        ami.send("Hangup", Channel="/^Local/s@hold-/")
    with pytest.raises(AmiError, match="Database entry not found"):
        ami.send_list("DBGet", Family="ivrkit-test", Key="missing")


def test_repeated_headers_are_kept(ami: AmiClient) -> None:
    output = ami.send("Command", Command="core show uptime").get_all("Output")
    assert len(output) >= 2 and output[0].startswith("System uptime:")


def test_wait_for_finds_an_event_that_arrived_before_the_wait(ami: AmiClient) -> None:
    mark = ami.mark()
    ami.send("UserEvent", UserEvent="ivrkit-ping", Token="t1")
    ami.send("UserEvent", UserEvent="ivrkit-ping", Token="t2")
    ami.wait_for(lambda e: e.get("Token") == "t2", 5, since=mark)  # both have arrived now
    first = ami.wait_for(lambda e: e.get("UserEvent") == "ivrkit-ping", 5, since=mark)
    assert first["Token"] == "t1"
    assert [e["Token"] for e in ami.events_since(mark) if e.name == "UserEvent"] == ["t1", "t2"]
    with pytest.raises(AmiTimeout, match=r"no matching AMI event within 0.2 s \(last events seen: "):
        ami.wait_for(lambda e: e.get("Token") == "never", 0.2, since=mark)


def test_cursors_read_in_order_and_listeners_see_every_event(ami: AmiClient) -> None:
    heard: list[str] = []
    problems: list[BaseException] = []

    def listener(event: Message) -> None:
        if event.name == "UserEvent":
            heard.append(event["Token"])
            try:
                ami.send("Ping")
            except RuntimeError as error:
                problems.append(error)

    remove = ami.add_listener(listener)
    cursor = ami.cursor()
    for n in range(5):
        ami.send("UserEvent", UserEvent="ivrkit-order", Token=str(n))
    tokens = [cursor.wait_for(lambda e: e.name == "UserEvent", 5)["Token"] for _ in range(5)]
    remove()
    assert tokens == ["0", "1", "2", "3", "4"]
    assert heard == tokens
    assert len(problems) == 5 and "called from an event listener" in str(problems[0])


def test_line_breaks_in_headers_are_refused_before_sending(ami: AmiClient) -> None:
    mark = ami.mark()
    with pytest.raises(ValueError, match="'UserEvent' contains a line break, which would inject AMI headers"):
        ami.send("UserEvent", UserEvent="x\r\nAction: Command\r\nCommand: core stop now")
    with pytest.raises(ValueError, match="contains a line break"):
        ami.send("UserEvent", UserEvent="ivrkit-x", Variable=["A=1", "B=2\nEvil: 1"])
    with pytest.raises(ValueError, match="invalid AMI header name"):
        ami.send_action("UserEvent", [("Bad: Name", "1")])
    assert ami.send("Ping")["Response"] == "Success"  # the connection is intact
    assert not any(e.name == "UserEvent" for e in ami.events_since(mark))


def test_lists_repeat_a_header() -> None:
    assert encode_action("Originate", [("Variable", ["A=1", "B=2"]), ("Async", True)]) == (
        b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\nAsync: true\r\n\r\n"
    )


def test_losing_the_connection_fails_every_waiting_sender_at_once(asterisk: AsteriskInstance, ami: AmiClient) -> None:
    asterisk.reload_dialplan("[never]\nexten => s,1,Wait(30)\n")
    failures: list[BaseException] = []

    def blocked_sender(action: str, **headers: str) -> None:
        try:
            ami.send(action, timeout=30, **headers)
        except BaseException as error:
            failures.append(error)

    # A synchronous Originate of a channel that never answers holds Asterisk's reply back. Asterisk runs one
    # action at a time per AMI session and sends that session no events meanwhile: the Pings sent after it
    # wait too, and the channel is watched from the instance's own session.
    observer = asterisk.ami
    assert observer is not None
    mark = observer.mark()
    originate = {"Channel": "Local/s@never/n", "Application": "Wait", "Data": "1", "Timeout": "20000"}
    senders = [threading.Thread(target=blocked_sender, args=("Originate",), kwargs=originate)]
    senders[0].start()
    observer.wait_for(lambda e: e.name == "Newexten" and e.get("Application") == "Wait", 10, since=mark)
    senders += [threading.Thread(target=blocked_sender, args=("Ping",)) for _ in range(2)]
    for sender in senders[1:]:
        sender.start()
    deadline = time.monotonic() + 5
    while ami.pending_actions < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # until both Pings are on the wire
    assert ami.pending_actions == 3
    started = time.monotonic()
    assert ami._sock is not None
    ami._sock.shutdown(socket.SHUT_RDWR)  # the network goes away under the client
    for sender in senders:
        sender.join(10)
    try:
        assert time.monotonic() - started < 1
        assert len(failures) == 3 and all(isinstance(f, AmiConnectionLost) for f in failures), failures
        assert ami.state is ConnectionState.LOST and ami.pending_actions == 0
        with pytest.raises(AmiConnectionLost, match="cannot send AMI action 'Ping': the connection is lost"):
            ami.send("Ping")
    finally:
        observer.send("Hangup", Channel="/^Local/s@never-/")


def test_a_response_that_does_not_come_times_out(asterisk: AsteriskInstance, ami: AmiClient) -> None:
    asterisk.reload_dialplan("[never]\nexten => s,1,Wait(30)\n")
    observer = asterisk.ami
    assert observer is not None
    mark = observer.mark()
    outcome: list[BaseException] = []

    def blocking_originate() -> None:  # Asterisk holds this session until the hang-up below
        try:
            ami.send("Originate", Channel="Local/s@never/n", Application="Wait", Data="1", Timeout=5000, timeout=10)
        except AmiError as error:
            outcome.append(error)

    blocker = threading.Thread(target=blocking_originate)
    blocker.start()
    observer.wait_for(lambda e: e.name == "Newexten" and e.get("Application") == "Wait", 10, since=mark)
    try:
        with pytest.raises(AmiTimeout, match=r"AMI action 'Ping' \(ActionID .*\) got no its response within 0.3 s"):
            ami.send("Ping", timeout=0.3)
    finally:
        observer.send("Hangup", Channel="/^Local/s@never-/")
        blocker.join(10)
    assert [str(error) for error in outcome] == ["AMI action 'Originate' failed: Originate failed"]
    assert ami.pending_actions == 0
    assert ami.send("Ping")["Response"] == "Success"  # the late response to the timed-out Ping was dropped


def test_the_documented_examples_hold() -> None:
    import ivrkit.ami.client

    assert doctest.testmod(ivrkit.ami.client).failed == 0


def test_close_is_final_and_idempotent(asterisk: AsteriskInstance) -> None:
    client = asterisk.ami_client()
    client.close()
    client.close()
    assert client.state is ConnectionState.CLOSED
    with pytest.raises(AmiConnectionLost, match="the connection is closed"):
        client.send("Ping")
    with pytest.raises(AmiError, match="create a new AmiClient"):
        client.connect(asterisk.ami_host, asterisk.ami_port)
