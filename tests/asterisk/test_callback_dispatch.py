"""The callback dispatcher on a real Asterisk 22: customers and agents are Local channels.

The dialplan is written here after the compiled one's contract (``callback`` and ``callback-agent`` in the
flow's context, see ``ivrkit/compiler/templates/extensions.conf.j2``), and the answered leg's FastAGI route
(``<flow>/callback?id=…``) is a small stand-in (:class:`AnsweredLeg`) doing what the server's does: check the
callback is the one this channel dials, ask for the confirmation key, record the connection, send the customer
to the queue (agent-first: tell the dialplan to dial the customer). Customers' numbers choose their behaviour
in ``ivrkit-cbtest-numbers``; a customer "presses" the key through AMI ``PlayDTMF`` when the leg asks.

What is proved: a customer who answers and confirms is connected to an agent, in the order callers first
joined; unanswered, busy, congested and rejected calls are told apart, retried and finally failed; agent-first
calls reach the customer (or end with no agent); and an attempt survives the dispatcher being killed, or AMI
dropping the Originate on the way or the reply on the way back, without being lost or made twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ivrkit.ami.client import AmiClient, AmiError
from ivrkit.ami.session import AmiSession
from ivrkit.callbacks.dispatcher import Dispatcher, channel_id_for, parse_channel_id
from ivrkit.callbacks.model import Callback, Mode, NewCallback, Origin, Result, State
from ivrkit.flow.hours import Schedule
from ivrkit.flow.model import Flow
from ivrkit.qa.asterisk.calls import caller_dialplan
from ivrkit.qa.asterisk.sandbox import QUEUES_CONF, AsteriskInstance
from ivrkit.server.library import FlowLibrary
from ivrkit.steps.queue import callback_settings
from ivrkit.store import SqliteCallbacks, open_database
from tests.ami.relay import Relay

pytestmark = pytest.mark.asterisk

ROOT = Path(__file__).resolve().parents[2]
FLOW, QUEUE = "cbflow", "cbsupport"
NUMBERS, AGENTS = "ivrkit-cbtest-numbers", "ivrkit-cbtest-agents"
CALLER_ID = "+4930999000"
FLOW_YAML = f"""\
flow: {FLOW}
start: join
dialplan: {{numbers_context: {NUMBERS}}}
queues:
  {QUEUE}:
    ring_timeout: 15s
    callback: {{mode: customer-first, ring_timeout: 30s, attempts: 2, retry_after: [1s], caller_id: "{CALLER_ID}",
               priority: 10}}
steps:
  join:
    queue: {QUEUE}
"""
ANSWERS, RINGS, BUSY, NETWORK_BUSY, CONGESTED, REJECTS, HELD = (
    "+4930111", "+4930222", "+4930333", "+4930334", "+4930444", "+4930555", "+4930666"
)  # number prefixes: each customer's behaviour (three more digits make the number)
QUEUES = f"{QUEUES_CONF}\n[{QUEUE}]\nstrategy = ringall\ntimeout = 15\nretry = 1\nringinuse = no\n"


def dialplan(agi_port: int) -> str:
    # a Local member's device state is Invalid (4) when its extension exists only as a pattern: one each
    agents = "\n".join(f"exten => agent{n},1,Goto(agent,1)" for n in range(1, 7))
    agi = f"agi://127.0.0.1:{agi_port}/{FLOW}/callback?id=${{IVRKIT_DP_CALLBACK}}&amd=${{AMDSTATUS}}"
    return f"""\
[general]
static = yes
writeprotect = yes

[{NUMBERS}]
exten => _+{ANSWERS[1:]}XXX,1,Goto(answer,1)
exten => _+{RINGS[1:]}XXX,1,Ringing()
 same => n,Wait(120)
exten => _+{BUSY[1:]}XXX,1,Busy(5)
exten => _+{NETWORK_BUSY[1:]}XXX,1,Ringing()
 same => n,Wait(0.2)
 same => n,Hangup(17)
exten => _+{CONGESTED[1:]}XXX,1,Congestion(5)
exten => _+{REJECTS[1:]}XXX,1,Ringing()
 same => n,Wait(0.2)
 same => n,Hangup(21)
exten => _+{HELD[1:]}XXX,1,Ringing()
 same => n,Wait(120)
exten => answer,1,Answer()
 same => n,PlayTones(0)
 same => n,Wait(120)

[{AGENTS}]
{agents}
exten => agent,1,Answer()
 same => n,Wait(1)
 same => n,Hangup()
exten => ringer,1,Ringing()
 same => n,Wait(120)

