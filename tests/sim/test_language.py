"""Spoken values in the simulator: shown in words of the call's language, timed by those words, and refused
where a live PBX would refuse them; and the example project's German path through ``ivrkit simulate``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrkit.cli import main
from ivrkit.prompts.languages import say_words, spoken_seconds
from tests.calls import Call, of_kind

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ["--flows", str(ROOT / "flows"), "--prompts", str(ROOT / "prompts")]
SAYS = """
flow: says
languages: [en, de]
start: say
steps:
  say:
    play: [{number: 1234}, {digits: "030"}, {date: "2026-11-30"}, {time: "14:30"}, {number: "{{ vars.n }}"}]
    next: bye
  bye: {hangup: true}
variables: {n: 7}
"""


def test_the_transcript_shows_spoken_values_in_words_of_the_calls_language(call: Call) -> None:
    german = call(SAYS, language="de").transcript()
    assert 'say=number value=1234 language=de  "eintausendzweihundertvierunddreißig"' in german
    assert 'say=digits value=030 language=de  "null drei null"' in german
    assert 'say=date value=2026-11-30 language=de  "Montag, dreißigste November zweitausendsechsundzwanzig"' in german
    assert 'say=time value=14:30 language=de  "vierzehn Uhr dreißig"' in german
    english = call(SAYS, language="en").transcript()
    assert 'say=time value=14:30 language=en  "two thirty PM"' in english
    assert "eintausend" not in call(SAYS, language="en").transcript(with_text=False)


def test_a_spoken_value_takes_as_long_as_its_words(call: Call) -> None:
    for language in ("en", "de"):
        result = call(SAYS, language=language)
        ends = [event.at for event in result.events if event.kind == "played"]
        lengths = [round(end - start, 2) for start, end in zip([0.0, *ends], ends)]
        words = [say_words(kind, value, language) for kind, value in
                 (("number", "1234"), ("digits", "030"), ("date", "2026-11-30"), ("time", "14:30"), ("number", "7"))]
        assert lengths == [spoken_seconds(text) for text in words]
    assert call(SAYS, language="de").seconds != call(SAYS, language="en").seconds


@pytest.mark.parametrize("value", ["seven", "4.5", ""])
def test_a_value_the_pbx_could_not_say_fails_the_step_as_live(call: Call, value: str) -> None:
    result = call(SAYS.replace("n: 7", f"n: '{value}'"))
    assert result.outcome == "error"
    assert of_kind(result, "error")[0]["message"] == f"cannot say '{value}' as a number"


def test_simulate_the_german_path_of_the_example_support_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "support", "--keys", "9 2 1 1 12345678 1 h", *PROJECT]) == 0
    out = capsys.readouterr().out
    assert 'prompt=language-option language=en  "For English, press"' in out
    assert 'say=digits value=2 language=de  "zwei"' in out
    assert "language   support.choose_language      language=de previous=en by=choice" in out
    assert 'prompt=balance-is language=de  "Ihr Kontostand beträgt"' in out
    assert 'say=number value=234 language=de  "zweihundertvierunddreißig"' in out


def test_simulate_a_german_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "billing", "--language", "de", "--keys", "12345678 1 1 50# 1 h", *PROJECT]) == 0
    out = capsys.readouterr().out
    assert 'prompt=billing-welcome language=de  "Willkommen bei der Rechnungs-Hotline von Example Telecom."' in out
    assert 'say=number value=50 language=de  "fünfzig"' in out and "language=en" not in out


def test_interactive_mode_says_values_in_words(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    typed = iter(["9", "2", "1", "1", "12345678", "1", "h"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    assert main(["simulate", "support", *PROJECT]) == 0
    out = capsys.readouterr().out
    assert "♪ (digits) 2: zwei" in out and "♪ language-option: Für Deutsch drücken Sie die" in out
    assert "♪ (number) 234: zweihundertvierunddreißig" in out
