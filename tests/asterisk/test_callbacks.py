"""Callbacks end to end on a real Asterisk 22, on the compiled dialplan and the real FastAGI server.

The flow below is compiled with ``ivrkit.compiler`` and loaded as an admin would (``#include``). Callers are
test calls (:class:`~ivrkit.qa.asterisk.calls.CallDriver`); agents are Local channels in ``ivrkit-cbt-agents``
and customers called back are Local channels in ``ivrkit-cbt-customers`` (the flow's numbers context).

- Hang-ups in a queue: the compiled hang-up handler runs ``/<flow>/hangup`` on the dead channel and the queue
  step's ``callback_on_hangup`` registers (or does not) the callback in the store: an opt-in, an automatic
  one after ``min_wait``, none for a hasty caller or a caller an agent answered. The server runs in this
  process (the server's own session handler and live world, as ``ivrkit serve`` builds them) so each session's
  journal can be read.
- The whole loop through one real ``ivrkit serve --ami`` process, whose AMI user has exactly the rights
  ``docs/callbacks.md`` gives it: a caller leaves the queue with its exit key, asks to be called back and
  hangs up; when an agent is free the server's dispatcher rings the customer, who confirms with the key; the
  customer is bridged to the agent, and ``ivrkit callbacks`` shows the callback completed with its history.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivrkit.ami.client import AmiClient, AmiError, Message
from ivrkit.callbacks.live import LiveCallbacks
from ivrkit.callbacks.model import Callback, Origin, State
from ivrkit.compiler.reload import apply, expected_from
from ivrkit.compiler.render import EXTENSIONS_FILE, QUEUES_FILE
from ivrkit.engine.runner import SessionResult
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.qa.asterisk.calls import Call, CallDriver, caller_dialplan
from ivrkit.qa.asterisk.sandbox import QUEUES_CONF, AsteriskInstance
from ivrkit.server.library import FlowLibrary
from ivrkit.server.listener import AgiListener, ListenerSettings
from ivrkit.server.world import LiveQueues, LiveWorld
from ivrkit.sms.links import LinkSigner
from ivrkit.sms.texts import OutboxTexts
from ivrkit.store import SqliteCallbacks, SqliteOutbox, open_database
from tests.asterisk.conftest import documented_ami_rights, wav
from tests.asterisk.recording import RecordingHandler
from tests.asterisk.test_compiled_dialplan import QUEUES_WITH_INCLUDE, Server, compile_for
from tests.server.process import ServeProcess

pytestmark = pytest.mark.asterisk

ROOT = Path(__file__).resolve().parents[2]
FLOW = "cbt"
CUSTOMERS, AGENTS = "ivrkit-cbt-customers", "ivrkit-cbt-agents"
OPTING_CALLER = "+4930500001"  # opts in, giving another number, then hangs up waiting
OPTED_KEYS, OPTED_NUMBER = "030777001", "+4930777001"  # the number they type (national, country DE)
PATIENT_CALLER = "+4930500002"  # waits longer than min_wait, hangs up
HASTY_CALLER = "+4930500003"  # hangs up as soon as they are in the queue
ANSWERED_CALLER = "+4930500004"  # an agent answers
LOOP_CALLER = "+4930600001"  # leaves the queue with the exit key and asks for a callback
CALLBACK_CALLER_ID = "+4930999000"
MIN_WAIT = 2
FLOW_YAML = f"""
flow: {FLOW}
start: route
dialplan: {{numbers_context: {CUSTOMERS}}}
defaults: {{timeout: 3s, inter_digit_timeout: 2s, retries: 1}}
queues:
  cbwait:
    callback: {{country: DE}}
  cbanswer:
    ring_timeout: 5s
    retry: 1s
    callback: {{country: DE}}
  cbloop:
    ring_timeout: 10s
    retry: 1s
    exit_keys: {{"1": callback}}
    callback: {{caller_id: "{CALLBACK_CALLER_ID}", priority: 10, attempts: 1}}
