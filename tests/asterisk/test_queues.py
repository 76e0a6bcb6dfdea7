"""Compiled queues on a real Asterisk 22: live statistics, announcements, exit keys, timeouts, answered calls.

The queues come from ``ivrkit compile`` (the flow below declares them), their members are Local channels in
a context of this module that rings without answering, or answers for a second when the global
``IVRKIT_TEST_ANSWER`` is 1, and the callers already waiting are plain ``Queue()`` calls. The waiting callers
may take only members of penalty 0 and every member has penalty 1, so nobody's phone rings while they wait
and the members' states (and so the statistics) stay still. The FastAGI server is the real one, in this
process, with the server's own live world: queues read through the call's channel (``AgiChannel.queue_stats``)
and the estimate log in a real SQLite store.

What the caller hears from app_queue leaves no AMI event, so announcements are read from Asterisk's log
(verbose 3 logs ``<channel> Playing '<file>.<format>'`` for every sound file).
"""

from __future__ import annotations

import contextlib
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ivrkit.ami.client import AmiClient, AmiError
from ivrkit.compiler.reload import apply, expected_from
from ivrkit.compiler.render import EXTENSIONS_FILE, QUEUES_FILE
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.qa.asterisk.calls import Call, CallDriver, caller_dialplan
from ivrkit.qa.asterisk.sandbox import QUEUES_CONF, AsteriskInstance
from ivrkit.server.library import FlowLibrary
from ivrkit.server.listener import AgiListener, ListenerSettings
from ivrkit.server.world import LiveQueues, LiveWorld
from ivrkit.sms.links import LinkSigner
from ivrkit.sms.texts import OutboxTexts
from ivrkit.store import SqliteOutbox, open_database
from ivrkit.store.database import Database
from ivrkit.store.estimates import SqliteEstimateLog
from tests.asterisk.conftest import wav
from tests.asterisk.recording import RecordingHandler
from tests.asterisk.test_compiled_dialplan import QUEUES_WITH_INCLUDE, Server, compile_for

pytestmark = pytest.mark.asterisk

ROOT = Path(__file__).resolve().parents[2]
WAITING_CALLER = "+4930000001"  # waits in `lineup` for a minute
IMPATIENT_CALLER = "+4930000002"  # waits one second in `helpdesk`
HELPDESK_CALLER = "+4930000003"  # joins `helpdesk`, whose agent may answer
HELPDESK_READER = "+4930000004"  # reads `helpdesk` and hangs up
LINEUP = """
flow: lineup
start: route
on_hangup: note
variables: {waited: "", talked: "", left_after: ""}
queues:
  lineup:
    ring_timeout: 1s
    retry: 1s
    announce: {every: 30s, min_gap: 5s, position: yes, hold_time: no}
    periodic: {prompts: [calls-recorded], every: 30s, start_delay: 0s}
    exit_keys: {"1": callback, "#": text}
  helpdesk: {ring_timeout: 5s, retry: 1s, wrapup: 60s}
steps:
  route:
    branch:
      - if: "caller.number == '+4930000002'"
        then: short_wait
      - if: "caller.number == '+4930000003'"
        then: helpdesk
      - if: "caller.number == '+4930000004'"
        then: read_helpdesk
    else: count
  count:
    set:
      exists: "{{ queues.lineup.exists }}"
      waiting: "{{ queues.lineup.waiting }}"
      position: "{{ queues.lineup.position }}"
      logged_in: "{{ queues.lineup.logged_in }}"
      ready: "{{ queues.lineup.ready }}"
      free: "{{ queues.lineup.free }}"
      paused: "{{ queues.lineup.paused }}"
      nowhere: "{{ queues.nosuch.exists }}"
    next: join
  join:
    queue: {name: lineup, timeout: 60s}
    outcomes: {callback: called_back, text: texted}
  short_wait:
    queue: {name: helpdesk, timeout: 1s}
    outcomes: {timeout: timed_out}
  helpdesk:
    queue: helpdesk
  read_helpdesk:
    set:
      logged_in: "{{ queues.helpdesk.logged_in }}"
      ready: "{{ queues.helpdesk.ready }}"
      free: "{{ queues.helpdesk.free }}"
      answered: "{{ queues.helpdesk.answered }}"
      avg_talk: "{{ queues.helpdesk.avg_talk }}"
    next: texted
  called_back:
    set: {waited: "{{ channel.QUEUEWAIT }}"}
    next: callback_chosen
  callback_chosen:
    hangup: {outcome: callback-chosen}
  texted:
    hangup: {outcome: text-chosen}
  timed_out:
    set: {waited: "{{ channel.QUEUEWAIT }}"}
    next: timed_out_end
  timed_out_end:
    hangup: {outcome: timed-out}
  note:
    set: {talked: "{{ channel.ANSWEREDTIME }}", left_after: "{{ channel.QUEUEWAIT }}"}
"""
MEMBERS = ("agent1", "agent2", "agent3")
TEST_DIALPLAN = """\
[ivrkit-test-members]
{members}
exten => member,1,GotoIf($["${{GLOBAL(IVRKIT_TEST_ANSWER)}}" = "1"]?answer)
 same => n,Wait(600)
 same => n(answer),Answer()
 same => n,Wait(1)
 same => n,Hangup()

[ivrkit-test-waiters]
exten => s,1,Answer()
 same => n,Set(QUEUE_MAX_PENALTY=0)
 same => n,Queue(lineup)
 same => n,Hangup()
""".format(members="\n".join(f"exten => {agent},1,Goto(member,1)" for agent in MEMBERS))
EXTENSIONS_CONF = f"""\
[general]
static = yes
writeprotect = yes

{caller_dialplan()}
{TEST_DIALPLAN}
#include {EXTENSIONS_FILE}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, asterisk: AsteriskInstance) -> Iterator[Path]:
    flows = tmp_path_factory.mktemp("queues") / "flows"
    flows.mkdir()
    (flows / "lineup.yaml").write_text(textwrap.dedent(LINEUP))
    asterisk.install_sound("ivrkit/calls-recorded.wav", wav(0.15), language="en")
    yield flows
    asterisk.write_config("queues.conf", QUEUES_CONF)  # the session's other tests know only the default queue
    assert asterisk.ami is not None
    asterisk.ami.send("QueueReload")
    asterisk.ami.send("Setvar", Variable="IVRKIT_TEST_ANSWER", Value="0")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """The server's store: the estimate log the live world writes to."""
    with open_database(tmp_path / "data") as database:
        yield database


