"""The call driver against the real Asterisk, with a FastAGI peer written in the test (no ivrkit server).

These also pin the Asterisk 22 facts the FastAGI server and the end-to-end tests rely on: which Local half
runs the IVR, what AGIExecStart/AGIExecEnd carry, where prompts are found, PlayDTMF Receive=true, and
what the AGI socket sees when the caller hangs up during a prompt.
"""

from __future__ import annotations

import re

import pytest

from ivrkit.qa.asterisk.calls import (
    HANG_UP,
    PRESS_NOTHING,
    CallDriver,
    agi_test_dialplan,
    input_command,
    normalize_script,
    parse_agi_command,
)
from ivrkit.qa.asterisk.sandbox import AsteriskInstance
from tests.asterisk.conftest import AgiSession, wav

pytestmark = pytest.mark.asterisk


@pytest.fixture
def ivr(asterisk: AsteriskInstance, fastagi, call_driver: CallDriver):  # type: ignore[no-untyped-def]
    """``ivr(script_for_the_agi_peer, caller_script, **place options)`` → (call, agi session), call ended."""

    def run(agi_script, caller=(), timeout=20.0, **options):  # type: ignore[no-untyped-def]
        peer = fastagi(agi_script)
        asterisk.reload_dialplan(agi_test_dialplan(peer.port))
        call = call_driver.place("ivr", script=caller, **options)
        call.wait(timeout)
        return call, peer.check()

    return run


def test_a_digit_reaches_wait_for_digit_and_the_dialplan_sees_the_result(ivr) -> None:  # type: ignore[no-untyped-def]
    replies = []

    def agi(session: AgiSession) -> None:
        replies.append(session.command("WAIT FOR DIGIT 5000"))
        digit = chr(int(replies[0].split("=")[1]))
        replies.append(session.command(f"SET VARIABLE GOT {digit}"))
        replies.append(session.command("SET VARIABLE IVRKIT_RESULT hangup"))

    call, _ = ivr(agi, caller=["7"])

    assert replies == ["200 result=55", "200 result=1", "200 result=1"]
    assert call.variables["GOT"] == "7"
    assert call.pressed == ["7"]
    assert call.commands[0] == ("WAIT FOR DIGIT 5000", "200", "Success")
    assert call.unused_actions == [] and call.errors == []
    report = call.test_report
    assert report is not None
    assert (report["Where"], report["AGISTATUS"], report["IVRKIT_RESULT"]) == ("after-agi", "SUCCESS", "hangup")


def test_get_data_takes_all_digits_up_to_the_terminator(ivr) -> None:  # type: ignore[no-untyped-def]
    replies = []
    call, _ = ivr(lambda s: replies.append(s.command("GET DATA beep 5000 10")), caller=["1234#"])
    assert replies == ["200 result=1234"]
    assert call.pressed == list("1234#")


def test_get_data_stops_at_its_maximum_and_the_rest_waits_for_the_next_input(ivr) -> None:  # type: ignore[no-untyped-def]
    replies = []

    def agi(session: AgiSession) -> None:
        replies.append(session.command("GET DATA beep 5000 3"))
        replies.append(session.command("WAIT FOR DIGIT 5000"))

    call, _ = ivr(agi, caller=["1234"])
    assert replies == ["200 result=123", "200 result=52"]
    assert [c.pressed for c in call.agi_commands] == ["123", "4"]


def test_digits_of_one_action_are_typed_across_single_key_commands(ivr) -> None:  # type: ignore[no-untyped-def]
    replies = []

    def agi(session: AgiSession) -> None:
        replies.append(session.command('STREAM FILE beep "0123456789"'))
        replies.append(session.command("WAIT FOR DIGIT 5000"))
        replies.append(session.command('STREAM FILE beep ""'))  # no escape digits: not an input command

    call, _ = ivr(agi, caller=["12"])
    assert replies[0].startswith("200 result=49 endpos=")
    assert replies[1] == "200 result=50"
    assert replies[2].startswith("200 result=0 endpos=")
    assert call.prompts_streamed == ["beep", "beep"]


