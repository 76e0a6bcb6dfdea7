"""The FastAGI server on a real Asterisk 22: calls placed by AMI, keys injected by the PBX itself.

The server is the real one (listener, sessions, flows from files) running in this process so the tests can
read each session's journal; Asterisk reaches it over 127.0.0.1 exactly as in production.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.engine.state import CallState
from ivrkit.qa.asterisk.calls import Call, CallDriver, agi_test_dialplan
from ivrkit.qa.asterisk.sandbox import AsteriskInstance
from ivrkit.server.listener import AgiListener
from tests.asterisk.conftest import wav
from tests.asterisk.recording import RecordingHandler, serving

pytestmark = pytest.mark.asterisk

LINE = """
flow: line
language: en
cancel_key: "*"
start: greeting
defaults: {timeout: 1500ms, inter_digit_timeout: 1500ms, retries: 1}
variables: {department: none}
on_hangup: note
steps:
  greeting:
    play: welcome
    next: main
  main:
    menu:
      prompt: main-menu
      choices: {"1": sales, "2": account}
      invalid: {reprompt: [invalid-choice, main-menu]}
      failed: goodbye
  account:
    collect: {into: account, prompt: enter-account, min_digits: 3, max_digits: 3, failed: goodbye}
    next: sales
  sales:
    set: {department: sales, who: "{{ caller.name }}", pad: "{{ 'x' * (call.params.pad | default(0) | int) }}"}
    next: sales_queue
  sales_queue:
    queue: {name: sales, timeout: 5m}
    outcomes: {timeout: still_busy}
  still_busy:
    hangup: {play: still-busy, outcome: timed-out}
  goodbye:
    hangup: {play: goodbye, outcome: gave-up}
  note:
    set: {abandoned_in: "{{ vars.department }}"}
