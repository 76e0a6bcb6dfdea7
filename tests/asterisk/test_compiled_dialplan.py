"""The compiled dialplan on a real Asterisk 22: it loads cleanly, carries the example flows' calls, and keeps
callers out of silence when the FastAGI server is down, in maintenance, or sends something it should not.

The files come from ``ivrkit compile``'s code for the example flows plus two small flows written here, and
are included from a minimal extensions.conf and queues.conf exactly as the README tells an admin to. The
FastAGI server is the real one, in this process, so each session's journal can be read.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from ivrkit.agi.channel import AgiChannel
from ivrkit.ami.client import AmiClient, AmiError
from ivrkit.callbacks.model import Callback, Result
from ivrkit.cli import main
from ivrkit.compiler import compile_flows
from ivrkit.compiler.dialplan import parse_agi_url
from ivrkit.compiler.reload import ReloadReport, apply, expected_from
from ivrkit.compiler.render import EXTENSIONS_FILE, QUEUES_FILE
from ivrkit.engine.runner import SessionResult
from ivrkit.engine.world import StaticWorld
from ivrkit.flow.loader import load_directory
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.qa.asterisk.calls import Call, CallDriver, caller_dialplan
from ivrkit.qa.asterisk.sandbox import QUEUES_CONF, AsteriskInstance
from ivrkit.qa.expect import OutcomeIs
from ivrkit.qa.format import load_suite
from ivrkit.qa.model import FlowTest
from ivrkit.qa.runner import start_time
from ivrkit.server.library import FlowLibrary
from ivrkit.server.listener import AgiListener, ListenerSettings
from tests.asterisk.conftest import AgiSession, FastAgiPeer, wav
from tests.asterisk.recording import RecordingHandler
from tests.callbacks.test_answer import CALLBACK_ID, StoreWorld, dialing

pytestmark = pytest.mark.asterisk

ROOT = Path(__file__).resolve().parents[2]
WAITING = """
flow: waiting
start: wait
steps:
  wait:
    queue: {name: slow, timeout: 1s}
    outcomes: {timeout: sorry}
  sorry:
    hangup: {play: still-busy, outcome: timed-out}
"""
HOLDING = """
flow: holding
start: hold
on_hangup: note
variables: {left: "no"}
steps:
  hold:
    queue: hold
  note:
    set: {left: "yes"}
"""
RINGBACK = """
flow: ringback
start: hold
queues:
  ringback:
    exit_keys: {"1": again}
    callback: {priority: 7}
steps:
  hold:
    queue: ringback
    callback_on_hangup: {when: automatic}
    outcomes: {again: bye}
  bye:
    hangup: true
"""
EXTENSIONS_CONF = f"""\
[general]
static = yes
writeprotect = yes

{caller_dialplan()}
#include {EXTENSIONS_FILE}
"""
QUEUES_WITH_INCLUDE = f"{QUEUES_CONF}\n#include {QUEUES_FILE}\n"
FALLBACK = ("Playback", "en/ivrkit/technical-difficulties")


@dataclass
class Server:
    listener: AgiListener
    handler: RecordingHandler

    @property
    def results(self) -> list[SessionResult]:
        assert self.listener.wait_idle(10), "the FastAGI server still has sessions running"
        return [result for result in self.handler.results if result is not None]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, asterisk: AsteriskInstance) -> Iterator[Path]:
    """The example flows and the two test flows in one directory; their prompts installed in the sandbox."""
    root = tmp_path_factory.mktemp("compiled")
    flows = root / "flows"
    flows.mkdir()
    for path in sorted((ROOT / "flows").glob("*.yaml")):
        shutil.copy(path, flows / path.name)
    (flows / "waiting.yaml").write_text(textwrap.dedent(WAITING))
    (flows / "holding.yaml").write_text(textwrap.dedent(HOLDING))
    (flows / "ringback.yaml").write_text(textwrap.dedent(RINGBACK))
    catalog = PromptCatalog.load(ROOT / "prompts")
    for prompt in catalog.languages["en"]:
        asterisk.install_sound(f"ivrkit/{prompt}.wav", wav(0.15), language="en")
    yield flows
    asterisk.write_config("queues.conf", QUEUES_CONF)  # the session's other tests know only the default queue
    assert asterisk.ami is not None
    asterisk.ami.send("QueueReload")


def compile_for(flows: Path, agi_url: str) -> dict[str, str]:
    result = load_directory(flows)
    diagnostics = result.diagnostics
    files = compile_flows(result.flows, diagnostics, PromptCatalog.load(ROOT / "prompts"), parse_agi_url(agi_url))
    assert files is not None and not diagnostics.errors, diagnostics.render()
    return files


def install(asterisk: AsteriskInstance, files: dict[str, str], ami: AmiClient) -> ReloadReport:
    """Write the compiled files and the admin's two include lines, reload over AMI and verify."""
    for name, text in files.items():
        asterisk.write_config(name, text)
    asterisk.write_config("extensions.conf", EXTENSIONS_CONF)
    asterisk.write_config("queues.conf", QUEUES_WITH_INCLUDE)
    return apply(ami, expected_from(files[EXTENSIONS_FILE], files[QUEUES_FILE]))