; the compiled dialplan's contract for flow {FLOW} (ivrkit compile writes the real one)
[ivrkit-{FLOW}]
exten => callback,1,NoOp(ivrkit callback)
 same => n,Set(IVRKIT_DP_FLOW={FLOW})
 same => n,Set(IVRKIT_DP_CALLBACK=${{FILTER(0-9a-f,${{IVRKIT_CALLBACK}})}})
 same => n,Set(AMDSTATUS=)
 same => n,MSet(IVRKIT_RESULT=,IVRKIT_OUTCOME=,IVRKIT_TARGET=,IVRKIT_TIMEOUT=,IVRKIT_PRIORITY=)
 same => n,AGI({agi})
 same => n,GotoIf($["${{IVRKIT_RESULT}}" = "queue"]?cb-queue)
 same => n,GotoIf($["${{IVRKIT_RESULT}}" = "dial"]?cb-dial)
 same => n,Goto(cb-hangup)
 same => n(cb-queue),Set(QUEUE_PRIO=${{FILTER(0-9,0${{IVRKIT_PRIORITY}})}})
 same => n,Queue({QUEUE})
 same => n,Goto(cb-hangup)
 same => n(cb-dial),Dial(Local/${{FILTER(0-9+,${{IVRKIT_TARGET}})}}@{NUMBERS},${{FILTER(0-9,${{IVRKIT_TIMEOUT}})}})
 same => n(cb-hangup),Hangup()
exten => callback-agent,1,NoOp(ivrkit callback waiting for an agent)
 same => n,Set(QUEUE_PRIO=${{FILTER(0-9,0${{IVRKIT_CB_PRIORITY}})}})
 same => n,Queue({QUEUE},,,,${{FILTER(0-9,${{IVRKIT_CB_WAIT}})}})
 same => n,Hangup()

{caller_dialplan()}"""


class Changes:
    """The store's changes, announced by the dispatcher (its metrics hook) and the answered leg: waited on
    with deadlines instead of polling."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.results: list[Result] = []

    def callbacks_changed(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def callback_attempt(self, result: Result) -> None:
        with self.changed:
            self.results.append(result)
            self.changed.notify_all()

    def wait(self, store: SqliteCallbacks, callback_id: str, test: Callable[[Callback], bool], timeout: float = 30):
        """The callback once ``test`` holds for it; fails with its events at the deadline."""
        with self.changed:
            if self.changed.wait_for(lambda: test(_get(store, callback_id)), timeout):
                return _get(store, callback_id)
        events = "\n  ".join(f"{e.from_state} -> {e.to_state}: {e.reason}" for e in store.events(callback_id))
        raise AssertionError(f"callback {callback_id} is {_get(store, callback_id).state}; events:\n  {events}")


def _get(store: SqliteCallbacks, callback_id: str) -> Callback:
    callback = store.get(callback_id)
    assert callback is not None
    return callback


class AnsweredLeg:
    """A FastAGI stand-in for the server's ``<flow>/callback`` route; see the module docstring."""

    def __init__(self, wait_ms: int = 2000) -> None:
        self.wait_ms = wait_ms
        self.store: SqliteCallbacks | None = None
        self.flows: dict[str, Flow] = {}
        self.changes: Changes | None = None
        self.requests: list[dict[str, str]] = []
        self.errors: list[BaseException] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="answered-leg", daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._session, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        reader = conn.makefile("rb")
        try:
            env = {}
            while line := reader.readline().decode().rstrip("\n"):
                key, _, value = line.partition(": ")
                env[key] = value
            self.requests.append(env)

            def command(text: str) -> str:
                conn.sendall(text.encode() + b"\n")
                while (reply := reader.readline().decode().rstrip("\n")) == "HANGUP":
                    continue
                return reply

            self._answer(env, command)
        except BaseException as error:
            self.errors.append(error)
        finally:
            reader.close()
            conn.close()
            if self.store is not None:
                self.store.database.release()

    def _answer(self, env: dict[str, str], command: Callable[[str], str]) -> None:
        store, changes = self.store, self.changes
        assert store is not None and changes is not None
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(env["agi_network_script"]).query)
        callback = store.get(query["id"][0])
        uniqueid = env["agi_uniqueid"]
        if callback is None or callback.state is not State.DIALING or callback.channel_id != uniqueid:
            command("SET VARIABLE IVRKIT_RESULT hangup")
            return
        settings = callback_settings(self.flows[callback.flow], callback.queue)
        if settings.mode is Mode.AGENT_FIRST:
            command(f"SET VARIABLE IVRKIT_TARGET {callback.number}")
            command(f"SET VARIABLE IVRKIT_TIMEOUT {int(settings.ring_timeout)}")
            command("SET VARIABLE IVRKIT_RESULT dial")
            return
        reply = command(f"WAIT FOR DIGIT {self.wait_ms}")
        if reply == f"200 result={ord(settings.confirm_key)}":
            store.connected(callback.id, uniqueid, "the customer confirmed")
            changes.callbacks_changed()
            command(f"SET VARIABLE IVRKIT_TARGET {callback.queue}")
            command(f"SET VARIABLE IVRKIT_PRIORITY {settings.priority}")
            command("SET VARIABLE IVRKIT_RESULT queue")
        else:
            command("SET VARIABLE IVRKIT_RESULT hangup")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(10)


