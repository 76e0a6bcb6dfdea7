"""Whole sessions over the FastAGI wire: real flows, a fake PBX that answers as Asterisk 22 does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ivrkit.engine.state import CallState
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.library import FlowLibrary
from ivrkit.server.session import SessionHandler
from tests.agi.pbx import FakePbx, serve_one
from tests.server.conftest import write_flows


def metric(handler: SessionHandler, name: str, **labels: str) -> float:
    body, _ = handler.metrics.render()
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in body.decode().splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_menu_choice_hands_the_call_to_a_queue(handler: SessionHandler) -> None:
    transcript, result = serve_one(handler, FakePbx("desk", ["1"]))
    assert transcript.verbs()[:3] == ["ANSWER", "STREAM FILE", "STREAM FILE"]
    assert transcript.played == ["en/ivrkit/welcome", "en/ivrkit/main-menu"]
    assert transcript.words[2][-1] == "0123456789*#"  # any key interrupts a menu prompt (wrong ones count)
    variables = transcript.variables
    assert (variables["IVRKIT_RESULT"], variables["IVRKIT_TARGET"], variables["IVRKIT_TIMEOUT"]) == (
        "queue",
        "sales",
        "300",
    )
    state = CallState.from_channel(variables["IVRKIT_STATE"])
    assert (state.step, state.vars["department"]) == ("sales_queue", "sales")
    assert "HANGUP" not in transcript.verbs()  # the dialplan queues the call next
    assert result is not None and result.outcome == "handoff"
    assert metric(handler, "ivrkit_session_outcomes_total", flow="desk", outcome="handoff") == 1


def test_invalid_then_valid_then_digits_spoken(handler: SessionHandler) -> None:
    transcript, _ = serve_one(handler, FakePbx("desk", ["7", "-", "2", "4", "5", "6", "-", "-", "-", "-"]))
    assert transcript.played[:5] == [
        "en/ivrkit/welcome",
        "en/ivrkit/main-menu",
        "en/ivrkit/invalid-choice",
        "en/ivrkit/main-menu",
        "en/ivrkit/enter-account",
    ]
    said = [words for words in transcript.words if words[0] == "SAY"]
    assert [w[:3] for w in said] == [["SAY", "DIGITS", "456"], ["SAY", "NUMBER", "912"]]


def test_no_input_until_failure_then_goodbye(handler: SessionHandler) -> None:
    transcript, result = serve_one(handler, FakePbx("desk", ["-"] * 20))
    assert transcript.played[-1] == "en/ivrkit/goodbye"
    assert transcript.verbs()[-1] == "HANGUP"
    assert (transcript.variables["IVRKIT_RESULT"], transcript.variables["IVRKIT_OUTCOME"]) == ("hangup", "gave-up")
    assert result is not None and result.outcome == "gave-up"


def test_cancel_key_backs_out_of_collection(handler: SessionHandler) -> None:
    transcript, result = serve_one(handler, FakePbx("desk", ["2", "4", "*", "1"]))
    assert transcript.played.count("en/ivrkit/main-menu") == 2
    assert result is not None and [e.detail.get("to") for e in result.journal.of_kind("cancel")] == ["main"]
    assert transcript.variables["IVRKIT_TARGET"] == "sales"


def test_caller_hangs_up_mid_prompt(handler: SessionHandler, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ivrkit")
    transcript, result = serve_one(handler, FakePbx("desk", ["2", "hangup"]))
    assert transcript.hung_up
    # after the hang-up only dead-capable commands went out: the hang-up handler's work and the result
    after = transcript.verbs()[transcript.verbs().index("CHANNEL STATUS") :]
    assert set(after) <= {"CHANNEL STATUS", "SET VARIABLE", "EXEC"}
    assert transcript.variables["IVRKIT_RESULT"] == "caller-hangup"
    assert result is not None and result.state.vars["abandoned_in"] == "none"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not any(r.exc_info for r in caplog.records)


def test_flow_not_found(handler: SessionHandler) -> None:
    transcript, result = serve_one(handler, FakePbx("nope"))
    assert result is None
    assert (transcript.variables["IVRKIT_RESULT"], transcript.variables["IVRKIT_OUTCOME"]) == ("error", "no-such-flow")
    assert transcript.verbs() == ["SET VARIABLE", "SET VARIABLE"]
    assert metric(handler, "ivrkit_errors_total", kind="flow-not-found") == 1


def test_resume_after_the_queue(handler: SessionHandler) -> None:
    first, _ = serve_one(handler, FakePbx("desk", ["1"]))
    saved = {"IVRKIT_STATE": first.variables["IVRKIT_STATE"]}
    transcript, result = serve_one(handler, FakePbx("desk/resume?outcome=TIMEOUT", variables=saved))
    assert transcript.played == ["en/ivrkit/still-busy"]
    assert transcript.variables["IVRKIT_OUTCOME"] == "timed-out"
    assert result is not None and result.state.sessions == 2


def test_hangup_session_on_a_dead_channel(handler: SessionHandler) -> None:
    first, _ = serve_one(handler, FakePbx("desk", ["1"]))
    pbx = FakePbx("desk/hangup", variables={"IVRKIT_STATE": first.variables["IVRKIT_STATE"]})
    pbx.dead = True
    transcript, result = serve_one(handler, pbx)
    assert set(transcript.verbs()) <= {"GET FULL VARIABLE", "SET VARIABLE", "EXEC"}
    assert result is not None and result.state.vars["abandoned_in"] == "sales"
    assert transcript.variables["IVRKIT_RESULT"] == "caller-hangup"


def test_missing_prompt_is_reported_and_the_call_goes_on(handler: SessionHandler) -> None:
    transcript, _ = serve_one(handler, FakePbx("desk", ["1"], missing_files={"en/ivrkit/welcome"}))
    assert transcript.verbs()[1:4] == ["STREAM FILE", "CHANNEL STATUS", "STREAM FILE"]
    assert transcript.variables["IVRKIT_RESULT"] == "queue"
    assert metric(handler, "ivrkit_errors_total", kind="command-failed") == 1


def test_caller_name_with_a_newline_is_data_never_a_command(tmp_path: Path) -> None:
    flows = write_flows(
        tmp_path / "flows",
        greet="""
        flow: greet
        start: hello
        steps:
          hello:
            set: {who: "{{ caller.name }}"}
            next: spell
          spell:
            play: {alpha: "{{ caller.name }}"}
            next: bye
          bye:
            queue: {name: "sales"}
            outcomes: {otherwise: done}
          done:
            hangup: {}
        """,
    )
    library = FlowLibrary(flows)
    library.reload()
    handler = SessionHandler(library, ServerMetrics())
    payload = 'Bob"\nEXEC Dial(PJSIP/666)\r\nHANGUP'
    transcript, result = serve_one(handler, FakePbx("greet", env={"agi_calleridname": payload}))
    assert not [line for line in transcript.commands if line.startswith(("EXEC Dial", "HANGUP"))]
    carrying = [words[:2] for words in transcript.words if any("Dial" in word for word in words)]
    assert carrying == [["SAY", "ALPHA"]]  # as one argument of a harmless command; the state carries it encoded
    say = next(words for words in transcript.words if words[:2] == ["SAY", "ALPHA"])
    assert say[2] == 'Bob" EXEC Dial(PJSIP/666) HANGUP'
    state = CallState.from_channel(transcript.variables["IVRKIT_STATE"])
    assert state.vars["who"] == 'Bob"\nEXEC Dial(PJSIP/666)\nHANGUP'  # the lines rejoined, kept as data
    assert result is not None


def test_a_crash_sets_the_result_and_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    flows = write_flows(
        tmp_path / "flows",
        big="""
        flow: big
        start: fill
        steps:
          fill:
            set: {blob: "{{ 'x' * 5000 }}"}
            next: wait
          wait:
            queue: sales
        """,
    )
    library = FlowLibrary(flows)
    library.reload()
    handler = SessionHandler(library, ServerMetrics())
    transcript, result = serve_one(handler, FakePbx("big"))
    assert result is None
    assert (transcript.variables["IVRKIT_RESULT"], transcript.variables["IVRKIT_OUTCOME"]) == ("error", "crash")
    assert any("session crashed" in r.getMessage() and r.exc_info for r in caplog.records)
    assert metric(handler, "ivrkit_errors_total", kind="crash") == 1