steps:
  route:
    branch:
      - if: "caller.number == '{OPTING_CALLER}'"
        then: opt_in
      - if: "caller.number == '{ANSWERED_CALLER}'"
        then: answered_wait
      - if: "caller.number == '{LOOP_CALLER}'"
        then: loop_wait
    else: auto_wait
  opt_in:
    callback: {{queue: cbwait, when: on_hangup, number: ask}}
    next: opted_wait
  opted_wait:
    queue: cbwait
    callback_on_hangup: {{when: opted_in}}
  auto_wait:
    queue: cbwait
    callback_on_hangup: {{when: automatic, min_wait: {MIN_WAIT}s}}
  answered_wait:
    queue: cbanswer
    callback_on_hangup: {{when: automatic}}
  loop_wait:
    queue: cbloop
    outcomes: {{callback: ask_callback}}
  ask_callback:
    callback: {{queue: cbloop}}
    next: goodbye
  goodbye:
    hangup: {{play: goodbye, outcome: callback-arranged}}
"""
AGENT_EVENT = "ivrkit-cbt-agent"
TEST_DIALPLAN = f"""\
[{AGENTS}]
exten => answerer,1,Answer()
 same => n,Wait(1)
 same => n,Hangup()
exten => agent1,1,Answer()
 same => n,UserEvent({AGENT_EVENT},Agent: agent1)
 same => n,Wait(1)
 same => n,Hangup()

[{CUSTOMERS}]
exten => _+4930600XXX,1,Answer()
 same => n,PlayTones(0)
 same => n,Wait(60)
 same => n,Hangup()
"""
EXTENSIONS_CONF = f"""\
[general]
static = yes
writeprotect = yes

{caller_dialplan()}
{TEST_DIALPLAN}
#include {EXTENSIONS_FILE}
"""
CONFIRMATION = "callback-press-to-connect"  # the prompt the answered leg asks for the key with
CLI = "import sys; from ivrkit.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, asterisk: AsteriskInstance) -> Iterator[Path]:
    flows = tmp_path_factory.mktemp("callbacks") / "flows"
    flows.mkdir()
    (flows / f"{FLOW}.yaml").write_text(textwrap.dedent(FLOW_YAML))
    for prompt in PromptCatalog.load(ROOT / "prompts").languages["en"]:
        asterisk.install_sound(f"ivrkit/{prompt}.wav", wav(0.15), language="en")
    yield flows
    asterisk.write_config("queues.conf", QUEUES_CONF)  # the session's other tests know only the default queue
    assert asterisk.ami is not None
    asterisk.ami.send("QueueReload")


def install(asterisk: AsteriskInstance, ami: AmiClient, flows: Path, agi_port: int) -> None:
    """The flow compiled for a FastAGI server on ``agi_port``, loaded as the README tells an admin, and the
    queues' members: none in cbwait (callers wait alone), one that answers in cbanswer, agent1 in cbloop."""
    files = compile_for(flows, f"agi://127.0.0.1:{agi_port}")
    for name, text in files.items():
        asterisk.write_config(name, text)
    asterisk.write_config("extensions.conf", EXTENSIONS_CONF)
    asterisk.write_config("queues.conf", QUEUES_WITH_INCLUDE)
    report = apply(ami, expected_from(files[EXTENSIONS_FILE], files[QUEUES_FILE]))
    assert report.ok, report.render()
    for queue, agents in (("cbwait", ()), ("cbanswer", ("answerer",)), ("cbloop", ("agent1",))):
        for event in ami.send_list("QueueStatus", Queue=queue).events:
            if event.name == "QueueMember":
                ami.send("QueueRemove", Queue=queue, Interface=event["Location"])
        for agent in agents:
            ami.send("QueueAdd", Queue=queue, Interface=f"Local/{agent}@{AGENTS}", MemberName=agent)


