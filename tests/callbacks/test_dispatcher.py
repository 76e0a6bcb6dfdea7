"""The dispatcher's reading of events in every order Asterisk may send them, against a fake AMI that speaks the
protocol over a socket (the real session and client talk to it), and a real SQLite store.

The real Asterisk (tests/asterisk/test_callback_dispatch.py) shows both orders of an OriginateResponse and a
hang-up cause, but not on demand; here each order is played deliberately, as are a Hangup that comes before
its OriginateResponse or without one, a Newchannel that trails its OriginateResponse, and the check of the
attempts in flight when a connection comes up.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import doctest
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ivrkit.callbacks.dispatcher
from ivrkit.ami.session import AmiSession
from ivrkit.callbacks import running
from ivrkit.callbacks.dispatcher import Dispatcher, DispatcherLock, DispatcherLocked, channel_id_for
from ivrkit.callbacks.model import Callback, Mode, NewCallback, Origin, Result, State
from ivrkit.callbacks.running import AmiSettings
from ivrkit.cli import dispatcher as cli_dispatcher
from ivrkit.cli.common import ami_settings
from ivrkit.flow.model import Flow
from ivrkit.server.library import FlowLibrary
from ivrkit.store import SqliteCallbacks, open_database

ROOT = Path(__file__).resolve().parents[2]
FLOW, QUEUE = "main", "support"
FLOW_YAML = f"""\
flow: {FLOW}
start: join
queues:
  {QUEUE}:
    callback: {{ring_timeout: 20s, attempts: 2, retry_after: [10m]}}
steps:
  join:
    queue: {QUEUE}