@pytest.fixture
def serve(project: Path, asterisk: AsteriskInstance, ami: AmiClient) -> Iterator[Callable[..., Server]]:
    """``serve(world=...)``: a FastAGI server for the project's flows, and the dialplan compiled for it."""
    servers: list[AgiListener] = []

    def start(world: StaticWorld | None = None) -> Server:
        library = FlowLibrary(project, ROOT / "prompts", world)
        assert library.reload().ok
        handler = RecordingHandler(library, ServerMetrics())
        listener = AgiListener(handler, handler.metrics, ListenerSettings(port=0))
        listener.start()
        servers.append(listener)
        report = install(asterisk, compile_for(project, f"agi://127.0.0.1:{listener.port}"), ami)
        assert report.ok, report.render()
        return Server(listener, handler)

    yield start
    for listener in servers:
        listener.stop_accepting()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[dt.datetime], None]:
    """``clock(start)``: the live server's calls see time run from ``start`` (the flow tests' `now`)."""

    def set_start(start: dt.datetime) -> None:
        began = time.monotonic()
        monkeypatch.setattr(AgiChannel, "now", lambda self: start + dt.timedelta(seconds=time.monotonic() - began))

    return set_start


def stopped_server_url() -> str:
    """The address of a FastAGI server that is not running: Asterisk's connect is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"agi://127.0.0.1:{port}"


def logged_since(asterisk: AsteriskInstance, ami: AmiClient, offset: int) -> list[str]:
    """Log lines written after ``offset`` (bytes). Asterisk logs from a thread of its own, so a marker line
    is logged through the dialplan and awaited: everything logged before it is in the file then."""
    token = f"ivrkit-log-mark-{secrets.token_hex(6)}"
    ami.send("Originate", Channel="Local/s@quiet", Application="Verbose", Data=f"1,{token}", Async=True)
    deadline = time.monotonic() + 10
    while token not in asterisk.log_text()[offset:]:
        assert time.monotonic() < deadline, f"the marker {token} never reached {asterisk.log_path}"
        time.sleep(0.02)
    text = asterisk.log_text()[offset:]
    return text[: text.index(token)].splitlines()


def priorities(asterisk: AsteriskInstance, context: str) -> tuple[list[str], str]:
    lines = asterisk.command(f"dialplan show {context}")
    return lines, next((line for line in lines if "priorities" in line), "")


# -- loading --------------------------------------------------------------------------------------------------


def test_compiled_files_load_without_a_warning_and_every_context_is_there(
    project: Path, asterisk: AsteriskInstance, ami: AmiClient
) -> None:
    files = compile_for(project, "agi://127.0.0.1:4573")
    offset = len(asterisk.log_text())
    report = install(asterisk, files, ami)
    assert report.ok, report.render()
    logged = logged_since(asterisk, ami, offset)
    assert [line for line in logged if "WARNING" in line or "ERROR" in line] == [], "\n".join(logged)
    assert any("Reloading module 'pbx_config.so'" in line for line in logged), "\n".join(logged)

    expected = expected_from(files[EXTENSIONS_FILE], files[QUEUES_FILE])
    assert set(expected.contexts) == {
        "ivrkit-billing", "ivrkit-billing-hangup", "ivrkit-holding", "ivrkit-holding-hangup",
        "ivrkit-support", "ivrkit-support-hangup", "ivrkit-waiting", "ivrkit-waiting-hangup", "ivrkit-exit-billing",
        "ivrkit-exit-support", "ivrkit-ringback", "ivrkit-ringback-hangup", "ivrkit-exit-ringback",
    }  # fmt: skip  (every flow here queues calls: its hang-up handler reports how the wait ended)
    lines, summary = priorities(asterisk, "ivrkit-support")
    text = "\n".join(lines)
    assert "'s' =>" in text
    for label in ("dispatch", "queue", "queue-billing", "queue-support", "queue-vip", "queued", "transfer",
                  "dial-number", "dialled", "resume", "fallback", "hangup", "maintenance", "maintenance-planned",
                  "maintenance-emergency", "maintenance-closed"):  # fmt: skip
        assert f"[{label}]" in text, label
    assert f"({expected.contexts['ivrkit-support']} priorities)" in summary, summary
    lines, summary = priorities(asterisk, "ivrkit-support-hangup")
    assert "[run]" in "\n".join(lines) and f"({expected.contexts['ivrkit-support-hangup']} priorities)" in summary
    assert "[run]" in "\n".join(priorities(asterisk, "ivrkit-waiting-hangup")[0])  # no on_hangup, but it queues
    # the callback legs' extensions: in support's context (it registers callbacks), nowhere else
    callback = "\n".join(asterisk.command("dialplan show callback@ivrkit-support"))
    assert "'callback' =>" in callback, callback
    for label in ("cb-queue", "queue-support", "cb-dial", "cb-hangup"):
        assert f"[{label}]" in callback, label
    assert "AMD()" in callback and "/support/callback?id=" in callback
    agent = "\n".join(asterisk.command("dialplan show callback-agent@ivrkit-support"))
    assert "'callback-agent' =>" in agent and "[queue-support]" in agent and "[hangup]" in agent, agent
    summary = priorities(asterisk, "ivrkit-support")[1]
    assert summary.startswith("-= 3 extensions"), summary  # s, callback, callback-agent
    assert "'callback' =>" in "\n".join(asterisk.command("dialplan show callback@ivrkit-ringback"))
    for flow in ("billing", "holding", "waiting"):
        assert "There is no existence" in " ".join(asterisk.command(f"dialplan show callback@ivrkit-{flow}"))
    assert any("Info about Application 'AMD'" in line for line in asterisk.command("core show application AMD"))
    status = ami.send_list("QueueStatus", Queue="support").events
    assert [(e.get("Queue"), e.get("Strategy")) for e in status if e.name == "QueueParams"] == [("support", "rrmemory")]


def test_reload_reports_what_did_not_load(project: Path, asterisk: AsteriskInstance, ami: AmiClient) -> None:
    files = compile_for(project, "agi://127.0.0.1:4573")
    expected = expected_from(files[EXTENSIONS_FILE], files[QUEUES_FILE])
    assert install(asterisk, files, ami).ok

    asterisk.write_config("extensions.conf", EXTENSIONS_CONF.replace(EXTENSIONS_FILE, "extensions-missing.conf"))
    report = apply(ami, expected)
    failed = {check.what: check.detail for check in report.checks if not check.ok}
    assert not report.ok and list(failed) == ["reload pbx_config"], report.render()  # the old dialplan stays
    assert "did not parse" in failed["reload pbx_config"]

    asterisk.write_config("extensions.conf", caller_dialplan())  # parses, but the include line is gone
    asterisk.write_config("queues.conf", QUEUES_WITH_INCLUDE.replace(QUEUES_FILE, "queues-missing.conf"))
    report = apply(ami, expected)
    failed = {check.what: check.detail for check in report.checks if not check.ok}
    assert set(failed) == {"reload app_queue", *(f"context {name}" for name in expected.contexts)}, report.render()
    assert failed["context ivrkit-support"] == "not loaded: is the compiled file #included from extensions.conf?"
    assert "queues.conf did not parse" in failed["reload app_queue"]
    assert report.render().endswith("NOT loaded as compiled: see FAIL above")

    assert install(asterisk, files, ami).ok


def test_ivrkit_compile_reload_writes_applies_and_verifies(
    project: Path, asterisk: AsteriskInstance, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asterisk.write_config("extensions.conf", EXTENSIONS_CONF)
    asterisk.write_config("queues.conf", QUEUES_WITH_INCLUDE)
    for name, value in (("AMI_PORT", str(asterisk.ami_port)), ("AMI_USER", asterisk.ami_username),
                        ("AMI_SECRET", asterisk.ami_secret)):  # fmt: skip
        monkeypatch.setenv(f"IVRKIT_{name}", value)
    etc = asterisk.config_path(EXTENSIONS_FILE).parent
    args = ["compile", "--flows", str(project), "--prompts", str(ROOT / "prompts"), "--out", str(etc), "--reload"]
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err.splitlines()
    states = {line.split(": ", 1)[1]: line.split(": ", 1)[0] for line in err[:2]}  # written, or unchanged
    assert set(states) == {str(etc / EXTENSIONS_FILE), str(etc / QUEUES_FILE)}, err
    assert err[2:4] == ["ok    reload pbx_config: extensions.conf parsed", "ok    reload app_queue: queues.conf parsed"]
    assert "ok    queue support: strategy rrmemory, maxlen 0" in err and err[-1] == "loaded and verified"

    asterisk.write_config("extensions.conf", caller_dialplan())  # the admin forgot the #include
    assert main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert "FAIL  context ivrkit-support: not loaded: is the compiled file #included from extensions.conf?" in err


def test_an_ami_user_with_write_config_can_reload_and_verify(
    project: Path, asterisk: AsteriskInstance, ami: AmiClient
) -> None:
    files = compile_for(project, "agi://127.0.0.1:4573")
    manager = asterisk.config_path("manager.conf").read_text()
    users = (
        "\n[compiler]\nsecret = compile-secret\npermit = 127.0.0.1/255.255.255.255\nread =\nwrite = config\n"
        "\n[sysonly]\nsecret = compile-secret\npermit = 127.0.0.1/255.255.255.255\nread =\nwrite = system\n"
    )
    asterisk.write_config("manager.conf", manager + users, reload_module="manager")
    try:
        for user, ok in (("compiler", True), ("sysonly", False)):
            client = AmiClient()
            client.connect(asterisk.ami_host, asterisk.ami_port)
            try:
                client.login(user, "compile-secret", events=False)
                report = install(asterisk, files, client)
            finally:
                client.close()
            assert report.ok is ok, report.render()
            if not ok:
                assert "permission denied: the AMI user needs write=config" in report.render()
    finally:
        asterisk.write_config("manager.conf", manager, reload_module="manager")


# -- the example flows, as their flow tests expect --------------------------------------------------------------

SANDBOX = {
    # case → the outcomes the dialplan reports back on the sandbox, where queues have no agents and there is no
    # PJSIP, and what the caller does after the case's keys to end the call there
    ("support", "empty support queue means closed"): (["JOINEMPTY"], []),
    # Dial() of a PJSIP endpoint answers CHANUNAVAIL here; the flow plays operator-busy, and the caller hangs up
    ("support", "operator"): (["CHANUNAVAIL"], ["hangup"]),
    ("billing", "technical support continues in the support flow"): (["JOINEMPTY"], []),
    ("billing", "agent while the queue is short"): (["JOINEMPTY"], []),
}


def flow_test(flow: str, name: str) -> FlowTest:
    suite = load_suite(ROOT / "flows" / "tests" / f"{flow}.test.yaml")
    case = next(case for case in suite.cases if case.name == name)
    assert not case.broken
    return case


def caller_script(case: FlowTest) -> list[str]:
    """The case's keys as the call driver plays them: each at the IVR's next input, as the simulator does."""
    script = []
    for step in case.script:
        action = step.action
        assert action.on_listen and action.kind in ("press", "silence"), f"not playable here: {action.describe()}"
        script.append(action.keys if action.kind == "press" else "-")
    return script


def observed_outcome(results: list[SessionResult], answered_after: int) -> str:
    """The call's outcome as the simulator reports it: the flow's outcome, or ``queue:<name>`` /
    ``transfer:<destination>`` for the first hand-off the test case lets the dialplan answer."""
    for result in results:
        if result.handoff is None:
            return result.outcome
        if answered_after == 0:
            return f"{result.handoff.action}:{result.handoff.target}"
        answered_after -= 1
    return "(no session)"


@pytest.mark.parametrize(("flow", "name"), list(SANDBOX), ids=[f"{flow}: {name}" for flow, name in SANDBOX])
def test_a_call_into_an_example_flow_reaches_the_outcome_its_flow_test_expects(
    flow: str, name: str, serve: Callable[..., Server], call_driver: CallDriver,
    clock: Callable[[dt.datetime], None], project: Path,
) -> None:  # fmt: skip
    case = flow_test(flow, name)
    statuses, then = SANDBOX[(flow, name)]
    flows = load_directory(project).flows
    clock(start_time(case, flows[flow]))
    server = serve(world=case.setup.world)
    caller = case.setup.caller_number or "+4930123456"
    script = caller_script(case) + then
    call = call_driver.place(f"ivrkit-{flow}", script=script, caller_id=f'"Test" <{caller}>').wait(60)

    results = server.results
    expected = next(e.value for e in case.expectations if isinstance(e, OutcomeIs))
    handoffs = len(case.setup.handoffs.value) if case.setup.handoffs else 0
    assert observed_outcome(results, handoffs) == expected, call.describe()
    resumed = [result.journal.of_kind("session")[0].detail.get("resumed") for result in results[1:]]
    assert resumed == statuses, call.describe()
    assert results[-1].handoff is None, "the call ended in the flow"
    assert call.unused_actions == [] and call.errors == [], call.describe()
    assert FALLBACK not in call.applications


def test_a_queue_that_times_out_resumes_the_flow_at_its_timeout_branch(
    serve: Callable[..., Server], call_driver: CallDriver
) -> None:
    server = serve()
    call = call_driver.place("ivrkit-waiting").wait(30)
    first, resumed = server.results
    assert first.handoff is not None and (first.handoff.action, first.handoff.target) == ("queue", "slow")
    assert ("Queue", "slow,,,,1") in call.applications, call.describe()
    assert resumed.journal.of_kind("session")[0].detail["resumed"] == "TIMEOUT"
    assert resumed.journal.steps_entered() == ["waiting.wait", "waiting.sorry"]
    assert resumed.outcome == "timed-out"
    assert call.prompts_streamed == ["en/ivrkit/still-busy"]


def test_the_hangup_handler_runs_the_flows_on_hangup_steps(
    serve: Callable[..., Server], call_driver: CallDriver, ami: AmiClient
) -> None:
    server = serve()
    mark = ami.mark()
    call = call_driver.place("ivrkit-holding")
    ami.wait_for(lambda e: e.name == "QueueCallerJoin" and e.get("Uniqueid") == call.ivr_id, 20, since=mark)
    ami.send("Hangup", Channel=call.ivr_channel or "")
    call.wait(20)
    queued, hangup = server.results
    assert queued.handoff is not None and queued.state.vars["left"] == "no"
    assert hangup.journal.of_kind("session")[0].detail["resumed"] == "hangup"
    assert hangup.journal.steps_entered() == ["holding.note"] and hangup.state.vars["left"] == "yes"
    assert ("AGI", f"agi://127.0.0.1:{server.listener.port}/holding/hangup") in call.applications


def test_a_hangup_the_session_saw_itself_does_not_run_the_handler_again(
    serve: Callable[..., Server], call_driver: CallDriver, clock: Callable[[dt.datetime], None]
) -> None:
    clock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC))  # a Monday morning: the line is open
    server = serve()
    call = call_driver.place("ivrkit-support", script=["hangup"]).wait(30)
    (session,) = server.results
    assert session.outcome == "caller-hangup" and session.state.vars["abandoned_in"] == "none"
    assert ("Return", "") in call.applications, call.describe()  # the handler ran and returned at once
    assert not [data for app, data in call.applications if app == "AGI" and data.endswith("/hangup")]


# -- when the server cannot run the call -------------------------------------------------------------------------


def test_with_the_server_stopped_the_caller_hears_the_fallback_and_reaches_the_queue(
    serve: Callable[..., Server], call_driver: CallDriver
) -> None:
    server = serve()
    server.listener.stop_accepting()
    call = call_driver.place("ivrkit-support").wait(30)
    apps = call.applications
    assert call.variables.get("AGISTATUS") == "FAILURE", call.describe()
    assert apps[apps.index(FALLBACK) + 1 :][:2] == [("Set", "QUEUESTATUS="), ("Queue", "support")], apps
    assert call.variables.get("PLAYBACKSTATUS") == "SUCCESS"  # the prompt exists and played to the end
    assert call.variables.get("QUEUESTATUS") == "JOINEMPTY"  # the sandbox's support queue has no agents
    assert server.results == []


@pytest.fixture
def maintenance(ami: AmiClient) -> Iterator[Callable[[str, str], None]]:
    """``maintenance(key, mode)`` sets an AstDB flag (as the admin would); every flag is removed afterwards."""
    keys: list[str] = []

    def put(key: str, mode: str) -> None:
        keys.append(key)
        ami.send("DBPut", Family="ivrkit-maintenance", Key=key, Val=mode)

    yield put
    for key in keys:
        try:
            ami.send("DBDel", Family="ivrkit-maintenance", Key=key)
        except AmiError:
            continue  # deleted already


def test_a_maintenance_flag_plays_its_announcement_when_the_server_cannot(
    project: Path, asterisk: AsteriskInstance, ami: AmiClient, call_driver: CallDriver,
    maintenance: Callable[[str, str], None],
) -> None:  # fmt: skip
    assert install(asterisk, compile_for(project, stopped_server_url()), ami).ok

    maintenance("support", "planned")
    call = call_driver.place("ivrkit-support").wait(30)
    apps = call.applications
    assert call.variables.get("AGISTATUS") == "FAILURE", call.describe()  # the server is asked first
    assert [data for app, data in apps if app == "Playback"] == ["en/ivrkit/maintenance-planned"], apps
    after = apps[apps.index(("Playback", "en/ivrkit/maintenance-planned")) + 1 :]
    assert call.variables.get("PLAYBACKSTATUS") == "SUCCESS" and after[0] == ("Hangup", ""), after  # not the queue

    maintenance("global", "emergency")  # every flow without a flag of its own
    call = call_driver.place("ivrkit-billing").wait(30)
    assert ("Playback", "en/ivrkit/maintenance-emergency") in call.applications, call.describe()

    maintenance("billing", "none")  # a flow's own flag wins over the global one; unknown modes mean none
    maintenance("support", "planned,${SHELL(id)}")  # read as 'plannedshellid': not a mode, and never expanded
    for flow in ("billing", "support"):
        call = call_driver.place(f"ivrkit-{flow}").wait(30)
        assert "AGI" in [app for app, _ in call.applications] and FALLBACK in call.applications, call.describe()


def test_a_maintenance_flag_keeps_no_call_from_a_running_server(
    serve: Callable[..., Server], call_driver: CallDriver, clock: Callable[[dt.datetime], None],
    maintenance: Callable[[str, str], None],
) -> None:  # fmt: skip
    """The store decides what a call meets while the server runs: a flag its mirror did not write (set by hand,
    or left over) counts only when the server cannot run the call."""
    clock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC))  # a Monday morning: the line is open
    server = serve()
    maintenance("support", "planned")
    call = call_driver.place("ivrkit-support", script=["hangup"]).wait(30)
    (session,) = server.results
    assert session.outcome == "caller-hangup" and session.journal.of_kind("maintenance") == []
    assert call.variables.get("IVRKIT_DP_GATE") == "planned"  # remembered, for the fallback only
    assert not [data for app, data in call.applications if app == "Playback"], call.describe()


def test_values_from_the_server_never_become_dialplan_syntax(
    project: Path, asterisk: AsteriskInstance, ami: AmiClient, call_driver: CallDriver,
    fastagi: Callable[[Callable[[AgiSession], None]], FastAgiPeer],
) -> None:  # fmt: skip
    """A server that sets hostile results: each call takes the fallback, nothing else runs Queue() or Dial()."""
    hostile = [
        {"IVRKIT_RESULT": "queue", "IVRKIT_TARGET": "support,r,,,,,,,1"},  # a comma smuggles Queue() options
        {"IVRKIT_RESULT": "queue", "IVRKIT_TARGET": "sup port"},  # FILTER alone would make it 'support'
        # a queue the dialplan does not know, with numbers that smuggle options (read as digits only)
        {"IVRKIT_RESULT": "queue", "IVRKIT_TARGET": "elsewhere", "IVRKIT_TIMEOUT": "1,r,,x", "IVRKIT_PRIORITY": "5)9"},
        {"IVRKIT_RESULT": "transfer", "IVRKIT_TARGET": "PJSIP/a&Local/s@admin"},  # a second Dial() target
        {"IVRKIT_RESULT": "transfer", "IVRKIT_TARGET": "${SHELL(id)}"},
        {"IVRKIT_RESULT": 'queue"="queue'},  # an expression that would compare true
    ]
    for variables in hostile:
        def script(session: AgiSession, variables: dict[str, str] = variables) -> None:
            for name, value in variables.items():
                escaped = value.replace("\\", "\\\\").replace('"', '\\"')
                assert session.command(f'SET VARIABLE {name} "{escaped}"') == "200 result=1"

        peer = fastagi(script)
        assert install(asterisk, compile_for(project, f"agi://127.0.0.1:{peer.port}"), ami).ok
        call = call_driver.place("ivrkit-support").wait(30)
        peer.check()
        apps = call.applications
        assert FALLBACK in apps, f"{variables}: {call.describe()}"
        handed = [(app, data) for app, data in apps[: apps.index(FALLBACK)] if app in ("Queue", "Dial")]
        assert handed == [], variables
        if "IVRKIT_TIMEOUT" in variables:
            assert ("Set", "IVRKIT_DP_TIMEOUT=1") in apps and ("Set", "QUEUE_PRIO=059") in apps, apps


# -- callback legs ----------------------------------------------------------------------------------------------


def leg_applications(ami: AmiClient, mark: int, call: Call) -> list[tuple[str, str]]:
    """Every application the IVR half ran, read from AMI up to its hang-up: a call whose IVR half never answers
    can count as done (its Originate failed) before the last of its events reached the call driver."""
    ami.wait_for(lambda e: e.name == "Hangup" and e.get("Uniqueid") == call.ivr_id, 30, since=mark)
    return [(event.get("Application", ""), event.get("AppData", "")) for event in ami.events_since(mark)
            if event.name == "Newexten" and event.get("Uniqueid") == call.ivr_id]  # fmt: skip


class LegWorld(StoreWorld):
    """One callback dialing on a test call's IVR channel: its id is known only once the call is placed, so the
    session's first read waits for :meth:`placed` (no race with the AGI session)."""

    def __init__(self, callback: Callback) -> None:
        super().__init__()
        self.template = callback
        self.ready = threading.Event()

    def placed(self, channel_id: str) -> None:
        self.rows[self.template.id] = replace(self.template, channel_id=channel_id)
        self.ready.set()

    def callback(self, callback_id: str) -> Callback | None:
        assert self.ready.wait(10), "the test never placed the callback's call"
        return super().callback(callback_id)