@pytest.fixture
def server(
    project: Path, asterisk: AsteriskInstance, ami: AmiClient, database: Database, tmp_path: Path
) -> Iterator[Server]:
    """The FastAGI server for the flow, the compiled files loaded, and the members back in their places."""
    metrics = ServerMetrics()
    texts = OutboxTexts(SqliteOutbox(database), LinkSigner.from_data_dir(tmp_path / "data"), 3600)
    queues = LiveQueues(database, metrics=metrics)
    library = FlowLibrary(project, ROOT / "prompts", LiveWorld(queues, texts))
    assert library.reload().ok
    handler = RecordingHandler(library, metrics)
    listener = AgiListener(handler, handler.metrics, ListenerSettings(port=0))
    listener.start()
    files = compile_for(project, f"agi://127.0.0.1:{listener.port}")
    for name, text in files.items():
        asterisk.write_config(name, text)
    asterisk.write_config("extensions.conf", EXTENSIONS_CONF)
    asterisk.write_config("queues.conf", QUEUES_WITH_INCLUDE)
    report = apply(ami, expected_from(files[EXTENSIONS_FILE], files[QUEUES_FILE]))  # dialplan before members
    assert report.ok, report.render()
    ami.send("Setvar", Variable="IVRKIT_TEST_ANSWER", Value="0")
    for queue, agents in (("lineup", MEMBERS), ("helpdesk", MEMBERS[:1])):
        for agent in agents:
            interface = f"Local/{agent}@ivrkit-test-members"
            with contextlib.suppress(AmiError):  # a member since an earlier test: fresh, unpaused, no wrap-up
                ami.send("QueueRemove", Queue=queue, Interface=interface)
            ami.send("QueueAdd", Queue=queue, Interface=interface, Penalty=1, MemberName=agent)
    try:
        yield Server(listener, handler)
    finally:
        listener.stop_accepting()
        queues.close()


def logged_waits(server: Server) -> LiveQueues:
    """The estimate log's writer behind the server (flush it before reading the log)."""
    world = server.handler.library.world
    assert isinstance(world, LiveWorld)
    return world.queues