def test_press_nothing_lets_the_command_time_out(ivr) -> None:  # type: ignore[no-untyped-def]
    replies = []
    call, _ = ivr(lambda s: replies.append(s.command("WAIT FOR DIGIT 300")), caller=[PRESS_NOTHING])
    assert replies == ["200 result=0"]
    assert call.pressed == [] and call.unused_actions == []


def test_actions_left_over_are_reported(ivr) -> None:  # type: ignore[no-untyped-def]
    call, _ = ivr(lambda s: s.command("WAIT FOR DIGIT 5000"), caller=["1", "23", HANG_UP])
    assert call.unused_actions == ["23", HANG_UP]
    assert "unused script actions" in call.describe()


def test_the_ivr_runs_on_the_second_local_half_with_the_callers_variables(ivr) -> None:  # type: ignore[no-untyped-def]
    replies = []

    def agi(session: AgiSession) -> None:
        replies.append(session.command("GET VARIABLE IVRKIT_FLOW"))

    call, session = ivr(agi, variables={"IVRKIT_FLOW": "support"}, caller_id='"Alice" <+4930123>')

    assert re.fullmatch(r"Local/s@ivr-[0-9a-f]{8};2", call.ivr_channel or "")
    assert call.caller_channel == (call.ivr_channel or "")[:-1] + "1"
    env = session.env
    assert (env["agi_channel"], env["agi_uniqueid"]) == (call.ivr_channel, call.ivr_id)
    assert (env["agi_callerid"], env["agi_calleridname"], env["agi_language"]) == ("+4930123", "Alice", "en")
    assert (env["agi_context"], env["agi_extension"], env["agi_network_script"]) == ("ivr", "s", "ivr")
    assert replies == ["200 result=1 (support)"]


def test_prompts_are_found_under_the_language_directory(asterisk: AsteriskInstance, ivr) -> None:  # type: ignore[no-untyped-def]
    name = asterisk.install_sound("ivrkit/test-hello.wav", wav(0.25))
    assert name == "ivrkit/test-hello"
    replies = []

    def agi(session: AgiSession) -> None:
        for line in ('STREAM FILE en/ivrkit/test-hello ""', 'STREAM FILE ivrkit/test-hello ""', 'STREAM FILE nope ""'):
            replies.append(session.command(line))

    call, _ = ivr(agi)

    assert replies == ["200 result=0 endpos=2000", "200 result=0 endpos=2000", "200 result=-1 endpos=0"]
    assert call.prompts_streamed == ["en/ivrkit/test-hello", "ivrkit/test-hello"]
    assert call.commands[2] == ('STREAM FILE nope ""', "-1", "Failure")


def test_caller_hangs_up_during_a_prompt(asterisk: AsteriskInstance, ivr) -> None:  # type: ignore[no-untyped-def]
    """What the AGI socket receives: the command's own -1 reply, then HANGUP; dead-mode rules after that."""
    asterisk.install_sound("ivrkit/test-long.wav", wav(4.0))

    def agi(session: AgiSession) -> None:
        session.command('STREAM FILE ivrkit/test-long "#"')
        session.read_line()  # the unsolicited HANGUP notice
        session.command('STREAM FILE beep ""')  # not allowed on a dead channel
        session.command("SET VARIABLE IVRKIT_RESULT caller-hangup")  # allowed

    call, session = ivr(agi, caller=[HANG_UP])

    received = session.received()
    assert re.fullmatch(r"200 result=-1 endpos=\d+", received[0]), received
    assert received[1:] == [
        "HANGUP",
        "511 Command Not Permitted on a dead channel or intercept routine",
        "200 result=1",
    ]
    assert call.commands[0] == ('STREAM FILE ivrkit/test-long "#"', "-1", "Failure")
    assert call.commands[1] == (
        'STREAM FILE beep ""',
        "511",
        "Command Not Permitted on a dead channel or intercept routine",
    )
    report = call.test_report
    assert report is not None
    assert (report["Where"], report["AGISTATUS"], report["IVRKIT_RESULT"]) == ("h", "HANGUP", "caller-hangup")
    # the IVR channel's Hangup event comes only after the FastAGI session ended
    names = [e.name for e in call.events if e.get("Uniqueid") == call.ivr_id]
    assert names.index("Hangup") > max(i for i, n in enumerate(names) if n == "AGIExecEnd")