def test_a_called_back_customer_who_confirms_joins_the_queue_at_the_callback_priority(
    serve: Callable[..., Server], call_driver: CallDriver
) -> None:
    world = LegWorld(dialing())
    server = serve(world=world)
    call = call_driver.place(
        "ivrkit-support", exten="callback", variables={"IVRKIT_CALLBACK": CALLBACK_ID, "IVRKIT_CB_AMD": "0"},
        script=["1"],
    )  # fmt: skip
    world.placed(call.ivr_id)
    call.wait(30)
    (session,) = server.results
    assert session.outcome == "callback-connected", call.describe()
    assert world.changes == [("connected", CALLBACK_ID, call.ivr_id, None)]
    assert call.prompts_streamed == [
        "en/ivrkit/callback-intro", "en/ivrkit/callback-press-to-connect", "en/ivrkit/callback-connecting",
    ]  # fmt: skip
    apps = call.applications
    url = f"agi://127.0.0.1:{server.listener.port}/support/callback?id={CALLBACK_ID}&amd="
    assert ("AGI", url) in apps and ("ExecIf", "0?AMD()") in apps, apps  # no machine detection asked for
    after = apps[apps.index(("AGI", url)) :]
    assert ("Set", "QUEUE_PRIO=010") in after and ("Queue", "support,,,,") in after, after
    assert after[-1] == ("Hangup", "")  # the sandbox's queue has no agents: JOINEMPTY, and the leg ends
    assert call.variables.get("QUEUESTATUS") == "JOINEMPTY"