@dataclass
class InProcess:
    server: Server
    store: SqliteCallbacks

    def callbacks(self) -> list[Callback]:
        return self.store.list()


@pytest.fixture
def in_process(
    project: Path, asterisk: AsteriskInstance, ami: AmiClient, tmp_path: Path
) -> Iterator[InProcess]:
    """The FastAGI server in this process, with the live world ``ivrkit serve`` builds (queues, texts and
    callbacks on a real SQLite store), and the dialplan compiled for it."""
    data = tmp_path / "data"
    database = open_database(data)
    metrics = ServerMetrics()
    store = SqliteCallbacks(database)
    queues = LiveQueues(database, metrics=metrics)
    texts = OutboxTexts(SqliteOutbox(database), LinkSigner.from_data_dir(data), 3600)
    library: FlowLibrary
    callbacks = LiveCallbacks(store, lambda: library.flows, metrics=metrics)
    library = FlowLibrary(project, ROOT / "prompts", LiveWorld(queues, texts, callbacks))
    report = library.reload()
    assert report.ok, report.errors
    handler = RecordingHandler(library, metrics)
    listener = AgiListener(handler, handler.metrics, ListenerSettings(port=0))
    listener.start()
    try:
        install(asterisk, ami, project, listener.port)
        yield InProcess(Server(listener, handler), store)
    finally:
        listener.stop_accepting()
        assert listener.wait_idle(10)
        queues.close()
        database.close()


def joined(ami: AmiClient, call: Call, mark: int, queue: str) -> Message:
    return ami.wait_for(
        lambda e: e.name == "QueueCallerJoin" and e.get("Uniqueid") == call.ivr_id and e.get("Queue") == queue,
        20, since=mark,
    )  # fmt: skip


def hang_up_caller(ami: AmiClient, call: Call) -> None:
    """The caller puts the phone down (their half of the call; the IVR half follows)."""
    ami.send("Hangup", Channel=call.caller_channel or "")


def wait_in_queue(ami: AmiClient, queue: str, call: Call, seconds: int, timeout: float = 10) -> None:
    """Until Asterisk itself counts the caller's wait in ``queue`` at ``seconds`` or more: polled with a deadline.
    QueueStatus ``Wait`` and the ``QUEUEWAIT_MS`` the queue step reads when the caller leaves are both whole
    seconds since the join's ``time()`` (Asterisk 22.10: ``QUEUEWAIT_MS`` is a multiple of 1000), so once
    ``Wait`` reaches ``min_wait`` the step counts the wait as long enough."""
    deadline = time.monotonic() + timeout
    while True:
        entries = [e for e in ami.send_list("QueueStatus", Queue=queue).events
                   if e.name == "QueueEntry" and e.get("Uniqueid") == call.ivr_id]  # fmt: skip
        assert entries, f"{call.ivr_id} is not waiting in {queue}"
        if int(entries[0].get("Wait", "0")) >= seconds:
            return
        assert time.monotonic() < deadline, f"{call.ivr_id} has waited only {entries[0].get('Wait')} s"
        time.sleep(0.1)


def sessions(server: Server, caller: str) -> list[SessionResult]:
    """The sessions of the caller's call, in order: the flow's, then the hang-up handler's."""
    return [r for r in server.results if r.journal.of_kind("session")[0].detail.get("caller") == caller]


def dead_channel_results(call: Call, port: int) -> list[tuple[str, str | None]]:
    """(command, result code) of every AGI command the hang-up handler's session sent (on the dead channel)."""
    started = next((i for i, e in enumerate(call.events) if e.name == "Newexten" and e.get("Uniqueid") == call.ivr_id
                    and e.get("AppData") == f"agi://127.0.0.1:{port}/{FLOW}/hangup"), None)  # fmt: skip
    assert started is not None, call.applications
    ended = [(e.get("CommandId"), e.get("ResultCode")) for e in call.events[started:]
             if e.name == "AGIExecEnd" and e.get("Uniqueid") == call.ivr_id]  # fmt: skip
    lines = {c.command_id: c.line for c in call.agi_commands}
    assert ended, call.describe()
    return [(lines.get(command_id or "", "?"), code) for command_id, code in ended]


