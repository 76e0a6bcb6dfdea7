"""The callback dispatcher on a real Asterisk 22, with the compiled dialplan and the server's answered leg.

The flow is written here and compiled with ``ivrkit.compiler`` (its ``callback`` and ``callback-agent``
extensions are what the dispatcher's Originate runs); the answered leg (``<flow>/callback?id=…``) is the real
FastAGI server in this process with the live world ``ivrkit serve`` builds (:class:`LiveCallbacks` on the
test's SQLite store), so the leg checks the attempt in flight, plays the prompts, asks for the confirmation
key and records the connection or the end of the attempt itself. Each test writes the flow's ``callback:``
settings it needs and reloads the server's flows; the dispatcher reads the same flows, as in ``ivrkit serve``.
Customers' numbers choose their behaviour in ``ivrkit-cbtest-numbers``; a customer "presses" the key through
AMI ``PlayDTMF`` when the leg starts the confirmation prompt (its ``AGIExecStart``). Agents are Local members.

What is proved: a customer who answers and confirms is connected to an agent, in the order callers first
joined; unanswered, busy, congested, rejected and unconfirmed calls are told apart, retried and finally
failed; agent-first calls tell the agent whom they call and reach the customer (or end with no agent); the
calling window and maintenance hold callbacks back; the AMI rights docs/callbacks.md gives are enough and a
missing one is named; and an attempt survives the dispatcher being killed, or AMI dropping the Originate on
the way or the reply on the way back, without being lost or made twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ivrkit.ami.client import AmiClient, AmiError
from ivrkit.ami.session import AmiSession
from ivrkit.callbacks.dispatcher import Dispatcher, channel_id_for, parse_channel_id
from ivrkit.callbacks.live import LiveCallbacks
from ivrkit.callbacks.model import Callback, NewCallback, Origin, Result, State
from ivrkit.callbacks.policy import describe
from ivrkit.compiler.reload import apply, expected_from
from ivrkit.compiler.render import EXTENSIONS_FILE, QUEUES_FILE
from ivrkit.flow.model import Flow
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.qa.asterisk.calls import caller_dialplan
from ivrkit.qa.asterisk.sandbox import QUEUES_CONF, AsteriskInstance
from ivrkit.server.library import FlowLibrary
from ivrkit.server.listener import AgiListener, ListenerSettings
from ivrkit.server.world import LiveQueues, LiveWorld
from ivrkit.sms.links import LinkSigner
from ivrkit.sms.texts import OutboxTexts
from ivrkit.store import SqliteCallbacks, SqliteOutbox, open_database
from ivrkit.store.database import Database
from tests.ami.relay import Relay
from tests.asterisk.conftest import documented_ami_rights, wav, without
from tests.asterisk.recording import RecordingHandler
from tests.asterisk.test_compiled_dialplan import QUEUES_WITH_INCLUDE, compile_for
from tests.server.process import CLI, IvrkitProcess

pytestmark = pytest.mark.asterisk

ROOT = Path(__file__).resolve().parents[2]
FLOW, QUEUE = "cbflow", "cbsupport"
NUMBERS, AGENTS = "ivrkit-cbtest-numbers", "ivrkit-cbtest-agents"
CALLER_ID = "+4930999000"
BASE_CALLBACK = {
    "ring_timeout": "30s", "attempts": "2", "retry_after": "[1s]", "caller_id": f'"{CALLER_ID}"', "priority": "10",
    "confirm_tries": "1", "confirm_seconds": "1s",
}  # fmt: skip
ANSWERS, RINGS, BUSY, NETWORK_BUSY, CONGESTED, REJECTS, HELD = (
    "+4930111", "+4930222", "+4930333", "+4930334", "+4930444", "+4930555", "+4930666"
)  # number prefixes: each customer's behaviour (three more digits make the number)
BRIEF = "+77"  # answers, talks for a second, hangs up (one more digit: a short number for an agent to hear)
CONFIRMATION = "callback-press-to-connect"  # the prompt the answered leg asks for the key with
TEST_DIALPLAN = f"""\
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
exten => _+{BRIEF[1:]}X,1,Answer()
 same => n,Wait(1)
 same => n,Hangup()