def test_a_machine_answering_the_callback_ends_the_attempt_without_a_word(
    serve: Callable[..., Server], call_driver: CallDriver
) -> None:
    """AMD() on the real leg: the test caller sends only silence, which AMD takes for a machine (initial
    silence, 2.5 s by default); the server ends the attempt as `machine` and the dialplan hangs up."""
    world = LegWorld(dialing())
    server = serve(world=world)
    call = call_driver.place(
        "ivrkit-support", exten="callback", variables={"IVRKIT_CALLBACK": CALLBACK_ID, "IVRKIT_CB_AMD": "1"}
    )
    world.placed(call.ivr_id)
    call.wait(30)
    apps = call.applications
    assert ("ExecIf", "1?AMD()") in apps and call.variables.get("IVRKIT_DP_STATUS") == "MACHINE", call.describe()
    url = f"agi://127.0.0.1:{server.listener.port}/support/callback?id={CALLBACK_ID}&amd=MACHINE"
    assert ("AGI", url) in apps, apps
    (session,) = server.results
    assert session.outcome == "callback-machine" and call.prompts_streamed == []
    assert world.changes == [("ended", CALLBACK_ID, call.ivr_id, Result.MACHINE)]
    assert not [app for app, _ in apps if app in ("Queue", "Dial")]