"""
Headers = dict[str, str]


class FakeAmi:
    """One AMI connection at a time: logs anyone in, answers CoreShowChannels / QueueStatus from its lists,
    queues every Originate, and sends the events a test tells it to."""

    def __init__(self) -> None:
        self.channels: list[str] = []  # uniqueids CoreShowChannels lists
        self.ready_members = 5
        self.actions: list[Headers] = []
        self.changed = threading.Condition()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.conn: socket.socket | None = None
        self._write = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conn = conn
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            with self._write:
                conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
            headers: Headers = {}
            for raw in reader:
                line = raw.decode().rstrip("\r\n")
                if line:
                    key, _, value = line.partition(": ")
                    headers[key] = value
                    continue
                self._answer(conn, headers)
                headers = {}
        except OSError:
            pass
        finally:
            reader.close()
            conn.close()

    def _answer(self, conn: socket.socket, action: Headers) -> None:
        with self.changed:
            self.actions.append(action)
            self.changed.notify_all()
        name, action_id = action.get("Action", ""), action.get("ActionID", "")
        ok = {"Response": "Success", "ActionID": action_id}
        if name == "CoreShowChannels":
            listed = [{"Event": "CoreShowChannel", "ActionID": action_id, "Uniqueid": uniqueid,
                       "Channel": f"Local/+4930111001@ivrkit-outbound-00000001;{2 if uniqueid.endswith('-2') else 1}"}
                      for uniqueid in self.channels]  # fmt: skip
            self._send(conn, [{**ok, "EventList": "start"}, *listed,
                              {"Event": "CoreShowChannelsComplete", "EventList": "Complete", "ActionID": action_id}])
        elif name == "QueueStatus":
            members = [{"Event": "QueueMember", "Queue": QUEUE, "Name": f"agent{n}", "Location": f"PJSIP/{n}",
                        "Status": "1", "Paused": "0", "InCall": "0", "ActionID": action_id}
                       for n in range(self.ready_members)]  # fmt: skip
            self._send(conn, [{**ok, "EventList": "start"}, *members,
                              {"Event": "QueueStatusComplete", "EventList": "Complete", "ActionID": action_id}])
        elif name == "Logoff":
            self._send(conn, [{"Response": "Goodbye", "ActionID": action_id}])
        else:  # Login, Originate (queued), Hangup, Ping
            self._send(conn, [ok])

    def _send(self, conn: socket.socket, messages: list[Headers]) -> None:
        data = "".join("".join(f"{k}: {v}\r\n" for k, v in message.items()) + "\r\n" for message in messages)
        with self._write:
            conn.sendall(data.encode())

    def event(self, **headers: str) -> None:
        """Send an event on the current connection (``Event=...`` first)."""
        assert self.conn is not None
        self._send(self.conn, [headers])

    def wait_action(self, name: str, count: int = 1, timeout: float = 10) -> Headers:
        """The ``count``-th action called ``name``, once it came."""
        def matching() -> list[Headers]:
            return [a for a in self.actions if a.get("Action") == name]

        with self.changed:
            assert self.changed.wait_for(lambda: len(matching()) >= count, timeout), self.actions
            return matching()[count - 1]

    def drop(self) -> None:
        """Cut the current connection, as Asterisk going away would."""
        if self.conn is not None:
            with contextlib.suppress(OSError):  # already closed
                self.conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._accepter.join(5)
        self.drop()
        for thread in self._threads:
            thread.join(5)


class Changes:
    def __init__(self) -> None:
        self.changed = threading.Condition()

    def callbacks_changed(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def callback_attempt(self, result: Result) -> None:
        self.callbacks_changed()

    def wait(self, store: SqliteCallbacks, callback_id: str, test: Callable[[Callback], bool]) -> Callback:
        def current() -> Callback:
            found = store.get(callback_id)
            assert found is not None
            return found

        with self.changed:
            assert self.changed.wait_for(lambda: test(current()), 10), store.events(callback_id)
        return current()


@pytest.fixture
def flows(tmp_path: Path) -> dict[str, Flow]:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / f"{FLOW}.yaml").write_text(FLOW_YAML)
    library = FlowLibrary(tmp_path / "flows", ROOT / "prompts")
    assert library.reload().ok
    return library.flows


@pytest.fixture
def fake() -> Iterator[FakeAmi]:
    server = FakeAmi()
    yield server
    server.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteCallbacks]:
    with open_database(tmp_path / "data") as database:
        yield SqliteCallbacks(database)


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def dispatcher(
    fake: FakeAmi, store: SqliteCallbacks, flows: dict[str, Flow], changes: Changes
) -> Iterator[Dispatcher]:
    session = AmiSession("127.0.0.1", fake.port, "ivrkit", "secret", min_delay=0.05)
    started = Dispatcher(store, lambda: flows, session, metrics=changes, poll=0.1)
    started.start()
    session.start()
    yield started
    assert started.stop()
    session.stop()


def request(store: SqliteCallbacks, number: str = "+4930111001") -> Callback:
    now = time.time()
    callback, _ = store.request(NewCallback(number=number, queue=QUEUE, flow=FLOW, origin=Origin.REQUEST,
                                            joined_at=now, requested_at=now))  # fmt: skip
    return callback


def originated(fake: FakeAmi, count: int = 1) -> tuple[str, str]:
    """(channel id, action id) of the ``count``-th Originate."""
    action = fake.wait_action("Originate", count)
    return action["ChannelId"], action["ActionID"]


def channel(fake: FakeAmi, name: str, uniqueid: str, state: str = "Ringing", cause: str = "") -> None:
    headers = {"Event": name, "Channel": f"Local/{uniqueid}@numbers", "Uniqueid": uniqueid, "ChannelStateDesc": state}
    if cause:
        headers["Cause"] = cause
    fake.event(**headers)


@pytest.mark.parametrize("cause_first", [True, False], ids=["cause-first", "response-first"])
def test_reason_0_is_told_by_the_hang_up_cause_in_either_order(
    fake: FakeAmi, store: SqliteCallbacks, changes: Changes, dispatcher: Dispatcher, cause_first: bool
) -> None:
    callback = request(store)
    leg, action_id = originated(fake)
    channel(fake, "Newchannel", leg)
    channel(fake, "Newchannel", leg + "-2")
    if cause_first:
        channel(fake, "Hangup", leg + "-2", cause="17")
    fake.event(Event="OriginateResponse", ActionID=action_id, Response="Failure", Reason="0", Uniqueid=leg)
    if not cause_first:
        channel(fake, "Hangup", leg + "-2", cause="17")
    channel(fake, "Hangup", leg, state="Down", cause="0")
    done = changes.wait(store, callback.id, lambda c: c.state is State.PENDING)
    assert done.last_result is Result.BUSY
    assert store.events(callback.id)[-1].reason.startswith("busy (Originate reason 0, hang-up cause 17); next attempt")


def test_reason_0_without_any_cause_is_a_failed_dial(
    fake: FakeAmi, store: SqliteCallbacks, changes: Changes, dispatcher: Dispatcher
) -> None:
    callback = request(store)
    leg, action_id = originated(fake)
    fake.event(Event="OriginateResponse", ActionID=action_id, Response="Failure", Reason="0", Uniqueid=leg)
    channel(fake, "Hangup", leg + "-2", cause="0")
    channel(fake, "Hangup", leg, state="Down", cause="0")
    done = changes.wait(store, callback.id, lambda c: c.state is State.PENDING)
    assert done.last_result is Result.FAILED


def test_a_hang_up_before_its_successful_originate_response_is_unconfirmed(
    fake: FakeAmi, store: SqliteCallbacks, changes: Changes, dispatcher: Dispatcher
) -> None:
    callback = request(store)
    leg, action_id = originated(fake)
    channel(fake, "Hangup", leg, state="Up", cause="16")
    fake.event(Event="OriginateResponse", ActionID=action_id, Response="Success", Reason="4", Uniqueid=leg)
    done = changes.wait(store, callback.id, lambda c: c.state is State.PENDING)
    assert done.last_result is Result.UNCONFIRMED


def test_a_hang_up_whose_originate_response_never_comes_is_decided_by_its_cause(
    fake: FakeAmi, store: SqliteCallbacks, changes: Changes, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ivrkit.callbacks.dispatcher, "HANGUP_GRACE", 0.2)
    callback = request(store)
    leg, _ = originated(fake)
    channel(fake, "Hangup", leg, state="Ringing", cause="19")
    done = changes.wait(store, callback.id, lambda c: c.state is State.PENDING)
    assert done.last_result is Result.NO_ANSWER
    assert "no OriginateResponse" in store.events(callback.id)[-1].reason


def test_a_newchannel_trailing_its_failed_originate_is_not_hung_up_but_a_stray_is(
    fake: FakeAmi, store: SqliteCallbacks, changes: Changes, dispatcher: Dispatcher
) -> None:
    callback = request(store)
    leg, action_id = originated(fake)
    fake.event(Event="OriginateResponse", ActionID=action_id, Response="Failure", Reason="8", Uniqueid=leg)
    changes.wait(store, callback.id, lambda c: c.state is State.PENDING)
    channel(fake, "Newchannel", leg)  # Asterisk publishes channel events and OriginateResponse by different paths
    stray = channel_id_for(callback.id, 5)
    channel(fake, "Newchannel", stray)
    # events are handled in order: a Hangup for the trailing Newchannel would have been sent first
    assert fake.wait_action("Hangup")["Channel"] == f"Local/{stray}@numbers"


def test_agent_first_dial_end_connects_or_ends_the_attempt(
    fake: FakeAmi, store: SqliteCallbacks, changes: Changes, flows: dict[str, Flow], dispatcher: Dispatcher
) -> None:
    queue = flows[FLOW].queues[QUEUE]
    assert queue.callback is not None
    agent_first = dataclasses.replace(queue.callback, mode=Mode.AGENT_FIRST)
    flows[FLOW] = dataclasses.replace(flows[FLOW], queues={QUEUE: dataclasses.replace(queue, callback=agent_first)})
    answered, busy = request(store, "+4930111001"), request(store, "+4930111002")
    for n in (1, 2):
        leg, action_id = originated(fake, n)
        assert fake.wait_action("Originate", n)["Channel"] == "Local/callback-agent@ivrkit-main/n"
        fake.event(Event="OriginateResponse", ActionID=action_id, Response="Success", Reason="4", Uniqueid=leg)
        fake.event(Event="DialEnd", Uniqueid=leg, DestUniqueid="1.1", DialStatus="ANSWER" if n == 1 else "BUSY")
    assert changes.wait(store, answered.id, lambda c: c.state is State.CONNECTED).attempts == 1
    assert changes.wait(store, busy.id, lambda c: c.state is State.PENDING).last_result is Result.BUSY
    channel(fake, "Hangup", channel_id_for(answered.id, 1), state="Up", cause="16")
    assert changes.wait(store, answered.id, lambda c: c.state is State.COMPLETED).last_result is Result.ANSWERED


def test_attempts_in_flight_are_checked_when_a_connection_comes_up(
    fake: FakeAmi, store: SqliteCallbacks, changes: Changes, flows: dict[str, Flow]
) -> None:
    fake.ready_members = 0  # nothing new is dialled
    live, gone, talking = request(store, "+4930111001"), request(store, "+4930111002"), request(store, "+4930111003")
    for callback in (live, gone, talking):
        leg = channel_id_for(callback.id, 1)
        assert store.start_attempt(callback.id, channel_id=leg, action_id=f"{leg}-originate") is not None
    assert store.connected(talking.id, channel_id_for(talking.id, 1), "the customer confirmed") is not None
    fake.channels = [channel_id_for(live.id, 1), channel_id_for(live.id, 1) + "-2"]
    session = AmiSession("127.0.0.1", fake.port, "ivrkit", "secret", min_delay=0.05)
    dispatcher = Dispatcher(store, lambda: flows, session, metrics=changes, poll=0.1).start()
    session.start()
    try:
        assert dispatcher.wait_reconciled(1)
        assert dispatcher.watching == [channel_id_for(live.id, 1)]
        assert (store.get(gone.id) or gone).state is State.PENDING
        assert (store.get(gone.id) or gone).last_result is Result.INTERRUPTED
        assert (store.get(talking.id) or talking).state is State.COMPLETED  # its call ended while nobody watched

        fake.drop()  # the live call's OriginateResponse comes on the next connection: matched by its ActionID
        assert dispatcher.wait_reconciled(2)
        leg = channel_id_for(live.id, 1)
        fake.event(Event="OriginateResponse", ActionID=f"{leg}-originate", Response="Success", Reason="4",
                   Uniqueid=leg)  # fmt: skip
        channel(fake, "Hangup", leg, state="Up", cause="16")
        done = changes.wait(store, live.id, lambda c: c.state is State.PENDING)
        assert done.last_result is Result.UNCONFIRMED
        assert [a["Action"] for a in fake.actions].count("Originate") == 0  # nothing was dialled again
    finally:
        assert dispatcher.stop()
        session.stop()


def test_doctests() -> None:
    assert doctest.testmod(ivrkit.callbacks.dispatcher).failed == 0


def test_one_dispatcher_per_data_directory(tmp_path: Path) -> None:
    with DispatcherLock(tmp_path / "data") as first:
        with pytest.raises(DispatcherLocked, match=rf"another callback dispatcher \(pid {os.getpid()}\) runs on "):
            DispatcherLock(tmp_path / "data").acquire()
        assert first.path.read_text() == f"{os.getpid()}\n"
    with DispatcherLock(tmp_path / "data"):  # released: the next one takes it
        pass


def test_the_command_line_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    cli_dispatcher.register(parser.add_subparsers())
    monkeypatch.delenv("IVRKIT_AMI_SECRET", raising=False)
    args = parser.parse_args(["dispatcher"])
    with pytest.raises(ValueError, match=r"^no AMI secret: set \$IVRKIT_AMI_SECRET or pass --ami-secret-file"):
        ami_settings(args)
    monkeypatch.setenv("IVRKIT_AMI_SECRET", "from-env")
    assert ami_settings(args) == AmiSettings("127.0.0.1", 5038, "ivrkit", "from-env")
    (tmp_path / "secret").write_text("from-file\n")
    from_file = parser.parse_args(["dispatcher", "--ami-secret-file", str(tmp_path / "secret")])
    assert ami_settings(from_file).secret == "from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match=r"the AMI secret file .*empty is empty"):
        ami_settings(parser.parse_args(["dispatcher", "--ami-secret-file", str(tmp_path / "empty")]))
    with pytest.raises(ValueError, match=r"--ami 'pbx:port' is not HOST:PORT, e.g. 127.0.0.1:5038"):
        ami_settings(parser.parse_args(["dispatcher", "--ami", "pbx:port"]))
    assert doctest.testmod(running).failed == 0