@pytest.fixture
def waiting(ami: AmiClient, call_driver: CallDriver, server: Server) -> Callable[[int], list[Call]]:
    """``waiting(n)``: n callers already waiting in `lineup` (plain Queue() calls, hung up after the test)."""

    def place(count: int) -> list[Call]:
        calls = []
        for _ in range(count):
            mark = ami.mark()
            call = call_driver.place("ivrkit-test-waiters")
            joined(ami, call, mark)
            calls.append(call)
        return calls

    return place


def joined(ami: AmiClient, call: Call, mark: int, queue: str = "lineup") -> int:
    """Wait until the call's IVR channel is in the queue; its position there."""
    event = ami.wait_for(
        lambda e: e.name == "QueueCallerJoin" and e.get("Uniqueid") == call.ivr_id and e.get("Queue") == queue,
        20, since=mark,
    )  # fmt: skip
    return int(event.get("Position", "0"))


def heard(asterisk: AsteriskInstance, call: Call, offset: int, files: list[str], timeout: float = 30.0) -> list[str]:
    """The sound files Asterisk played to the call's IVR channel since ``offset`` of its log, once ``files``
    are among them in that order (Asterisk logs from a thread of its own, so the log is read until then)."""
    deadline = time.monotonic() + timeout
    while True:
        marker = f"<{call.ivr_channel}> Playing '"
        played = [line.split(marker, 1)[1].split("'", 1)[0].rsplit(".", 1)[0]
                  for line in asterisk.log_text()[offset:].splitlines() if marker in line]  # fmt: skip
        remaining = iter(played)
        if all(file in remaining for file in files) or time.monotonic() > deadline:
            return played
        time.sleep(0.02)


def press(ami: AmiClient, call: Call, digit: str) -> None:
    ami.send("PlayDTMF", Channel=call.ivr_channel or "", Digit=digit, Receive=True)


def test_a_new_caller_reads_their_true_position_hears_it_and_leaves_with_an_exit_key(
    asterisk: AsteriskInstance, ami: AmiClient, call_driver: CallDriver, server: Server,
    waiting: Callable[[int], list[Call]],
) -> None:  # fmt: skip
    waiting(2)
    ami.send("QueuePause", Queue="lineup", Interface="Local/agent3@ivrkit-test-members", Paused=True)
    offset = len(asterisk.log_text())
    mark = ami.mark()
    call = call_driver.place("ivrkit-lineup", caller_id=f'"Waiting" <{WAITING_CALLER}>')
    assert joined(ami, call, mark) == 3
    files = ["queue-thereare", "digits/3", "queue-callswaiting", "queue-thankyou", "en/ivrkit/calls-recorded"]
    played = heard(asterisk, call, offset, files)
    assert played == files, played  # the position (no hold time), then the periodic prompt at once (delay 0)
    press(ami, call, "1")
    call.wait(30)

    first, resumed = server.results
    stats = {name: str(first.state.vars[name]) for name in
             ("exists", "waiting", "position", "logged_in", "ready", "free", "paused", "nowhere")}  # fmt: skip
    assert stats == {"exists": "True", "waiting": "2", "position": "3", "logged_in": "3", "ready": "2", "free": "2",
                     "paused": "1", "nowhere": "False"}  # fmt: skip
    assert resumed.journal.of_kind("session")[0].detail["resumed"] == "callback"
    assert resumed.journal.steps_entered() == ["lineup.join", "lineup.called_back", "lineup.callback_chosen"]
    assert resumed.outcome == "callback-chosen"
    assert str(resumed.state.vars["waited"]).isdigit()  # QUEUEWAIT, set by Queue() when the key was pressed
    apps = call.applications
    exit_path = apps[apps.index(("Set", "IVRKIT_DP_STATUS=callback")):]
    assert exit_path[:4] == [
        ("Set", "IVRKIT_DP_STATUS=callback"),
        ("Goto", "back,1"),
        ("Set", "IVRKIT_DP_FROM=lineup"),
        ("GotoIf", "0?unknown"),
    ], apps
    assert ("AGI", f"agi://127.0.0.1:{server.listener.port}/lineup/resume?outcome=callback") in exit_path


def test_a_queue_timeout_resumes_the_flow_at_its_timeout_step(
    ami: AmiClient, call_driver: CallDriver, server: Server
) -> None:
    mark = ami.mark()
    call = call_driver.place("ivrkit-lineup", caller_id=f'"Impatient" <{IMPATIENT_CALLER}>')
    joined(ami, call, mark, "helpdesk")
    call.wait(30)  # its agent rings and does not answer
    queued, resumed = server.results
    assert queued.handoff is not None and queued.handoff.target == "helpdesk"
    assert resumed.journal.of_kind("session")[0].detail["resumed"] == "TIMEOUT"
    assert resumed.journal.steps_entered() == ["lineup.short_wait", "lineup.timed_out", "lineup.timed_out_end"]
    assert resumed.outcome == "timed-out" and int(resumed.state.vars["waited"]) >= 1