LEG_CASES = [
    # (extension, the Originate's variables, what the server sets) → the Queue()/Dial() that runs, if any
    ("callback", {}, {"IVRKIT_RESULT": "queue", "IVRKIT_TARGET": "support", "IVRKIT_PRIORITY": "5)9"},
     ("Queue", "support,,,,")),  # the control: a known queue runs, the priority read as digits only
    ("callback", {}, {"IVRKIT_RESULT": "queue", "IVRKIT_TARGET": "support,r,,,,,,,1"}, None),
    ("callback", {}, {"IVRKIT_RESULT": "queue", "IVRKIT_TARGET": "billing"}, None),  # not a callback queue here
    ("callback", {}, {"IVRKIT_RESULT": "dial", "IVRKIT_TARGET": "+4930123456", "IVRKIT_TIMEOUT": "1,r"},
     ("Dial", "Local/+4930123456@ivrkit-outbound,1")),  # the control: a number, dialled for digits only
    ("callback", {}, {"IVRKIT_RESULT": "dial", "IVRKIT_TARGET": "+4930&Local/s@admin"}, None),
    ("callback", {}, {"IVRKIT_RESULT": "dial", "IVRKIT_TARGET": "PJSIP/operator"}, None),  # numbers only
    ("callback", {}, {"IVRKIT_RESULT": "dial", "IVRKIT_TARGET": "4930+1"}, None),
    ("callback", {}, {"IVRKIT_RESULT": "dial", "IVRKIT_TARGET": "${SHELL(id)}"}, None),
    ("callback", {}, {"IVRKIT_RESULT": 'queue"="queue', "IVRKIT_TARGET": "support"}, None),
    ("callback-agent", {"IVRKIT_CB_QUEUE": "support", "IVRKIT_CB_PRIORITY": "7", "IVRKIT_CB_WAIT": "1"}, None,
     ("Queue", "support,,,,1")),  # the control
    ("callback-agent", {"IVRKIT_CB_QUEUE": "sup port", "IVRKIT_CB_WAIT": "1"}, None, None),
    ("callback-agent", {"IVRKIT_CB_QUEUE": "billing", "IVRKIT_CB_WAIT": "1"}, None, None),
]  # fmt: skip