exten => answer,1,Answer()
 same => n,PlayTones(0)
 same => n,Wait(120)

[{AGENTS}]
{{agents}}
exten => agent,1,Answer()
 same => n,Wait(1)
 same => n,Hangup()
exten => patient,1,Answer()
 same => n,Wait(30)
 same => n,Hangup()
exten => ringer,1,Ringing()
 same => n,Wait(120)
""".replace("{agents}", "\n".join(f"exten => agent{n},1,Goto(agent,1)" for n in range(1, 7)))
# (a Local member's device state is Invalid when its extension exists only as a pattern: one each)
EXTENSIONS_CONF = f"""\
[general]
static = yes
writeprotect = yes

{caller_dialplan()}
{TEST_DIALPLAN}
#include {EXTENSIONS_FILE}
"""


def flow_yaml(callback: dict[str, str], schedules: str = "") -> str:
    settings = ", ".join(f"{key}: {value}" for key, value in {**BASE_CALLBACK, **callback}.items())
    return textwrap.dedent(f"""\
        flow: {FLOW}
        start: join
        dialplan: {{numbers_context: {NUMBERS}}}
        queues:
          {QUEUE}:
            ring_timeout: 15s
            retry: 1s
            callback: {{{settings}}}
        steps:
          join:
            queue: {QUEUE}
        """) + schedules


class Changes:
    """The store's changes, announced by the dispatcher (its metrics hook) and the answered leg's
    :class:`LiveCallbacks` (``on_change`` and its metrics): waited on with deadlines."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.results: list[Result] = []
        self.wakers: list[Callable[[], None]] = []

    def callbacks_changed(self) -> None:
        for wake in list(self.wakers):  # as `ivrkit serve` does: a request or an ended attempt wakes the dispatcher
            wake()
        with self.changed:
            self.changed.notify_all()

    def callback_attempt(self, result: Result) -> None:
        with self.changed:
            self.results.append(result)
            self.changed.notify_all()

    def wait(self, store: SqliteCallbacks, callback_id: str, test: Callable[[Callback], bool], timeout: float = 30):
        """The callback once ``test`` holds for it (checked on every change, and every 0.2 s for the changes
        nobody announces, like the answered leg's ``connected``); fails with its events at the deadline."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not test(current := _get(store, callback_id)):
                left = deadline - time.monotonic()
                if left <= 0:
                    events = [f"{e.from_state} -> {e.to_state}: {e.reason}" for e in store.events(current.id)]
                    raise AssertionError(f"callback {current.id} is {current.state}; events: {events}")
                self.changed.wait(min(left, 0.2))
        return current


def _get(store: SqliteCallbacks, callback_id: str) -> Callback:
    callback = store.get(callback_id)
    assert callback is not None
    return callback


class AnsweringServer:
    """The FastAGI server for the module (its port is in the compiled dialplan): the flows from ``flows``, the
    live world with callbacks on the current test's store (:meth:`use_store`)."""

    def __init__(self, flows: Path, data: Path) -> None:
        self.flows = flows
        self.database = open_database(data)
        self.metrics = ServerMetrics()
        self.queues = LiveQueues(self.database, metrics=self.metrics)
        texts = OutboxTexts(SqliteOutbox(self.database), LinkSigner.from_data_dir(data), 3600)
        self.world = LiveWorld(self.queues, texts)
        self.library = FlowLibrary(flows, ROOT / "prompts", self.world)
        self.use_flow({})
        self.handler = RecordingHandler(self.library, self.metrics)
        self.listener = AgiListener(self.handler, self.metrics, ListenerSettings(port=0))
        self.listener.start()

    def use_flow(self, callback: dict[str, str], schedules: str = "") -> None:
        """The flow with these ``callback:`` settings (over BASE_CALLBACK), served from now on; the dispatcher
        reads the same flows at its next round."""
        (self.flows / f"{FLOW}.yaml").write_text(flow_yaml(callback, schedules))
        report = self.library.reload()
        assert report.ok, report.errors

    @property
    def flow(self) -> Flow:
        return self.library.flows[FLOW]

    def use_store(self, store: SqliteCallbacks | None, changes: Changes | None = None) -> None:
        on_change = changes.callbacks_changed if changes is not None else None
        self.world.callbacks = None if store is None else LiveCallbacks(
            store, lambda: self.library.flows, on_change=on_change, metrics=changes
        )  # fmt: skip

    def leg_sessions(self) -> list[str]:
        """The callback ids the answered legs' sessions were about, in order."""
        assert self.listener.wait_idle(10)
        return [str(e.detail["id"]) for r in self.handler.results if r is not None
                for e in r.journal.of_kind("callback")]  # fmt: skip

    def sessions_fine(self, since: int) -> None:
        """Every answered leg since result ``since`` ran to its end and none was refused (a refusal would mean
        a leg that is not the callback's attempt in flight: a wrong channel id or a stale state)."""
        assert self.listener.wait_idle(10)
        results = self.handler.results[since:]
        assert None not in results, "a session on a callback leg crashed or broke off"
        assert [r.outcome for r in results if r is not None and r.outcome == "callback-refused"] == []

    def close(self) -> None:
        self.listener.stop_accepting()
        assert self.listener.wait_idle(10)
        self.queues.close()
        self.database.close()