# -- hang-ups in the queue ----------------------------------------------------------------------------------


def test_a_caller_who_opted_in_and_hangs_up_waiting_is_called_back_on_the_number_they_gave(
    ami: AmiClient, call_driver: CallDriver, in_process: InProcess
) -> None:  # fmt: skip
    mark = ami.mark()
    call = call_driver.place(f"ivrkit-{FLOW}", caller_id=f'"Opting" <{OPTING_CALLER}>', script=[f"{OPTED_KEYS}#", "1"])
    joined(ami, call, mark, "cbwait")
    assert in_process.callbacks() == []  # opting in stores nothing yet
    hang_up_caller(ami, call)
    call.wait(30)

    server = in_process.server
    first, hangup = sessions(server, OPTING_CALLER)
    assert first.handoff is not None and first.handoff.target == "cbwait"
    assert first.state.callback is not None and first.state.callback.number == OPTED_NUMBER
    assert hangup.journal.of_kind("session")[0].detail["resumed"] == "hangup"
    (left,) = hangup.journal.of_kind("queue-left")
    assert left.detail["result"] == "abandoned"
    (requested,) = hangup.journal.of_kind("callback-requested")
    assert requested.detail["origin"] == "opt-in" and requested.detail["number"] == OPTED_NUMBER

    (callback,) = in_process.callbacks()
    assert (callback.state, callback.origin, callback.number, callback.queue, callback.flow) == (
        State.PENDING, Origin.OPT_IN, OPTED_NUMBER, "cbwait", FLOW)
    assert callback.joined_at == pytest.approx(first.state.joined["cbwait"], abs=1e-3)  # their place in line
    assert callback.joined_at < callback.requested_at and callback.uniqueid == call.ivr_id
    # the handler's session ran on the hung-up channel: every command it sent is one a dead channel takes
    refused = [(line, code) for line, code in dead_channel_results(call, server.listener.port) if code != "200"]
    assert refused == [], call.describe()


def test_only_a_caller_who_waited_min_wait_and_was_not_answered_is_called_back_automatically(
    ami: AmiClient, call_driver: CallDriver, in_process: InProcess
) -> None:  # fmt: skip
    mark = ami.mark()
    patient = call_driver.place(f"ivrkit-{FLOW}", caller_id=f'"Patient" <{PATIENT_CALLER}>')
    hasty = call_driver.place(f"ivrkit-{FLOW}", caller_id=f'"Hasty" <{HASTY_CALLER}>')
    answered = call_driver.place(f"ivrkit-{FLOW}", caller_id=f'"Answered" <{ANSWERED_CALLER}>')
    joined(ami, hasty, mark, "cbwait")
    hang_up_caller(ami, hasty)  # at once: a wait of 0 (or 1) s
    joined(ami, patient, mark, "cbwait")
    wait_in_queue(ami, "cbwait", patient, MIN_WAIT)
    hang_up_caller(ami, patient)
    joined(ami, answered, mark, "cbanswer")
    for call in (hasty, patient, answered):
        call.wait(30)  # the answering agent talks for a second, then hangs up

    server = in_process.server
    results: dict[str, tuple[SessionResult, SessionResult]] = {}
    for number in (PATIENT_CALLER, HASTY_CALLER, ANSWERED_CALLER):
        queued, hangup = sessions(server, number)
        assert queued.handoff is not None and hangup.journal.of_kind("session")[0].detail["resumed"] == "hangup"
        results[number] = (queued, hangup)

    _, patient_hangup = results[PATIENT_CALLER]
    (left,) = patient_hangup.journal.of_kind("queue-left")
    assert left.detail["result"] == "abandoned" and left.detail["wait"] >= MIN_WAIT
    _, hasty_hangup = results[HASTY_CALLER]
    (left,) = hasty_hangup.journal.of_kind("queue-left")
    assert left.detail["result"] == "abandoned" and left.detail["wait"] < MIN_WAIT
    (skipped,) = hasty_hangup.journal.of_kind("callback-skipped")
    assert skipped.detail["why"].endswith(f"less than {MIN_WAIT}s")
    _, answered_hangup = results[ANSWERED_CALLER]
    (left,) = answered_hangup.journal.of_kind("queue-left")
    assert left.detail["result"] == "answered" and left.detail["talk"] >= 1
    assert answered_hangup.journal.of_kind("callback-skipped", "callback-requested") == []  # no min_wait here

    (callback,) = in_process.callbacks()  # the patient caller's, and only theirs
    queued, _ = results[PATIENT_CALLER]
    assert (callback.state, callback.origin, callback.number, callback.queue) == (
        State.PENDING, Origin.AUTOMATIC, PATIENT_CALLER, "cbwait")
    assert callback.joined_at == pytest.approx(queued.state.joined["cbwait"], abs=1e-3)
    assert callback.requested_at - callback.joined_at >= MIN_WAIT - 1  # QUEUEWAIT counts whole seconds
    refused = [(line, code) for line, code in dead_channel_results(patient, server.listener.port) if code != "200"]
    assert refused == [], patient.describe()