@pytest.mark.parametrize(("exten", "variables", "sets", "runs"), LEG_CASES)
def test_values_reaching_the_callback_legs_never_become_dialplan_syntax(
    project: Path, asterisk: AsteriskInstance, ami: AmiClient, call_driver: CallDriver,
    fastagi: Callable[[Callable[[AgiSession], None]], FastAgiPeer],
    exten: str, variables: dict[str, str], sets: dict[str, str] | None, runs: tuple[str, str] | None,
) -> None:  # fmt: skip
    def script(session: AgiSession) -> None:
        for name, value in (sets or {}).items():
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            assert session.command(f'SET VARIABLE {name} "{escaped}"') == "200 result=1"

    peer = fastagi(script)
    assert install(asterisk, compile_for(project, f"agi://127.0.0.1:{peer.port}"), ami).ok
    mark = ami.mark()
    call = call_driver.place("ivrkit-support", exten=exten, variables={"IVRKIT_CALLBACK": CALLBACK_ID, **variables})
    apps = leg_applications(ami, mark, call)
    if sets is not None:
        assert peer.check().env["agi_network_script"] == f"support/callback?id={CALLBACK_ID}&amd="
    handed = [(app, data) for app, data in apps if app in ("Queue", "Dial")]
    assert handed == ([runs] if runs else []), apps
    assert apps[-1] == ("Hangup", ""), apps