class Customers:
    """Presses the confirmation key for customers whose numbers are in ``confirming``, when the answered leg
    starts the confirmation prompt (``AGIExecStart`` of its STREAM FILE)."""

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
            if event is None or event.name != "AGIExecStart" or CONFIRMATION not in event.get("Command", ""):
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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnsweringServer]:
    root = tmp_path_factory.mktemp("dispatch")
    (root / "flows").mkdir()
    answering = AnsweringServer(root / "flows", root / "server-data")
    yield answering
    answering.close()


@pytest.fixture(scope="module")
def pbx(asterisk: AsteriskInstance, server: AnsweringServer) -> Iterator[AsteriskInstance]:
    """The flow compiled for the module's server and loaded as an admin would (``#include``), its prompts."""
    for prompt in PromptCatalog.load(ROOT / "prompts").languages["en"]:
        asterisk.install_sound(f"ivrkit/{prompt}.wav", wav(0.15), language="en")
    files = compile_for(server.flows, f"agi://127.0.0.1:{server.listener.port}")
    for name, text in files.items():
        asterisk.write_config(name, text)
    asterisk.write_config("extensions.conf", EXTENSIONS_CONF)
    asterisk.write_config("queues.conf", QUEUES_WITH_INCLUDE)
    assert asterisk.ami is not None
    report = apply(asterisk.ami, expected_from(files[EXTENSIONS_FILE], files[QUEUES_FILE]))
    assert report.ok, report.render()
    yield asterisk
    asterisk.write_config("queues.conf", QUEUES_CONF)  # the session's other tests know only the default queue
    asterisk.ami.send("QueueReload")


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def store(tmp_path: Path, server: AnsweringServer, changes: Changes) -> Iterator[SqliteCallbacks]:
    """The test's callback store, which the answered leg (and the dispatchers the test starts) use."""
    database = open_database(tmp_path / "data")
    callbacks = SqliteCallbacks(database)
    server.use_store(callbacks, changes)
    sessions = len(server.handler.results)
    try:
        yield callbacks
        server.sessions_fine(sessions)
    finally:
        assert server.listener.wait_idle(10)
        server.use_store(None)
        server.use_flow({})
        database.close()


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
    pbx: AsteriskInstance, store: SqliteCallbacks, changes: Changes, server: AnsweringServer, customers: Customers
) -> Iterator[Callable[..., Dispatcher]]:
    """``dispatch(flows=…, port=…)``: a dispatcher in this process on its own AMI session (through ``port``, a
    relay, when given), reading the server's flows unless ``flows`` says otherwise; stopped after the test."""
    running: list[tuple[Dispatcher, AmiSession]] = []

    def start(
        flows: Callable[[], dict[str, Flow]] | None = None,
        port: int | None = None,
        maintenance: Callable[[str], str | None] = lambda flow: None,
        user: tuple[str, str] | None = None,
    ) -> Dispatcher:
        username, secret = user or (pbx.ami_username, pbx.ami_secret)
        session = AmiSession(pbx.ami_host, port or pbx.ami_port, username, secret, min_delay=0.05)
        read = flows or (lambda: server.library.flows)
        dispatcher = Dispatcher(store, read, session, maintenance=maintenance, metrics=changes, poll=0.2)
        changes.wakers.append(dispatcher.wake)
        running.append((dispatcher.start(), session.start()))
        return dispatcher

    yield start
    changes.wakers.clear()
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


