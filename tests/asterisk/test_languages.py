"""A German call on a real Asterisk 22 through the FastAGI server: the caller picks German in a language menu,
the channel's language becomes de, German prompts stream, and Asterisk says numbers, dates and times from the
German sounds of asterisk-prompt-de, with nothing missing.

asterisk-prompt-de lacks ``digits/1N`` ("ein", as in "eintausend", "ein Uhr"), which Asterisk's German grammar
asks for: :func:`ivrkit.prompts.languages.install_stand_ins` links it to the package's ``digits/ein`` (what
``ivrkit prompts deploy`` does). One test shows the warning without it, so the others prove the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.prompts.languages import install_stand_ins
from ivrkit.qa.asterisk.calls import Call, CallDriver, agi_test_dialplan
from ivrkit.qa.asterisk.sandbox import SOUNDS, AsteriskInstance
from ivrkit.server.listener import AgiListener
from tests.asterisk.conftest import AgiSession, wav
from tests.asterisk.recording import RecordingHandler, serving

pytestmark = pytest.mark.asterisk

FLOW = """
flow: lang
languages: [en, de]
start: pick
defaults: {timeout: 1500ms, retries: 0}
steps:
  pick:
    language: {choices: {"1": en, "2": de}}
    next: amounts
  amounts:
    play: [balance-is, {number: 21}, {number: 1234}, {date: "2026-11-23"}, {time: "14:30"}, {time: "01:05"}]
    next: bye
  bye:
    hangup: {play: goodbye, outcome: done}
"""
PROMPTS = ("language-option", "balance-is", "goodbye")
MISSING = re.compile(r"does not exist|Unable to (open|play)|not found", re.IGNORECASE)
# What Asterisk 22's German grammar (main/say.c) plays for each value, file by file
NUMBER_21 = ["digits/1-and", "digits/20"]
NUMBER_1234 = ["digits/1N", "digits/thousand", "digits/2", "digits/hundred", "digits/4-and", "digits/30"]
DATE = ["digits/day-1", "digits/3-and", "digits/h-20", "digits/mon-10", "digits/2", "digits/thousand",
        "digits/6-and", "digits/20"]  # Montag, dreiundzwanzigste November zweitausendsechsundzwanzig
TIME_14_30 = ["digits/14", "digits/oclock", "digits/30"]  # vierzehn Uhr dreißig
TIME_01_05 = ["digits/1N", "digits/oclock", "digits/5"]  # ein Uhr fünf


@pytest.fixture(scope="module")
def german(asterisk: AsteriskInstance) -> Iterator[Path]:
    """The test prompts in both languages, and the German stand-ins (removed again if this module made them)."""
    for language in ("en", "de"):
        for index, name in enumerate(PROMPTS):
            asterisk.install_sound(f"ivrkit/{name}.wav", wav(0.3, 440 + 110 * index), language=language)
    folder = asterisk.root.host_path(SOUNDS / "de")
    made = install_stand_ins(folder, "de")
    yield folder
    for link in made:
        link.unlink(missing_ok=True)


@pytest.fixture
def server(tmp_path: Path, german: Path) -> Iterator[tuple[AgiListener, RecordingHandler]]:
    with serving(tmp_path, "lang", FLOW) as served:
        yield served


def played_by(log: str, call: Call) -> list[tuple[str, str]]:
    """(file, language) of each sound Asterisk played on the call's IVR channel, from its verbose log lines."""
    channel = re.escape(call.ivr_channel or "?")
    return [(name, language) for name, language in
            re.findall(rf"<{channel}> Playing '([^']+?)\.\w+' \(language '([^']*)'\)", log)]


def test_a_caller_who_picks_german_hears_german_prompts_numbers_dates_and_times(
    asterisk: AsteriskInstance, call_driver: CallDriver, server: tuple[AgiListener, RecordingHandler]
) -> None:
    listener, handler = server
    mark = len(asterisk.log_text())
    dialplan = agi_test_dialplan(listener.port, agi_path="lang").replace(
        "IVRKIT_OUTCOME: ${IVRKIT_OUTCOME}", "IVRKIT_OUTCOME: ${IVRKIT_OUTCOME},LANGUAGE: ${CHANNEL(language)}")
    asterisk.reload_dialplan(dialplan)
    call = call_driver.place("ivr", script=["2"]).wait(60)  # 2 while "For English, press" plays: German
    report = call.test_report
    assert report is not None and report["IVRKIT_OUTCOME"] == "done", call.describe()
    assert report["LANGUAGE"] == "de"  # CHANNEL(language) after the flow: the dialplan speaks German too
    assert ["SET", "VARIABLE", "CHANNEL(language)", "de"] in [command.args for command in call.agi_commands]
    assert call.prompts_streamed == ["en/ivrkit/language-option", "de/ivrkit/balance-is", "de/ivrkit/goodbye"]
    log = asterisk.log_text()[mark:]
    said = [name for name, language in played_by(log, call) if name.startswith("digits/")]
    assert said == [*NUMBER_21, *NUMBER_1234, *DATE, *TIME_14_30, *TIME_01_05], log
    assert {language for name, language in played_by(log, call) if name.startswith("digits/")} == {"de"}
    assert [line for line in log.splitlines() if MISSING.search(line)] == []
    assert listener.wait_idle(5)
    result = handler.results[-1]
    assert result is not None and result.state.language == "de"
    assert [e.detail for e in result.journal.of_kind("language")] == [{"language": "de", "previous": "en",
                                                                       "by": "choice"}]


def test_without_the_stand_in_german_thousands_are_missing_a_word(
    asterisk: AsteriskInstance, call_driver: CallDriver, german: Path, fastagi  # type: ignore[no-untyped-def]
) -> None:
    hidden = [path for path in sorted((german / "digits").glob("1N.*"))]
    for path in hidden:
        path.rename(path.with_name(f".hidden-{path.name}"))
    try:
        def agi(session: AgiSession) -> None:
            session.command("SET VARIABLE CHANNEL(language) de")
            session.command('SAY NUMBER 1234 ""')
            session.command("SET VARIABLE IVRKIT_RESULT hangup")

        peer = fastagi(agi)
        mark = len(asterisk.log_text())
        asterisk.reload_dialplan(agi_test_dialplan(peer.port))
        call_driver.place("ivr", script=[]).wait(30)
        peer.check()
        warnings = [line for line in asterisk.log_text()[mark:].splitlines() if MISSING.search(line)]
        assert any("digits/1N does not exist" in line for line in warnings), warnings
    finally:
        for path in hidden:
            path.with_name(f".hidden-{path.name}").rename(path)
