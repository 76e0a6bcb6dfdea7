"""The call's language in the engine: chosen when the call starts, told to the PBX (CHANNEL(language)) when it
differs, and kept wherever the call's state is written down: a queue or transfer and back, the hang-up
handler, another flow, the callback leg."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrkit.engine.channel import CallInfo
from ivrkit.engine.journal import Journal
from ivrkit.engine.runner import Engine
from ivrkit.engine.state import STATE_VARIABLE, CallState
from ivrkit.sim.channel import SimulatedChannel
from ivrkit.sim.script import parse_keys
from ivrkit.sim.session import DEFAULT_START, HandoffResult
from tests.callbacks.test_answer import StoreWorld, answer, dialing
from tests.calls import Call, build, of_kind

LINE = """
flow: line
languages: [en, de]
start: hello
on_hangup: note
steps:
  hello: {play: hello, next: pick}
  pick:
    language: {choices: {"1": en, "2": de}}
    next: join
  join:
    queue: support
    outcomes: {timeout: again}
  again:
    menu: {prompt: still-busy, choices: {"1": join}}
  note:
    set: {language_then: "{{ call.language }}"}
"""


HELLO = "flow: line\nlanguages: [en, de]\nstart: hello\nsteps:\n  hello: {play: hello}\n"


class Told(SimulatedChannel):
    """Remembers each language the PBX was told to speak."""

    told: list[str] = []

    def set_language(self, language: str) -> None:
        Told.told.append(language)
        super().set_language(language)


@pytest.fixture
def told() -> type[Told]:
    Told.told = []
    return Told


@pytest.mark.parametrize(
    ("line", "speaks", "told_pbx"),
    [("de", "de", []), ("de_AT", "de_AT", []), ("en", "en", []), ("fr", "en", ["en"]), ("", "en", ["en"])],
)
def test_a_call_starts_in_the_lines_language_if_the_flow_speaks_it(
    call: Call, told: type[Told], line: str, speaks: str, told_pbx: list[str]
) -> None:
    result = call(HELLO, "", language=line, channel_factory=told)
    assert of_kind(result, "session")[0]["language"] == speaks
    assert of_kind(result, "played")[0]["language"] == speaks
    assert told.told == told_pbx  # the PBX is told only when it speaks another language


def test_a_flow_that_does_not_speak_the_lines_language_makes_the_pbx_speak_its_own(
    call: Call, told: type[Told]
) -> None:
    result = call(HELLO.replace("languages: [en, de]\n", ""), "", language="de", channel_factory=told)
    assert of_kind(result, "session")[0]["language"] == "en" and told.told == ["en"]


def test_the_chosen_language_goes_through_the_queue_and_back(call: Call, told: type[Told]) -> None:
    result = call(LINE, "2 1", language="en", handoffs=[HandoffResult("TIMEOUT", after=60)], channel_factory=told)
    assert [e["language"] for e in of_kind(result, "session")] == ["en", "de"]
    assert ("still-busy", "de") in [(e.detail.get("prompt"), e.detail["language"]) for e in result.events
                                    if e.kind == "played"]
    assert told.told == ["de"]  # the channel kept speaking German: nothing to tell when the call came back
    assert CallState.from_channel(result.variables[STATE_VARIABLE]).language == "de"


def resumed(language: str, state_language: str | None) -> tuple[SimulatedChannel, list[str]]:
    """A new session on a call the dialplan gives back: its line speaks ``language``, its state says the call's."""
    Told.told = []
    state = CallState("line", step="join", language=state_language, sessions=1)
    channel = Told(CallInfo("live-1", language=language), DEFAULT_START, parse_keys("1"))
    channel.variables[STATE_VARIABLE] = state.to_json()
    Engine(build(LINE)).run(channel, "line", resume_outcome="TIMEOUT", journal=Journal(DEFAULT_START))
    return channel, Told.told


def test_a_resumed_session_keeps_the_calls_language_whatever_the_line_says() -> None:
    assert resumed("de", "de")[1] == []  # Asterisk kept CHANNEL(language) de: agi_language says so
    channel, told = resumed("en", "de")  # the dialplan set it back: the session tells it again
    assert told == ["de"] and channel.language == "de"
    assert resumed("de", None)[1] == []  # a state written before calls had a language: the line's, as at a start


def test_the_hang_up_handler_sees_the_calls_language(call: Call) -> None:
    result = call(LINE, script=[{"press": "2"}, {"hangup": True, "after": "30s"}], language="en",
                  handoffs=[HandoffResult("TIMEOUT", after=60)])  # fmt: skip
    assert result.outcome == "caller-hangup" and result.vars["language_then"] == "de"


def test_another_flow_keeps_the_language_if_it_speaks_it(call: Call, told: type[Told]) -> None:
    first = """
    flow: first
    languages: [en, de]
    start: pick
    steps:
      pick: {language: {choices: {"2": de}}, next: away}
      away: {goto: {flow: TARGET}}
    """
    second = "flow: second\nlanguages: [en, de]\nstart: hi\nsteps:\n  hi: {play: hi}\n"
    english = "flow: english\nstart: hi\nsteps:\n  hi: {play: hi}\n"
    result = call(build(first.replace("TARGET", "second"), second, english), "2", language="en", channel_factory=told)
    assert of_kind(result, "played")[-1]["language"] == "de" and told.told == ["de"]
    told.told = []
    result = call(build(first.replace("TARGET", "english"), second, english), "2", language="en", channel_factory=told)
    assert of_kind(result, "played")[-1]["language"] == "en" and told.told == ["de", "en"]
    assert of_kind(result, "language")[-1] == {"language": "en", "previous": "de", "by": "flow"}


def test_the_callback_leg_speaks_the_callers_language_before_anything_is_said(tmp_path: Path) -> None:
    transcript, _ = answer(tmp_path, StoreWorld(dialing(language="de")), ["1"])
    commands = [words[:3 + (words[0] == "SET")] for words in transcript.words
                if words[:2] in (["SET", "VARIABLE"], ["STREAM", "FILE"])]
    assert commands[:2] == [["SET", "VARIABLE", "CHANNEL(language)", "de"],
                            ["STREAM", "FILE", "de/ivrkit/callback-intro"]]


def test_the_callback_leg_of_an_agent_first_queue_says_the_number_in_the_callers_language(tmp_path: Path) -> None:
    transcript, _ = answer(tmp_path, StoreWorld(dialing(queue="sales", language="de")), [])
    said = [words[:4] for words in transcript.words if words[0] in ("SAY", "SET")]
    assert said[:2] == [["SET", "VARIABLE", "CHANNEL(language)", "de"], ["SAY", "DIGITS", "4930123456", ""]]


@pytest.mark.parametrize("stored", ["", "en", "de;x"])
def test_a_callback_without_a_usable_language_is_in_the_flows(tmp_path: Path, stored: str) -> None:
    transcript, _ = answer(tmp_path, StoreWorld(dialing(language=stored)), ["1"])
    assert not [w for w in transcript.words if w[:3] == ["SET", "VARIABLE", "CHANNEL(language)"]]
    assert transcript.played[0] == "en/ivrkit/callback-intro"


def test_the_state_writes_the_language_only_when_there_is_one() -> None:
    assert CallState.from_json(CallState("line", language="de_AT").to_json()).language == "de_AT"
    assert '"l"' not in CallState("line").to_json()
    assert CallState.from_json('{"f": "line", "l": "de)x"}').language is None  # never a PBX function's argument