def test_agi_exec_end_carries_a_status_not_the_reply(ivr) -> None:  # type: ignore[no-untyped-def]
    replies = []

    def agi(session: AgiSession) -> None:
        for line in ("FOO BAR", "WAIT FOR DIGIT", "WAIT FOR DIGIT 100", "GET VARIABLE NOSUCH"):
            replies.append(session.command(line))

    call, _ = ivr(agi, caller=[PRESS_NOTHING])

    assert replies == [
        "510 Invalid or unknown command",
        "520-Invalid command syntax.  Proper usage follows:",
        "200 result=0",
        "200 result=0",
    ]
    assert call.commands == [
        ("FOO BAR", "510", "Invalid or unknown command"),
        ("WAIT FOR DIGIT", "520", "Usage"),
        ("WAIT FOR DIGIT 100", "200", "Success"),
        ("GET VARIABLE NOSUCH", "200", "Success"),
    ]


def test_fastagi_server_down_gives_agistatus_failure(asterisk: AsteriskInstance, call_driver: CallDriver) -> None:
    from ivrkit.qa.asterisk.sandbox import free_port

    asterisk.reload_dialplan(agi_test_dialplan(free_port()))
    call = call_driver.place("ivr").wait(10)
    report = call.test_report
    assert report is not None and (report["Where"], report["AGISTATUS"]) == ("after-agi", "FAILURE")
    assert call.commands == []


def test_a_bad_script_fails_before_the_call() -> None:
    with pytest.raises(ValueError, match=r"script item 2 \('x'\) is not a key sequence"):
        normalize_script(["1", "x"])
    assert normalize_script([1, "#", "Hangup", "-", "a"]) == ["1", "#", HANG_UP, PRESS_NOTHING, "A"]


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ('STREAM FILE welcome ""', ["STREAM", "FILE", "welcome", ""]),
        ("GET DATA  beep\t5000 3", ["GET", "DATA", "beep", "5000", "3"]),
        (r'SET VARIABLE X "a \"quoted\" value"', ["SET", "VARIABLE", "X", 'a "quoted" value']),
        (r"SET VARIABLE X a\ b", ["SET", "VARIABLE", "X", "a b"]),
        ('SET VARIABLE X ab"c d"e', ["SET", "VARIABLE", "X", "abc de"]),
        ("NOOP \\", ["NOOP"]),
    ],
)
def test_agi_command_lines_split_like_asterisk(line: str, args: list[str]) -> None:
    assert parse_agi_command(line) == args


@pytest.mark.parametrize(
    ("line", "reads"),
    [
        ("WAIT FOR DIGIT 5000", "one"),
        ("get option menu 12 3000", "one"),
        ("GET DATA beep 3000 4", "many"),
        ('STREAM FILE x ""', None),
        ('STREAM FILE x "12"', "one"),
        ("STREAM FILE x", None),
        ('CONTROL STREAM FILE x "#"', "one"),
        ('SAY DIGITS 123 ""', None),
        ("SAY NUMBER 5 *", "one"),
        ("SET VARIABLE A 1", None),
    ],
)
def test_input_commands_are_recognised(line: str, reads: str | None) -> None:
    assert input_command(parse_agi_command(line)) == reads