def leg_commands(ami: AmiClient, mark: int, leg: str) -> list[str]:
    """The AGI commands the answered leg's session sent on channel ``leg``."""
    return [e["Command"] for e in ami.events_since(mark) if e.name == "AGIExecStart" and e.get("Uniqueid") == leg]


# -- customer-first ---------------------------------------------------------------------------------------


def test_a_customer_who_confirms_is_connected_to_an_agent_in_the_order_callers_joined(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, server: AnsweringServer,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    members("agent1")  # one agent: one callback at a time
    later = request(store, f"{ANSWERS}001", joined_ago=60)
    earlier = request(store, f"{ANSWERS}002", joined_ago=600)  # asked later, but had joined the queue earlier
    customers.confirming |= {later.number, earlier.number}
    mark = ami.mark()
    dispatch()

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
        assert store.events(callback.id)[2].reason == "the customer confirmed"  # recorded by the answered leg
    created = [e["Uniqueid"] for e in ami.events_since(mark)
               if e.name == "Newchannel" and e.get("Uniqueid", "").startswith("ivrkit-cb-")]  # fmt: skip
    assert created == [first_leg, first_leg + "-2", channel_id_for(later.id, 1), channel_id_for(later.id, 1) + "-2"]
    events = ami.events_since(mark)
    (response,) = [e for e in events if e.name == "OriginateResponse" and e.get("Uniqueid") == first_leg]
    assert response["Response"] == "Success" and response["CallerIDNum"] == CALLER_ID
    assert response["Channel"].startswith(f"Local/{earlier.number}@{NUMBERS}-")
    assert response["Context"] == f"ivrkit-{FLOW}" and response["Exten"] == "callback"
    url = f"agi://127.0.0.1:{server.listener.port}/{FLOW}/callback?id={{}}&amd="
    agi = [e["AppData"] for e in events if e.name == "Newexten" and e.get("Application") == "AGI"
           and e.get("Uniqueid", "").startswith("ivrkit-cb-")]  # fmt: skip
    assert agi == [url.format(earlier.id), url.format(later.id)]
    assert server.leg_sessions()[-2:] == [earlier.id, later.id]
    assert leg_commands(ami, mark, first_leg)[:2] == [
        'STREAM FILE en/ivrkit/callback-intro ""', f'STREAM FILE en/ivrkit/{CONFIRMATION} 1']
    prio = {e["Uniqueid"]: e["Value"] for e in events if e.name == "VarSet" and e.get("Variable") == "QUEUE_PRIO"
            and e.get("Uniqueid", "").startswith("ivrkit-cb-")}  # fmt: skip
    assert prio == {first_leg: "010", channel_id_for(later.id, 1): "010"}  # the queue's callback priority
    assert changes.results == [Result.ANSWERED, Result.ANSWERED]


def test_unanswered_busy_congested_rejected_and_unconfirmed_calls_are_told_apart_retried_and_failed(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, server: AnsweringServer,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    members(*(f"agent{n}" for n in range(1, 7)))  # enough agents to dial every one at once
    server.use_flow({"ring_timeout": "1s", "attempts": "2", "retry_after": "[500ms]"})
    expected = {
        f"{RINGS}001": Result.NO_ANSWER,  # rang until the Originate's Timeout: Reason 3
        f"{BUSY}001": Result.BUSY,  # Busy(): Reason 5
        f"{NETWORK_BUSY}001": Result.BUSY,  # hung up with cause 17 while ringing: Reason 0, the cause decides
        f"{CONGESTED}001": Result.FAILED,  # Congestion(): Reason 8
        f"{REJECTS}001": Result.NO_ANSWER,  # rejected (cause 21) while ringing: Reason 0
        f"{ANSWERS}003": Result.UNCONFIRMED,  # answers, never presses the key: the answered leg says so
    }
    callbacks = {number: request(store, number) for number in expected}
    mark = ami.mark()
    dispatch()

    for number, result in expected.items():
        failed = changes.wait(store, callbacks[number].id, lambda c: c.state is State.FAILED)
        assert (failed.attempts, failed.last_result) == (2, result), number
        events = store.events(failed.id)
        assert [(e.from_state and e.from_state.value, e.to_state.value) for e in events] == [
            (None, "pending"), ("pending", "dialing"), ("dialing", "pending"), ("pending", "dialing"),
            ("dialing", "failed"),
        ], number  # fmt: skip
        assert events[2].reason.startswith(f"{describe(result)} (") and "next attempt at" in events[2].reason
        assert events[4].reason.endswith("; no further attempt")
    assert sorted(changes.results) == sorted(list(expected.values()) * 2)
    assert customers.pressed == []
    unconfirmed = callbacks[f"{ANSWERS}003"].id
    assert store.events(unconfirmed)[2].reason.startswith(f"{describe(Result.UNCONFIRMED)} (answered leg)")
    commands = leg_commands(ami, mark, channel_id_for(unconfirmed, 1))
    assert commands[:3] == ['STREAM FILE en/ivrkit/callback-intro ""', f'STREAM FILE en/ivrkit/{CONFIRMATION} 1',
                            "WAIT FOR DIGIT 1000"]  # fmt: skip
    assert 'STREAM FILE en/ivrkit/goodbye ""' in commands


def test_callbacks_wait_for_the_calling_window_and_the_end_of_maintenance(
    store: SqliteCallbacks, changes: Changes, server: AnsweringServer, members: Callable[..., None],
    dispatch: Callable[..., Dispatcher], dispatcher_log: DispatcherLog,
) -> None:  # fmt: skip
    members("agent1")
    callback = request(store, f"{HELD}004")
    window = "schedules:\n  office: {{timezone: Europe/Berlin, open: {{daily: {}}}}}\n"
    server.use_flow({"hours": "office"}, window.format("closed"))
    maintenance: dict[str, str] = {FLOW: "planned"}
    dispatch(maintenance=maintenance.get)

    dispatcher_log.wait(f"callbacks for queue '{QUEUE}' of flow '{FLOW}' wait: the flow is in maintenance (planned)")
    maintenance.clear()
    dispatcher_log.wait(f"of flow '{FLOW}' wait: outside the calling window 'office' (closed)")
    assert (_get(store, callback.id).state, _get(store, callback.id).attempts) == (State.PENDING, 0)
    server.use_flow({"hours": "office"}, window.format('"00:00-24:00"'))  # the flows are read every round
    changes.wait(store, callback.id, lambda c: c.state is State.DIALING)


def test_an_originate_asterisk_refuses_and_a_number_that_cannot_be_dialled_fail_the_attempt(
    store: SqliteCallbacks, changes: Changes, server: AnsweringServer, members: Callable[..., None],
    dispatch: Callable[..., Dispatcher], dispatcher_log: DispatcherLog,
) -> None:  # fmt: skip
    members("agent1", "agent2")
    now = time.time()
    undialled, _ = store.request(NewCallback(number=f"{ANSWERS}007", queue=QUEUE, flow="cbnodialplan",
                                             origin=Origin.AUTOMATIC, joined_at=now, requested_at=now))  # fmt: skip
    garbled = request(store, "+49 30 1234")
    server.use_flow({"attempts": "2", "retry_after": "[200ms]"})
    elsewhere = dataclasses.replace(server.flow, name="cbnodialplan")  # a flow Asterisk's dialplan does not have
    dispatch(flows=lambda: {**server.library.flows, elsewhere.name: elsewhere})

    refused = changes.wait(store, undialled.id, lambda c: c.state is State.FAILED)
    assert (refused.attempts, refused.last_result) == (2, Result.FAILED)
    assert store.events(refused.id)[-1].reason == (
        "could not be dialled (Asterisk refused the Originate: Extension does not exist.); no further attempt"
    )
    assert "compile the flows (ivrkit compile) and reload the dialplan" in dispatcher_log.wait("refused the Originate")
    bad = changes.wait(store, garbled.id, lambda c: c.state is State.FAILED)
    assert (bad.attempts, bad.last_result) == (1, Result.FAILED)  # not retried: it would fail the same way


# -- agent-first ------------------------------------------------------------------------------------------


def test_agent_first_waits_for_an_agent_tells_them_whom_they_call_then_dials_the_customer(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, server: AnsweringServer,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    members("patient")  # stays on the line until the call ends
    server.use_flow({"mode": "agent-first", "agent_timeout": "20s", "ring_timeout": "10s"})
    callback = request(store, f"{BRIEF}4")  # answers, talks for a second, hangs up
    mark = ami.mark()
    dispatch()
    done = changes.wait(store, callback.id, lambda c: c.state is State.COMPLETED)
    assert (done.attempts, done.last_result) == (1, Result.ANSWERED)
    assert transitions(store, callback.id)[-2:] == [("dialing", "connected"), ("connected", "completed")]
    assert store.events(callback.id)[2].reason == "the customer answered the agent's call"
    leg_id = channel_id_for(callback.id, 1)
    events = ami.events_since(mark)
    (response,) = [e for e in events if e.name == "OriginateResponse" and e.get("Uniqueid") == leg_id]
    assert response["Channel"].startswith(f"Local/callback-agent@ivrkit-{FLOW}-")
    assert any(e.name == "AgentConnect" and e.get("Uniqueid") == leg_id + "-2" for e in events)  # ;2 in the queue
    assert leg_commands(ami, mark, leg_id) == [  # the agent hears whom they call back, then the dialplan dials
        'STREAM FILE en/ivrkit/callback-agent-intro ""', 'SAY DIGITS 774 ""',
        f'EXEC MSet IVRKIT_TARGET={callback.number},IVRKIT_TIMEOUT=10,IVRKIT_OUTCOME=callback-dial,IVRKIT_RESULT=dial',
    ]  # fmt: skip
    (dialled,) = [e for e in events if e.name == "DialEnd" and e.get("Uniqueid") == leg_id]
    assert dialled["DialStatus"] == "ANSWER" and dialled["DestChannel"].startswith(f"Local/{callback.number}@")
    assert server.leg_sessions()[-1:] == [callback.id]


def test_agent_first_with_no_agent_answering_ends_as_no_agent(
    store: SqliteCallbacks, changes: Changes, customers: Customers, server: AnsweringServer,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    members("ringer")  # ready, rings, never answers
    server.use_flow({"mode": "agent-first", "agent_timeout": "1s", "attempts": "1"})
    callback = request(store, f"{ANSWERS}005")
    dispatch()
    failed = changes.wait(store, callback.id, lambda c: c.state is State.FAILED)
    assert (failed.attempts, failed.last_result) == (1, Result.NO_AGENT)


# -- reliability ------------------------------------------------------------------------------------------


def test_an_originate_lost_on_the_way_is_reconciled_as_interrupted_and_dialled_once_more(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, server: AnsweringServer,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher], pbx: AsteriskInstance,
) -> None:  # fmt: skip
    members("agent1")
    server.use_flow({"retry_after": "[500ms]"})
    callback = request(store, f"{ANSWERS}006")
    customers.confirming.add(callback.number)
    mark = ami.mark()
    with Relay(pbx.ami_port) as relay:
        relay.block = b"Action: Originate"  # the first Originate never reaches Asterisk: the connection drops
        dispatch(port=relay.port)
        done = changes.wait(store, callback.id, lambda c: c.state is State.COMPLETED)
    assert len(relay.blocked) == 1 and f"ChannelId: {channel_id_for(callback.id, 1)}".encode() in relay.blocked[0]
    assert done.attempts == 2 and done.last_result is Result.ANSWERED
    events = store.events(callback.id)
    assert events[2].to_state is State.PENDING and events[2].reason.startswith(
        f"interrupted (no trace of the attempt in Asterisk) (no channel {channel_id_for(callback.id, 1)} in Asterisk"
    )
    assert legs_created(ami, mark, callback.id) == [channel_id_for(callback.id, 2)]  # dialled once
    assert customers.pressed == [callback.number]


def test_an_originate_whose_reply_is_lost_is_watched_on_and_not_dialled_again(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher], pbx: AsteriskInstance,
) -> None:  # fmt: skip
    members("agent1")
    callback = request(store, f"{HELD}001")  # rings until the test answers it
    customers.confirming.add(callback.number)
    leg_id = channel_id_for(callback.id, 1)
    mark = ami.mark()
    with Relay(pbx.ami_port) as relay:
        relay.drop_replies_to = b"Action: Originate"  # Asterisk gets it; the connection drops before the reply
        dispatcher = dispatch(port=relay.port)
        ringing = ami.wait_for(lambda e: e.name == "Newchannel" and e.get("Uniqueid") == leg_id + "-2", 10, since=mark)
        assert dispatcher.wait_reconciled(2)  # connected again and checked the calls in flight ...
        assert dispatcher.watching == [leg_id] and _get(store, callback.id).state is State.DIALING  # ... it rings
        ami.send("Redirect", Channel=ringing["Channel"], Context=NUMBERS, Exten="answer", Priority=1)
        done = changes.wait(store, callback.id, lambda c: c.state is State.COMPLETED)
    assert (done.attempts, done.last_result) == (1, Result.ANSWERED)
    assert legs_created(ami, mark, callback.id) == [leg_id]
    assert customers.pressed == [callback.number]


def test_a_stray_channel_named_like_an_attempt_is_hung_up(
    ami: AmiClient, store: SqliteCallbacks, customers: Customers,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    members("agent1")
    callback = request(store, f"{HELD}002", later=3600)  # pending, not due for an hour
    assert dispatch().wait_reconciled()
    stray = channel_id_for(callback.id, 7)
    mark = ami.mark()
    ami.send("Originate", Channel=f"Local/{callback.number}@{NUMBERS}/n", Context="quiet", Exten="s", Priority=1,
             Async=True, ChannelId=stray, OtherChannelId=stray + "-2")  # fmt: skip
    hangup = ami.wait_for(lambda e: e.name == "Hangup" and e.get("Uniqueid") == stray, 10, since=mark)
    assert hangup["Cause"] in ("16", "0")
    assert (_get(store, callback.id).state, _get(store, callback.id).attempts) == (State.PENDING, 0)


def test_the_documented_ami_rights_are_enough_and_a_missing_one_is_named(
    ami: AmiClient, store: SqliteCallbacks, changes: Changes, customers: Customers, server: AnsweringServer,
    members: Callable[..., None], dispatch: Callable[..., Dispatcher], dispatcher_log: DispatcherLog,
    ami_users: Callable[[str, str, str], tuple[str, str]],
) -> None:  # fmt: skip
    members("agent1")
    rights = documented_ami_rights()  # read = call,agent; write = originate,reporting,call
    callback = request(store, f"{ANSWERS}008")
    customers.confirming.add(callback.number)
    unchecked = dispatch(user=ami_users("cbnoreport", rights["read"], without(rights["write"], "reporting")))
    dispatcher_log.wait("cannot check the calls in flight (Permission denied); nothing is dialled until it works: "
                        "give the AMI user write=reporting (CoreShowChannels)")  # fmt: skip
    assert unchecked.stop() and unchecked.reconciled == 0
    assert _get(store, callback.id).attempts == 0

    server.use_flow({"retry_after": "[200ms]"})
    refused = dispatch(user=ami_users("cbnooriginate", rights["read"], without(rights["write"], "originate")))
    assert "give the AMI user write=originate" in dispatcher_log.wait("refused the Originate: Permission denied")
    again = changes.wait(store, callback.id, lambda c: c.attempts == 1 and c.state is State.PENDING)
    assert again.last_result is Result.FAILED
    assert refused.stop()

    documented = dispatch(user=ami_users("cbdocumented", rights["read"], rights["write"]))
    done = changes.wait(store, callback.id, lambda c: c.state is State.COMPLETED)
    assert (done.attempts, done.last_result) == (2, Result.ANSWERED)
    stray = channel_id_for(callback.id, 9)
    mark = ami.mark()
    ami.send("Originate", Channel=f"Local/{HELD}005@{NUMBERS}/n", Context="quiet", Exten="s", Priority=1,
             Async=True, ChannelId=stray)  # fmt: skip
    ami.wait_for(lambda e: e.name == "Hangup" and e.get("Uniqueid") == stray, 10, since=mark)  # the guard works
    assert documented.stop()

    unguarded = dispatch(user=ami_users("cbnocall", rights["read"], without(rights["write"], "call")))
    assert unguarded.wait_reconciled()
    stray = channel_id_for(callback.id, 10)
    mark = ami.mark()
    ami.send("Originate", Channel=f"Local/{HELD}006@{NUMBERS}/n", Context="quiet", Exten="s", Priority=1,
             Async=True, ChannelId=stray)  # fmt: skip
    dispatcher_log.wait("cannot hang up stray callback channels (Permission denied): give the AMI user write=call")
    assert unguarded.watching == []
    assert not any(e.name == "Hangup" and e.get("Uniqueid") == stray for e in ami.events_since(mark))


class DispatcherProcess(IvrkitProcess):
    """``ivrkit dispatcher`` as a real process; its JSON log lines read as they come."""

    def __init__(self, pbx: AsteriskInstance, flows: Path, data: Path) -> None:
        secret = data.parent / "ami-secret"
        secret.write_text(pbx.ami_secret)
        super().__init__(
            ["dispatcher", "--flows", str(flows), "--prompts", str(ROOT / "prompts"), "--data-dir", str(data),
             "--ami", f"{pbx.ami_host}:{pbx.ami_port}", "--ami-user", pbx.ami_username,
             "--ami-secret-file", str(secret), "--poll", "0.2", "--log-format", "json"],
            cwd=data.parent, stdout=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def shared_data(tmp_path: Path, server: AnsweringServer) -> Iterator[tuple[Path, Database]]:
    """A data directory for dispatcher processes, whose store the answered leg uses too."""
    data = tmp_path / "shared"
    with open_database(data) as database:
        server.use_store(SqliteCallbacks(database))
        sessions = len(server.handler.results)
        try:
            yield data, database
            server.sessions_fine(sessions)
        finally:
            assert server.listener.wait_idle(10)
            server.use_store(None)


def test_a_dispatcher_killed_while_the_customer_rings_is_reconciled_on_restart(
    ami: AmiClient, customers: Customers, members: Callable[..., None], pbx: AsteriskInstance,
    server: AnsweringServer, shared_data: tuple[Path, Database],
) -> None:  # fmt: skip
    members("agent1")
    data, database = shared_data
    callback = request(SqliteCallbacks(database), f"{HELD}003")
    customers.confirming.add(callback.number)
    leg_id = channel_id_for(callback.id, 1)
    mark = ami.mark()
    processes: list[DispatcherProcess] = []
    try:
        processes.append(DispatcherProcess(pbx, server.flows, data))
        ringing = ami.wait_for(lambda e: e.name == "Newchannel" and e.get("Uniqueid") == leg_id + "-2", 20, since=mark)
        processes[0].process.send_signal(signal.SIGKILL)  # in the middle of the Originate: the customer rings
        assert processes[0].process.wait(10) == -signal.SIGKILL
        assert _get(SqliteCallbacks(database), callback.id).state is State.DIALING

        processes.append(DispatcherProcess(pbx, server.flows, data))
        checked = processes[1].wait_log(lambda r: r.get("msg", "").startswith("checked the callbacks in flight"))
        assert checked["msg"] == "checked the callbacks in flight against Asterisk: 1 still up, 0 ended"
        refused = subprocess.run(
            [sys.executable, "-c", CLI, "dispatcher", "--flows", str(server.flows), "--data-dir", str(data)],
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
    store = SqliteCallbacks(database)
    done = _get(store, callback.id)
    assert (done.state, done.attempts, done.last_result) == (State.COMPLETED, 1, Result.ANSWERED)
    assert transitions(store, callback.id) == [
        (None, "pending"), ("pending", "dialing"), ("dialing", "connected"), ("connected", "completed")
    ]
    assert legs_created(ami, mark, callback.id) == [leg_id]  # dialled once, across both dispatchers
    assert customers.pressed == [callback.number]
    assert server.leg_sessions()[-1:] == [callback.id]  # the server's answered leg, on the same store