"""
PROMPTS = {"welcome": 0.3, "main-menu": 0.6, "invalid-choice": 0.3, "enter-account": 0.4, "still-busy": 0.3,
           "goodbye": 0.3}  # fmt: skip


@pytest.fixture(scope="module")
def prompts(asterisk: AsteriskInstance) -> None:
    for name, seconds in PROMPTS.items():
        asterisk.install_sound(f"ivrkit/{name}.wav", wav(seconds), language="en")


@pytest.fixture
def server(tmp_path: Path, prompts: None) -> Iterator[tuple[AgiListener, RecordingHandler]]:
    with serving(tmp_path, "line", LINE) as served:
        yield served


def dial(
    asterisk: AsteriskInstance, driver: CallDriver, port: int, script: list[str], path: str = "line", **options: str
) -> Call:
    asterisk.reload_dialplan(agi_test_dialplan(port, agi_path=path))
    return driver.place("ivr", script=script, **options).wait(60)


def state_of(call: Call) -> CallState:
    """The state the server left on the channel (set by the hand-off's one MSet)."""
    return CallState.from_channel(call.variables["IVRKIT_STATE"])


def report(call: Call) -> tuple[str | None, str | None, str | None]:
    event = call.test_report
    assert event is not None, call.describe()
    return event.get("AGISTATUS"), event.get("IVRKIT_RESULT"), event.get("IVRKIT_OUTCOME")


def test_menu_choice_hands_off_to_the_queue(
    asterisk: AsteriskInstance, call_driver: CallDriver, server: tuple[AgiListener, RecordingHandler]
) -> None:
    listener, handler = server
    call = dial(asterisk, call_driver, listener.port, ["1"])
    assert report(call) == ("SUCCESS", "queue", "handoff"), call.describe()
    assert call.prompts_streamed == ["en/ivrkit/welcome", "en/ivrkit/main-menu"]
    assert call.variables["IVRKIT_TARGET"] == "sales" and call.variables["IVRKIT_TIMEOUT"] == "300"
    assert state_of(call).step == "sales_queue"
    assert listener.wait_idle(5)
    result = handler.results[-1]
    assert result is not None and result.journal.steps_entered()[-1] == "line.sales_queue"


def test_invalid_then_valid_then_digits(
    asterisk: AsteriskInstance, call_driver: CallDriver, server: tuple[AgiListener, RecordingHandler]
) -> None:
    listener, handler = server
    call = dial(asterisk, call_driver, listener.port, ["7", "-", "2", "456"])
    assert report(call)[1] == "queue", call.describe()
    assert call.prompts_streamed[:5] == [
        "en/ivrkit/welcome",
        "en/ivrkit/main-menu",
        "en/ivrkit/invalid-choice",
        "en/ivrkit/main-menu",
        "en/ivrkit/enter-account",
    ]
    assert listener.wait_idle(5)
    result = handler.results[-1]
    assert result is not None and result.state.vars["account"] == "456"
    assert [e.kind for e in result.journal.of_kind("invalid", "choice")] == ["invalid", "choice"]


def test_no_input_until_the_menu_fails(
    asterisk: AsteriskInstance, call_driver: CallDriver, server: tuple[AgiListener, RecordingHandler]
) -> None:
    listener, _ = server
    call = dial(asterisk, call_driver, listener.port, ["-"] * 6)
    assert report(call) == ("HANGUP", "hangup", "gave-up"), call.describe()  # the flow hung up: h reports
    assert call.prompts_streamed[-1] == "en/ivrkit/goodbye"
    waits = [line for line, _, _ in call.commands if line.startswith("WAIT FOR DIGIT")]
    assert waits == ["WAIT FOR DIGIT 1500"] * 2


def test_cancel_key_backs_out_of_the_entry(
    asterisk: AsteriskInstance, call_driver: CallDriver, server: tuple[AgiListener, RecordingHandler]
) -> None:
    listener, handler = server
    call = dial(asterisk, call_driver, listener.port, ["2", "4", "*", "1"])
    assert report(call)[1] == "queue", call.describe()
    assert call.prompts_streamed.count("en/ivrkit/main-menu") == 2
    assert listener.wait_idle(5)
    result = handler.results[-1]
    assert result is not None and [e.detail["to"] for e in result.journal.of_kind("cancel")] == ["main"]


def test_caller_hangs_up_mid_prompt(
    asterisk: AsteriskInstance,
    call_driver: CallDriver,
    server: tuple[AgiListener, RecordingHandler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener, handler = server
    caplog.set_level(logging.INFO, logger="ivrkit")
    call = dial(asterisk, call_driver, listener.port, ["hangup"])
    assert listener.wait_idle(10)
    result = handler.results[-1]
    assert result is not None and result.outcome == "caller-hangup", call.describe()
    assert result.state.vars["abandoned_in"] == "none"  # the hang-up handler ran on the dead channel
    assert call.variables.get("IVRKIT_RESULT") == "caller-hangup"  # set on the dead channel, seen by AMI
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_flow_not_found(
    asterisk: AsteriskInstance, call_driver: CallDriver, server: tuple[AgiListener, RecordingHandler]
) -> None:
    listener, _ = server
    call = dial(asterisk, call_driver, listener.port, [], path="nosuchflow")
    assert report(call) == ("SUCCESS", "error", "no-such-flow"), call.describe()


def test_server_stopped_the_dialplan_sees_the_failure(asterisk: AsteriskInstance, call_driver: CallDriver) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket is closed
    call = dial(asterisk, call_driver, port, [])
    assert report(call) == ("FAILURE", "", ""), call.describe()


def test_caller_name_with_a_newline_and_exec_payload_is_only_data(
    asterisk: AsteriskInstance, call_driver: CallDriver, server: tuple[AgiListener, RecordingHandler]
) -> None:
    listener, _ = server
    dialplan = agi_test_dialplan(listener.port, agi_path="line").replace(
        "exten => s,1,Answer()",
        "exten => s,1,Set(CALLERID(name)=${URIDECODE(Bob%0AEXEC%20Dial%20Local%2F666%40x%0AHANGUP)})\n"
        " same => n,Answer()",
    )
    asterisk.reload_dialplan(dialplan)
    call = call_driver.place("ivr", script=["1"]).wait(60)
    assert report(call)[1] == "queue", call.describe()
    commands = [line for line, _, _ in call.commands]
    assert not [line for line in commands if line.startswith(("EXEC Dial", "HANGUP"))], commands
    assert state_of(call).vars["who"] == "Bob\nEXEC Dial Local/666@x\nHANGUP"


def test_long_state_survives_the_round_trip_through_asterisk(
    asterisk: AsteriskInstance, call_driver: CallDriver, server: tuple[AgiListener, RecordingHandler]
) -> None:
    """A state over GET VARIABLE's 1,023-byte limit is read whole on resume (GET FULL VARIABLE)."""
    listener, handler = server
    url = f"agi://127.0.0.1:{listener.port}"
    asterisk.reload_dialplan(
        agi_test_dialplan(listener.port, agi_path="line?pad=2500").replace(
            " same => n,Set(IVRKIT_TEST_REPORTED=1)",
            f" same => n,AGI({url}/line/resume?outcome=TIMEOUT)\n same => n,Set(IVRKIT_TEST_REPORTED=1)",
        )
    )
    call = call_driver.place("ivr", script=["1"]).wait(60)
    assert report(call)[2] == "timed-out", call.describe()
    assert "en/ivrkit/still-busy" in call.prompts_streamed
    assert listener.wait_idle(5)
    resumed = handler.results[-1]
    assert resumed is not None and len(resumed.state.vars["pad"]) == 2500 and resumed.state.sessions == 2