# -- the whole loop through `ivrkit serve --ami` -------------------------------------------------------------


def ivrkit(*args: str) -> Any:
    """``ivrkit <args> --json`` as an operator runs it; its JSON answer."""
    done = subprocess.run([sys.executable, "-c", CLI, *args, "--json"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def serving(
    project: Path, asterisk: AsteriskInstance, ami: AmiClient, tmp_path: Path, ami_users: Any
) -> Iterator[tuple[ServeProcess, Path]]:
    """``ivrkit serve --ami`` on its own data directory, as the docs' AMI user; the dialplan compiled for it."""
    rights = documented_ami_rights()
    user, secret = ami_users("ivrkit-dispatcher", rights["read"], rights["write"])
    (tmp_path / "ami-secret").write_text(secret + "\n")
    data = tmp_path / "data"
    serve = ServeProcess(
        project, tmp_path, "--prompts", str(ROOT / "prompts"), "--data-dir", str(data),
        "--ami", f"{asterisk.ami_host}:{asterisk.ami_port}", "--ami-user", user,
        "--ami-secret-file", str(tmp_path / "ami-secret"),
    )  # fmt: skip
    try:
        install(asterisk, ami, project, serve.port)
        ami.send("QueuePause", Queue="cbloop", Interface=f"Local/agent1@{AGENTS}", Paused=True)  # busy for now
        serve.wait_log(lambda r: r.get("msg", "").startswith("checked the callbacks in flight"))
        yield serve, data
    finally:
        serve.close()
        with contextlib.suppress(AmiError):
            ami.send("Hangup", Channel="/^Local\\/\\+4930600/")  # a customer left ringing by a failed test


def test_a_caller_asks_to_be_called_back_and_the_servers_dispatcher_connects_them_to_an_agent(
    ami: AmiClient, call_driver: CallDriver, serving: tuple[ServeProcess, Path]
) -> None:  # fmt: skip
    serve, data = serving
    before = time.time()
    mark = ami.mark()
    call = call_driver.place(f"ivrkit-{FLOW}", caller_id=f'"Loop" <{LOOP_CALLER}>', script=["1"])  # 1: "confirm"
    joined(ami, call, mark, "cbloop")
    joined_seen = time.time()
    ami.send("PlayDTMF", Channel=call.ivr_channel or "", Digit="1", Receive=True)  # the queue's exit key
    requested = serve.wait_log(lambda r: r.get("msg", "").startswith("callback requested"))
    callback_id = requested["callback"]
    call.wait(30)  # the flow says goodbye and hangs up
    assert ("AGI", f"agi://127.0.0.1:{serve.port}/{FLOW}/resume?outcome=callback") in call.applications
    assert "en/ivrkit/callback-requested" in call.prompts_streamed, call.describe()
    assert not [e for e in ami.events_since(mark) if e.name == "Newchannel"
                and e.get("Uniqueid", "").startswith("ivrkit-cb-")]  # fmt: skip  (no agent was free)

    mark = ami.mark()
    ami.send("QueuePause", Queue="cbloop", Interface=f"Local/agent1@{AGENTS}", Paused=False)  # the agent is free
    events = ami.cursor(mark)
    asked = events.wait_for(lambda e: e.name == "AGIExecStart" and CONFIRMATION in e.get("Command", ""), 20)
    leg = asked["Uniqueid"]
    assert leg == f"ivrkit-cb-{callback_id}-1" and asked["Channel"].startswith(f"Local/{LOOP_CALLER}@{CUSTOMERS}-")
    ami.send("PlayDTMF", Channel=asked["Channel"], Digit="1", Receive=True)  # the customer confirms
    connect = events.wait_for(lambda e: e.name == "AgentConnect" and e.get("Uniqueid") == leg, 20)
    assert connect["Queue"] == "cbloop" and connect["DestChannel"].startswith(f"Local/agent1@{AGENTS}-")
    done = serve.wait_log(lambda r: r.get("callback") == callback_id and r.get("state") == "completed", 20)
    assert done["result"] == "answered"

    seen = ami.events_since(mark)
    bridges = {e["Uniqueid"]: e["BridgeUniqueid"] for e in seen if e.name == "BridgeEnter"}
    assert bridges[leg] == bridges[connect["DestUniqueid"]]  # the customer and the agent, in one bridge
    agent = [e for e in seen if e.name == "UserEvent" and e.get("UserEvent") == AGENT_EVENT]
    assert len(agent) == 1 and agent[0]["Channel"].startswith(f"Local/agent1@{AGENTS}-")  # the agent answered
    prio = [e.get("Value") for e in seen if e.name == "VarSet" and e.get("Uniqueid") == leg
            and e.get("Variable") == "QUEUE_PRIO"]  # fmt: skip
    assert prio == ["010"]  # the queue's callback priority
    (response,) = [e for e in seen if e.name == "OriginateResponse" and e.get("Uniqueid") == leg]
    assert response["Response"] == "Success" and response["CallerIDNum"] == CALLBACK_CALLER_ID

    listed = ivrkit("callbacks", "list", "--data-dir", str(data))
    (shown,) = [c for c in listed["callbacks"] if c["id"] == callback_id]
    assert (shown["state"], shown["origin"], shown["number"], shown["queue"], shown["attempts"],
            shown["last_result"]) == ("completed", "request", LOOP_CALLER, "cbloop", 1, "answered")  # fmt: skip
    assert listed["count"] == 1
    detail = ivrkit("callbacks", "show", callback_id, "--data-dir", str(data))
    assert [(e["from"], e["to"]) for e in detail["events"]] == [
        (None, "pending"), ("pending", "dialing"), ("dialing", "connected"), ("connected", "completed")]
    assert detail["events"][2]["reason"] == "the customer confirmed"
    with open_database(data) as database:
        callback = SqliteCallbacks(database).get(callback_id)
    assert callback is not None and callback.state is State.COMPLETED and callback.uniqueid == call.ivr_id
    assert before <= callback.joined_at <= joined_seen < callback.requested_at  # the place they left in line

    serve.process.terminate()  # SIGTERM: the server drains and stops its dispatcher
    assert serve.process.wait(15) == 0