@pytest.mark.parametrize("callback_id", [CALLBACK_ID[:-1], CALLBACK_ID + "0", CALLBACK_ID[:-1] + "g",
                                         CALLBACK_ID.upper(), f"{CALLBACK_ID[:16]}${{SHELL(id)}}"])  # fmt: skip
def test_a_leg_whose_callback_id_is_not_32_hex_digits_never_reaches_the_server(
    project: Path, asterisk: AsteriskInstance, ami: AmiClient, call_driver: CallDriver,
    fastagi: Callable[[Callable[[AgiSession], None]], FastAgiPeer], callback_id: str,
) -> None:  # fmt: skip
    peer = fastagi(lambda session: None)
    assert install(asterisk, compile_for(project, f"agi://127.0.0.1:{peer.port}"), ami).ok
    mark = ami.mark()
    call = call_driver.place("ivrkit-support", exten="callback", variables={"IVRKIT_CALLBACK": callback_id})
    apps = leg_applications(ami, mark, call)
    assert "AGI" not in [app for app, _ in apps] and apps[-1] == ("Hangup", ""), apps
    assert peer.sessions == []


def test_a_called_back_customer_who_presses_an_exit_key_waits_on_in_the_queue(
    serve: Callable[..., Server], call_driver: CallDriver, ami: AmiClient
) -> None:
    """A queue's exit keys lead back to the flow that queued the call; a called-back customer has no flow to go
    back to, so the exit context sends them back into the queue (at the callback's priority still)."""
    world = LegWorld(dialing(queue="ringback", flow="ringback"))
    server = serve(world=world)
    mark = ami.mark()
    call = call_driver.place(
        "ivrkit-ringback", exten="callback", variables={"IVRKIT_CALLBACK": CALLBACK_ID}, script=["1"]
    )
    world.placed(call.ivr_id)
    events = ami.cursor(mark)
    events.wait_for(lambda e: e.name == "QueueCallerJoin" and e.get("Uniqueid") == call.ivr_id, 30)
    ami.send("PlayDTMF", Channel=call.ivr_channel or "", Digit="1", Receive=True)  # the exit key
    events.wait_for(lambda e: e.name == "QueueCallerJoin" and e.get("Uniqueid") == call.ivr_id, 30)  # again
    ami.send("Hangup", Channel=call.ivr_channel or "")
    call.wait(30)
    (session,) = server.results  # no resume session: the flow never got the call back
    assert session.outcome == "callback-connected"
    apps = call.applications
    exit_path = apps[apps.index(("Set", "IVRKIT_DP_STATUS=again")) :]
    assert exit_path[:7] == [
        ("Set", "IVRKIT_DP_STATUS=again"),
        ("Goto", "back,1"),
        ("Set", "IVRKIT_DP_FROM=ringback"),
        ("GotoIf", "0?unknown"),
        ("GotoIf", "1?callback"),
        ("GotoIf", "1?ivrkit-ringback,callback,queue-ringback"),
        ("Queue", "ringback,,,,"),
    ], apps
    assert [data for app, data in apps if app == "Set" and data.startswith("QUEUE_PRIO=")] == ["QUEUE_PRIO=07"]
    assert not [data for app, data in apps if app == "AGI" and "/resume" in data]