def test_after_an_answered_queue_call_the_hangup_handler_reads_the_talk_time_and_the_agent_wraps_up(
    ami: AmiClient, call_driver: CallDriver, server: Server, database: Database
) -> None:
    ami.send("Setvar", Variable="IVRKIT_TEST_ANSWER", Value="1")
    mark = ami.mark()
    call = call_driver.place("ivrkit-lineup", caller_id=f'"Helpdesk" <{HELPDESK_CALLER}>')
    joined(ami, call, mark, "helpdesk")
    call.wait(30)  # the agent answers, talks for a second and hangs up; so does the caller then
    queued, hangup = server.results
    assert queued.handoff is not None and queued.handoff.target == "helpdesk"
    assert hangup.journal.of_kind("session")[0].detail["resumed"] == "hangup"
    assert int(hangup.state.vars["talked"]) >= 1  # ANSWEREDTIME (Asterisk 22.9+)
    assert str(hangup.state.vars["left_after"]).isdigit()  # QUEUEWAIT
    assert logged_waits(server).flush(10)
    (logged,) = SqliteEstimateLog(database).entries("helpdesk")  # the hang-up handler told the estimate log
    # the step announces nothing and has no overflow rules: no figures read, the join logged without them
    assert (logged.uniqueid, logged.result, logged.position, logged.estimate) == (call.ivr_id, "answered", 0, None)
    assert logged.talk is not None and logged.talk >= 1 and logged.wait == int(hangup.state.vars["left_after"])

    # Asterisk counts the call (and starts the agent's wrap-up) right after it reports AgentComplete
    ami.wait_for(lambda e: e.name == "AgentComplete" and e.get("Queue") == "helpdesk", 10, since=mark)
    call_driver.place("ivrkit-lineup", caller_id=f'"Reader" <{HELPDESK_READER}>').wait(30)
    read = server.results[-1].state.vars
    assert {name: str(read[name]) for name in ("logged_in", "ready", "free", "answered")} == {
        "logged_in": "1", "ready": "0", "free": "1", "answered": "1"}  # ready leaves out the wrap-up; free not
    # `answered` is the estimate log's count of recent answered calls, not Asterisk's count since it started
    assert float(read["avg_talk"]) >= 1


def test_a_caller_who_hangs_up_waiting_reads_a_talk_time_of_zero(
    ami: AmiClient, call_driver: CallDriver, server: Server, database: Database
) -> None:
    """Asterisk sets ANSWEREDTIME to 0 (not empty) when Queue() ends unanswered, caller hang-up included."""
    mark = ami.mark()
    call = call_driver.place("ivrkit-lineup", caller_id=f'"Helpdesk" <{HELPDESK_CALLER}>')
    joined(ami, call, mark, "helpdesk")
    ami.send("Hangup", Channel=call.ivr_channel or "")
    call.wait(30)
    _, hangup = server.results
    assert hangup.journal.of_kind("session")[0].detail["resumed"] == "hangup"
    assert str(hangup.state.vars["talked"]) == "0"
    assert str(hangup.state.vars["left_after"]).isdigit()
    assert logged_waits(server).flush(10)
    (logged,) = SqliteEstimateLog(database).entries("helpdesk")
    assert (logged.uniqueid, logged.result, logged.talk) == (call.ivr_id, "abandoned", None)


def test_an_exit_key_from_a_caller_no_flow_queued_hangs_up(
    ami: AmiClient, call_driver: CallDriver, server: Server, waiting: Callable[[int], list[Call]]
) -> None:
    (stranger,) = waiting(1)
    press(ami, stranger, "#")
    stranger.wait(30)
    apps = stranger.applications
    assert apps[apps.index(("Set", "IVRKIT_DP_STATUS=text")):] == [
        ("Set", "IVRKIT_DP_STATUS=text"),
        ("Goto", "back,1"),
        ("Set", "IVRKIT_DP_FROM="),
        ("GotoIf", "0?unknown"),
        ("GotoIf", "0?ivrkit-lineup,s,resume"),
        ("Hangup", ""),
    ], apps
    assert server.results == []