class Customers:
    """Presses the confirmation key for customers whose numbers are in ``confirming`` when the leg asks."""

    def __init__(self, ami: AmiClient) -> None:
        self.ami = ami
        self.confirming: set[str] = set()
        self.pressed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ami.cursor(),), name="customers", daemon=True)
        self._thread.start()

    def _run(self, cursor: Any) -> None:
        while not self._stop.is_set():
            event = cursor.next(0.2)
            if event is None or event.name != "AGIExecStart" or not event.get("Command", "").startswith("WAIT FOR"):
                continue
            channel = event.get("Channel", "")
            number = channel.removeprefix("Local/").split("@", 1)[0]
            if number in self.confirming:
                self.pressed.append(number)
                self.ami.send("PlayDTMF", Channel=channel, Digit="1", Receive=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def leg() -> Iterator[AnsweredLeg]:
    answered = AnsweredLeg()
    yield answered
    answered.close()
    assert answered.errors == []


@pytest.fixture(scope="module")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("callbacks") / "flows"
    directory.mkdir()
    (directory / f"{FLOW}.yaml").write_text(FLOW_YAML)
    return directory


@pytest.fixture(scope="module")
def base_flow(flows_dir: Path) -> Flow:
    library = FlowLibrary(flows_dir, ROOT / "prompts")
    report = library.reload()
    assert report.ok, report.errors
    return library.flows[FLOW]


@pytest.fixture(scope="module")
def pbx(asterisk: AsteriskInstance, leg: AnsweredLeg) -> Iterator[AsteriskInstance]:
    asterisk.reload_dialplan(dialplan(leg.port))
    asterisk.write_config("queues.conf", QUEUES)
    assert asterisk.ami is not None
    asterisk.ami.send("QueueReload")
    yield asterisk
    asterisk.write_config("queues.conf", QUEUES_CONF)
    asterisk.ami.send("QueueReload")


@pytest.fixture
def store(tmp_path: Path, leg: AnsweredLeg, changes: Changes) -> Iterator[SqliteCallbacks]:
    database = open_database(tmp_path / "data")
    callbacks = SqliteCallbacks(database)
    leg.store, leg.changes = callbacks, changes
    try:
        yield callbacks
    finally:
        leg.store = None
        database.close()


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def customers(ami: AmiClient, pbx: AsteriskInstance) -> Iterator[Customers]:
    pressing = Customers(ami)
    try:
        yield pressing
    finally:
        pressing.close()
        with contextlib.suppress(AmiError):
            ami.send("Hangup", Channel="/ivrkit-cb/")  # every test channel: numbers, agents, callback legs


@pytest.fixture
def members(ami: AmiClient, pbx: AsteriskInstance) -> Callable[..., None]:
    """``members("agent1", …)``: exactly these are the queue's members, all ready."""

    def set_members(*names: str) -> None:
        for event in ami.send_list("QueueStatus", Queue=QUEUE).events:
            if event.name == "QueueMember":
                ami.send("QueueRemove", Queue=QUEUE, Interface=event["Location"])
        for name in names:
            ami.send("QueueAdd", Queue=QUEUE, Interface=f"Local/{name}@{AGENTS}", MemberName=name)

    return set_members


@pytest.fixture
def dispatch(
    pbx: AsteriskInstance, store: SqliteCallbacks, changes: Changes, leg: AnsweredLeg, customers: Customers
) -> Iterator[Callable[..., Dispatcher]]:
    """``dispatch(flows, port=…)``: a dispatcher in this process on its own AMI session (through ``port``, a
    relay, when given); stopped after the test."""
    running: list[tuple[Dispatcher, AmiSession]] = []

    def start(
        flows: dict[str, Flow],
        port: int | None = None,
        maintenance: Callable[[str], str | None] = lambda flow: None,
        user: tuple[str, str] | None = None,
    ) -> Dispatcher:
        leg.flows = flows
        username, secret = user or (pbx.ami_username, pbx.ami_secret)
        session = AmiSession(pbx.ami_host, port or pbx.ami_port, username, secret, min_delay=0.05)
        dispatcher = Dispatcher(store, lambda: flows, session, maintenance=maintenance, metrics=changes, poll=0.2)
        running.append((dispatcher.start(), session.start()))
        return dispatcher

    yield start
    for dispatcher, session in running:
        assert dispatcher.stop()
        session.stop()


class DispatcherLog(logging.Handler):
    """The dispatcher's log records, waited on like events."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.messages.append(record.getMessage())
            self.changed.notify_all()

    def wait(self, text: str, timeout: float = 10) -> str:
        def found() -> str | None:
            return next((m for m in self.messages if text in m), None)

        with self.changed:
            assert self.changed.wait_for(lambda: found() is not None, timeout), self.messages
        return found() or ""


@pytest.fixture
def dispatcher_log() -> Iterator[DispatcherLog]:
    handler = DispatcherLog()
    logger = logging.getLogger("ivrkit.callbacks.dispatcher")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def with_settings(flow: Flow, **changes: Any) -> dict[str, Flow]:
    queue_settings = flow.queues[QUEUE]
    assert queue_settings.callback is not None
    callback = dataclasses.replace(queue_settings.callback, **changes)
    queues = {**flow.queues, QUEUE: dataclasses.replace(queue_settings, callback=callback)}
    return {flow.name: dataclasses.replace(flow, queues=queues)}


def request(store: SqliteCallbacks, number: str, *, joined_ago: float = 60, later: float = 0) -> Callback:
    now = time.time()
    callback, created = store.request(NewCallback(
        number=number, queue=QUEUE, flow=FLOW, origin=Origin.REQUEST, joined_at=now - joined_ago,
        requested_at=now + later,
    ))  # fmt: skip
    assert created
    return callback


def transitions(store: SqliteCallbacks, callback_id: str) -> list[tuple[str | None, str]]:
    return [(e.from_state and e.from_state.value, e.to_state.value) for e in store.events(callback_id)]


def legs_created(ami: AmiClient, mark: int, callback_id: str) -> list[str]:
    """The ;1 halves (one per Originate that reached Asterisk) created for the callback since ``mark``."""
    return [
        e["Uniqueid"] for e in ami.events_since(mark)
        if e.name == "Newchannel" and parse_channel_id(e.get("Uniqueid", "")) == (callback_id, e["Uniqueid"])
    ]  # fmt: skip


# -- customer-first ---------------------------------------------------------------------------------------


def test_a_customer_who_confirms_is_connected_to_an_agent_in_the_order_callers_joined(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, base_flow: Flow,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher], leg: AnsweredLeg,
) -> None:  # fmt: skip
    members("agent1")  # one agent: one callback at a time
    later = request(store, f"{ANSWERS}001", joined_ago=60)
    earlier = request(store, f"{ANSWERS}002", joined_ago=600)  # asked later, but had joined the queue earlier
    customers.confirming |= {later.number, earlier.number}
    mark = ami.mark()
    dispatch({FLOW: base_flow})

    first_leg = channel_id_for(earlier.id, 1)
    connect = ami.wait_for(lambda e: e.name == "AgentConnect" and e.get("Uniqueid") == first_leg, 30, since=mark)
    assert connect["Queue"] == QUEUE and connect["DestChannel"].startswith(f"Local/agent1@{AGENTS}-")
    waiting = _get(store, later.id)
    assert (waiting.state, waiting.attempts) == (State.PENDING, 0)  # the only agent is taken

    done = changes.wait(store, later.id, lambda c: c.state is State.COMPLETED)
    first = _get(store, earlier.id)
    assert first.state is State.COMPLETED and first.last_result is Result.ANSWERED and first.attempts == 1
    assert done.last_result is Result.ANSWERED and done.attempts == 1
    for callback in (earlier, later):
        assert transitions(store, callback.id) == [
            (None, "pending"), ("pending", "dialing"), ("dialing", "connected"), ("connected", "completed")
        ]
    created = [e["Uniqueid"] for e in ami.events_since(mark)
               if e.name == "Newchannel" and e.get("Uniqueid", "").startswith("ivrkit-cb-")]  # fmt: skip
    assert created == [first_leg, first_leg + "-2", channel_id_for(later.id, 1), channel_id_for(later.id, 1) + "-2"]
    events = ami.events_since(mark)
    (response,) = [e for e in events if e.name == "OriginateResponse" and e.get("Uniqueid") == first_leg]
    assert response["Response"] == "Success" and response["CallerIDNum"] == CALLER_ID
    assert response["Channel"].startswith(f"Local/{earlier.number}@{NUMBERS}-")
    assert response["Context"] == f"ivrkit-{FLOW}" and response["Exten"] == "callback"
    asked = [urllib.parse.urlsplit(r["agi_network_script"]).query for r in leg.requests[-2:]]
    assert asked == [f"id={earlier.id}&amd=", f"id={later.id}&amd="]
    assert changes.results == [Result.ANSWERED, Result.ANSWERED]


def test_unanswered_busy_congested_and_rejected_calls_are_told_apart_retried_and_failed(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, base_flow: Flow,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    members(*(f"agent{n}" for n in range(1, 7)))  # enough agents to dial every one at once
    expected = {
        f"{RINGS}001": Result.NO_ANSWER,  # rang until the Originate's Timeout: Reason 3
        f"{BUSY}001": Result.BUSY,  # Busy(): Reason 5
        f"{NETWORK_BUSY}001": Result.BUSY,  # hung up with cause 17 while ringing: Reason 0, the cause decides
        f"{CONGESTED}001": Result.FAILED,  # Congestion(): Reason 8
        f"{REJECTS}001": Result.NO_ANSWER,  # rejected (cause 21) while ringing: Reason 0
        f"{ANSWERS}003": Result.UNCONFIRMED,  # answers, never presses the key
    }
    callbacks = {number: request(store, number) for number in expected}
    dispatch(with_settings(base_flow, ring_timeout=1.0, attempts=2, retry_after=(0.5,)))

    for number, result in expected.items():
        failed = changes.wait(store, callbacks[number].id, lambda c: c.state is State.FAILED)
        assert (failed.attempts, failed.last_result) == (2, result), number
        events = store.events(failed.id)
        assert [(e.from_state and e.from_state.value, e.to_state.value) for e in events] == [
            (None, "pending"), ("pending", "dialing"), ("dialing", "pending"), ("pending", "dialing"),
            ("dialing", "failed"),
        ], number  # fmt: skip
        assert events[2].reason.startswith(f"{_words(result)} (") and "next attempt at" in events[2].reason
        assert events[4].reason.endswith("; no further attempt")
    assert sorted(changes.results) == sorted(list(expected.values()) * 2)
    assert customers.pressed == []


def _words(result: Result) -> str:
    from ivrkit.callbacks.policy import describe

    return describe(result)


def test_callbacks_wait_for_the_calling_window_and_the_end_of_maintenance(
    store: SqliteCallbacks, changes: Changes, base_flow: Flow, members: Callable[..., None],
    dispatch: Callable[..., Dispatcher], dispatcher_log: DispatcherLog,
) -> None:  # fmt: skip
    members("agent1")
    callback = request(store, f"{HELD}004")
    closed = Schedule("Europe/Berlin", weekly={day: () for day in range(7)})
    always = Schedule("Europe/Berlin", weekly={day: ((0, 1440),) for day in range(7)})
    flow = with_settings(base_flow, hours="office")[FLOW]
    current = {FLOW: dataclasses.replace(flow, schedules={"office": closed})}
    maintenance: dict[str, str] = {FLOW: "planned"}
    dispatch(current, maintenance=maintenance.get)

    dispatcher_log.wait(f"callbacks for queue '{QUEUE}' of flow '{FLOW}' wait: the flow is in maintenance (planned)")
    maintenance.clear()
    dispatcher_log.wait(f"of flow '{FLOW}' wait: outside the calling window 'office' (closed)")
    assert (_get(store, callback.id).state, _get(store, callback.id).attempts) == (State.PENDING, 0)
    current[FLOW] = dataclasses.replace(flow, schedules={"office": always})  # the flows are read every round
    changes.wait(store, callback.id, lambda c: c.state is State.DIALING)


def test_an_originate_asterisk_refuses_and_a_number_that_cannot_be_dialled_fail_the_attempt(
    store: SqliteCallbacks, changes: Changes, base_flow: Flow, members: Callable[..., None],
    dispatch: Callable[..., Dispatcher], dispatcher_log: DispatcherLog,
) -> None:  # fmt: skip
    members("agent1", "agent2")
    now = time.time()
    undialled, _ = store.request(NewCallback(number=f"{ANSWERS}007", queue=QUEUE, flow="cbnodialplan",
                                             origin=Origin.AUTOMATIC, joined_at=now, requested_at=now))  # fmt: skip
    garbled = request(store, "+49 30 1234")
    flows = with_settings(base_flow, attempts=2, retry_after=(0.2,))
    flows["cbnodialplan"] = dataclasses.replace(flows[FLOW], name="cbnodialplan")  # not in Asterisk's dialplan
    dispatch(flows)

    refused = changes.wait(store, undialled.id, lambda c: c.state is State.FAILED)
    assert (refused.attempts, refused.last_result) == (2, Result.FAILED)
    assert store.events(refused.id)[-1].reason == (
        "could not be dialled (Asterisk refused the Originate: Extension does not exist.); no further attempt"
    )
    assert "compile the flows (ivrkit compile) and reload the dialplan" in dispatcher_log.wait("refused the Originate")
    bad = changes.wait(store, garbled.id, lambda c: c.state is State.FAILED)
    assert (bad.attempts, bad.last_result) == (1, Result.FAILED)  # not retried: it would fail the same way


# -- agent-first ------------------------------------------------------------------------------------------


def test_agent_first_waits_for_an_agent_then_dials_the_customer(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, base_flow: Flow,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    members("agent1")
    callback = request(store, f"{ANSWERS}004")
    mark = ami.mark()
    dispatch(with_settings(base_flow, mode=Mode.AGENT_FIRST, agent_timeout=20.0, ring_timeout=10.0))
    done = changes.wait(store, callback.id, lambda c: c.state is State.COMPLETED)
    assert (done.attempts, done.last_result) == (1, Result.ANSWERED)
    assert transitions(store, callback.id)[-2:] == [("dialing", "connected"), ("connected", "completed")]
    assert store.events(callback.id)[2].reason == "the customer answered the agent's call"
    leg_id = channel_id_for(callback.id, 1)
    events = ami.events_since(mark)
    (response,) = [e for e in events if e.name == "OriginateResponse" and e.get("Uniqueid") == leg_id]
    assert response["Channel"].startswith(f"Local/callback-agent@ivrkit-{FLOW}-")
    assert any(e.name == "AgentConnect" and e.get("Uniqueid") == leg_id + "-2" for e in events)  # ;2 in the queue
    (dialled,) = [e for e in events if e.name == "DialEnd" and e.get("Uniqueid") == leg_id]
    assert dialled["DialStatus"] == "ANSWER" and dialled["DestChannel"].startswith(f"Local/{callback.number}@")


def test_agent_first_with_no_agent_answering_ends_as_no_agent(
    store: SqliteCallbacks, changes: Changes, customers: Customers, base_flow: Flow,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    members("ringer")  # ready, rings, never answers
    callback = request(store, f"{ANSWERS}005")
    dispatch(with_settings(base_flow, mode=Mode.AGENT_FIRST, agent_timeout=1.0, attempts=1))
    failed = changes.wait(store, callback.id, lambda c: c.state is State.FAILED)
    assert (failed.attempts, failed.last_result) == (1, Result.NO_AGENT)


# -- reliability ------------------------------------------------------------------------------------------


def test_an_originate_lost_on_the_way_is_reconciled_as_interrupted_and_dialled_once_more(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, base_flow: Flow,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher], pbx: AsteriskInstance,
) -> None:  # fmt: skip
    members("agent1")
    callback = request(store, f"{ANSWERS}006")
    customers.confirming.add(callback.number)
    mark = ami.mark()
    with Relay(pbx.ami_port) as relay:
        relay.block = b"Action: Originate"  # the first Originate never reaches Asterisk: the connection drops
        dispatch(with_settings(base_flow, retry_after=(0.5,)), port=relay.port)
        done = changes.wait(store, callback.id, lambda c: c.state is State.COMPLETED)
    assert len(relay.blocked) == 1 and f"ChannelId: {channel_id_for(callback.id, 1)}".encode() in relay.blocked[0]
    assert done.attempts == 2 and done.last_result is Result.ANSWERED
    events = store.events(callback.id)
    assert events[2].to_state is State.PENDING and events[2].reason.startswith(
        f"interrupted (no trace of the attempt in Asterisk) (no channel {channel_id_for(callback.id, 1)} in Asterisk"
    )
    assert legs_created(ami, mark, callback.id) == [channel_id_for(callback.id, 2)]  # dialled once


def test_an_originate_whose_reply_is_lost_is_watched_on_and_not_dialled_again(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, base_flow: Flow,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher], pbx: AsteriskInstance,
) -> None:  # fmt: skip
    members("agent1")
    callback = request(store, f"{HELD}001")  # rings until the test answers it
    customers.confirming.add(callback.number)
    leg_id = channel_id_for(callback.id, 1)
    mark = ami.mark()
    with Relay(pbx.ami_port) as relay:
        relay.drop_replies_to = b"Action: Originate"  # Asterisk gets it; the connection drops before the reply
        dispatcher = dispatch({FLOW: base_flow}, port=relay.port)
        ringing = ami.wait_for(lambda e: e.name == "Newchannel" and e.get("Uniqueid") == leg_id + "-2", 10, since=mark)
        assert dispatcher.wait_reconciled(2)  # connected again and checked the calls in flight ...
        assert dispatcher.watching == [leg_id] and _get(store, callback.id).state is State.DIALING  # ... it rings
        ami.send("Redirect", Channel=ringing["Channel"], Context=NUMBERS, Exten="answer", Priority=1)
        done = changes.wait(store, callback.id, lambda c: c.state is State.COMPLETED)
    assert (done.attempts, done.last_result) == (1, Result.ANSWERED)
    assert legs_created(ami, mark, callback.id) == [leg_id]


def test_a_stray_channel_named_like_an_attempt_is_hung_up(
    ami: AmiClient, store: SqliteCallbacks, customers: Customers, base_flow: Flow,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    members("agent1")
    callback = request(store, f"{HELD}002", later=3600)  # pending, not due for an hour
    assert dispatch({FLOW: base_flow}).wait_reconciled()
    stray = channel_id_for(callback.id, 7)
    mark = ami.mark()
    ami.send("Originate", Channel=f"Local/{callback.number}@{NUMBERS}/n", Context="quiet", Exten="s", Priority=1,
             Async=True, ChannelId=stray, OtherChannelId=stray + "-2")  # fmt: skip
    hangup = ami.wait_for(lambda e: e.name == "Hangup" and e.get("Uniqueid") == stray, 10, since=mark)
    assert hangup["Cause"] in ("16", "0")
    assert (_get(store, callback.id).state, _get(store, callback.id).attempts) == (State.PENDING, 0)


@pytest.fixture
def ami_users(pbx: AsteriskInstance) -> Iterator[Callable[[str, str, str], tuple[str, str]]]:
    """``ami_users(name, read, write)``: an AMI user with these rights (manager.conf restored after the test)."""
    path = pbx.config_path("manager.conf")
    original = path.read_text()
    sections: list[str] = []

    def add(name: str, read: str, write: str) -> tuple[str, str]:
        secret = f"secret-{name}"
        sections.append(f"\n[{name}]\nsecret = {secret}\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
                        f"read = {read}\nwrite = {write}\n")  # fmt: skip
        pbx.write_config("manager.conf", original + "".join(sections))
        pbx.command("manager reload")
        return name, secret

    yield add
    pbx.write_config("manager.conf", original)
    pbx.command("manager reload")


def test_the_documented_ami_rights_are_enough_and_a_missing_one_is_named(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, base_flow: Flow,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher], dispatcher_log: DispatcherLog,
    ami_users: Callable[[str, str, str], tuple[str, str]],
) -> None:  # fmt: skip
    members("agent1")
    callback = request(store, f"{ANSWERS}008")
    customers.confirming.add(callback.number)
    unchecked = dispatch({FLOW: base_flow}, user=ami_users("cbnoreport", "call,agent", "originate"))
    dispatcher_log.wait("cannot check the calls in flight (Permission denied); nothing is dialled until it works: "
                        "give the AMI user write=reporting (CoreShowChannels)")  # fmt: skip
    assert unchecked.stop() and unchecked.reconciled == 0
    assert _get(store, callback.id).attempts == 0

    dispatcher = dispatch({FLOW: base_flow}, user=ami_users("cbdispatch", "call,agent", "originate,reporting"))
    done = changes.wait(store, callback.id, lambda c: c.state is State.COMPLETED)
    assert (done.attempts, done.last_result) == (1, Result.ANSWERED)
    stray = channel_id_for(callback.id, 9)
    mark = ami.mark()
    ami.send("Originate", Channel=f"Local/{HELD}005@{NUMBERS}/n", Context="quiet", Exten="s", Priority=1,
             Async=True, ChannelId=stray)  # fmt: skip
    dispatcher_log.wait("cannot hang up stray callback channels (Permission denied): give the AMI user write=call")
    assert dispatcher.watching == []
    assert not any(e.name == "Hangup" and e.get("Uniqueid") == stray for e in ami.events_since(mark))


class DispatcherProcess:
    """``ivrkit dispatcher`` as a real process; its JSON log lines read as they come."""

    def __init__(self, pbx: AsteriskInstance, flows: Path, data: Path) -> None:
        env = {**os.environ, "IVRKIT_AMI_SECRET": pbx.ami_secret}
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "dispatcher", "--flows", str(flows), "--prompts", str(ROOT / "prompts"),
             "--data-dir", str(data), "--ami", f"{pbx.ami_host}:{pbx.ami_port}", "--ami-user", pbx.ami_username,
             "--poll", "0.2", "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=data.parent,
        )  # fmt: skip
        self.logs: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                self.logs.put(json.loads(line))
            except json.JSONDecodeError:
                self.logs.put({"msg": line.rstrip(), "level": "RAW"})

    def wait_log(self, match: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                record = self.logs.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no such log line within {timeout} s; seen: {self.seen}") from None
            self.seen.append(record)
            if match(record):
                return record

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)
        if self.process.stderr is not None:
            self.process.stderr.close()


LAUNCH = """\
import argparse, sys
from ivrkit import cli
from ivrkit.cli import dispatcher
if dispatcher in cli.COMMANDS:
    sys.exit(cli.main())
parser = argparse.ArgumentParser(prog="ivrkit")
dispatcher.register(parser.add_subparsers()).set_defaults(handler=dispatcher.run)
args = parser.parse_args()
sys.exit(args.handler(args))
"""


@pytest.fixture
def data_dir(tmp_path: Path, leg: AnsweredLeg, base_flow: Flow) -> Iterator[Path]:
    """A data directory for dispatcher processes, whose store the answered leg uses too."""
    data = tmp_path / "data"
    with open_database(data) as database:
        leg.store, leg.flows, leg.changes = SqliteCallbacks(database), {FLOW: base_flow}, Changes()
        try:
            yield data
        finally:
            leg.store = None


def test_a_dispatcher_killed_while_the_customer_rings_is_reconciled_on_restart(
    ami: AmiClient, customers: Customers, members: Callable[..., None], pbx: AsteriskInstance, flows_dir: Path,
    data_dir: Path,
) -> None:  # fmt: skip
    members("agent1")
    data = data_dir
    with open_database(data) as database:
        callback = request(SqliteCallbacks(database), f"{HELD}003")
    customers.confirming.add(callback.number)
    leg_id = channel_id_for(callback.id, 1)
    mark = ami.mark()
    processes: list[DispatcherProcess] = []
    try:
        processes.append(DispatcherProcess(pbx, flows_dir, data))
        ringing = ami.wait_for(lambda e: e.name == "Newchannel" and e.get("Uniqueid") == leg_id + "-2", 20, since=mark)
        processes[0].process.send_signal(signal.SIGKILL)  # in the middle of the Originate: the customer rings
        assert processes[0].process.wait(10) == -signal.SIGKILL
        with open_database(data) as database:
            assert _get(SqliteCallbacks(database), callback.id).state is State.DIALING

        processes.append(DispatcherProcess(pbx, flows_dir, data))
        checked = processes[1].wait_log(lambda r: r.get("msg", "").startswith("checked the callbacks in flight"))
        assert checked["msg"] == "checked the callbacks in flight against Asterisk: 1 still up, 0 ended"
        refused = subprocess.run(
            [sys.executable, "-c", LAUNCH, "dispatcher", "--flows", str(flows_dir), "--data-dir", str(data)],
            capture_output=True, text=True, timeout=30, env={**os.environ, "IVRKIT_AMI_SECRET": "x"},
        )  # fmt: skip
        assert refused.returncode == 1
        assert "another callback dispatcher (pid " in refused.stderr and "run one per data directory" in refused.stderr

        ami.send("Redirect", Channel=ringing["Channel"], Context=NUMBERS, Exten="answer", Priority=1)  # answers
        processes[1].wait_log(lambda r: r.get("callback") == callback.id and r.get("state") == "completed", 30)
        processes[1].process.send_signal(signal.SIGTERM)
        assert processes[1].process.wait(15) == 0
    finally:
        for process in processes:
            process.close()
    with open_database(data) as database:
        store = SqliteCallbacks(database)
        done = _get(store, callback.id)
        assert (done.state, done.attempts, done.last_result) == (State.COMPLETED, 1, Result.ANSWERED)
        assert transitions(store, callback.id) == [
            (None, "pending"), ("pending", "dialing"), ("dialing", "connected"), ("connected", "completed")
        ]
    assert legs_created(ami, mark, callback.id) == [leg_id]  # dialled once, across both dispatchers
    assert customers.pressed == [callback.number]
