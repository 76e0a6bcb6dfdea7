"""Per-language rules: how a call's language is chosen, where prompts are looked up, what Asterisk is asked to
say and how the simulator shows it, and the Asterisk sounds a language needs (with stand-ins for the missing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ivrkit.prompts.languages import (
    RULES,
    base_language,
    call_language,
    install_stand_ins,
    lookup_order,
    missing_sounds,
    rules_for,
    say_words,
    spoken_by,
    spoken_seconds,
    stand_in,
)

# -- the call's language --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "languages", "own", "expected"),
    [
        ("de", ["en", "de"], "en", "de"),
        ("de_AT", ["en", "de"], "en", "de_AT"),  # the flow speaks its base language
        ("de_AT", ["en", "de_AT"], "en", "de_AT"),
        ("de", ["en", "de_AT"], "en", "en"),  # a regional flow language does not serve the plain one
        ("fr", ["en", "de"], "en", "en"),
        ("", ["en", "de"], "de", "de"),
        ("de;x", ["en", "de"], "en", "en"),  # not a language code: never trusted
        ("de\nEXEC", ["en", "de"], "en", "en"),
    ],
)
def test_a_call_takes_the_channels_language_only_when_the_flow_speaks_it(
    channel: str, languages: list[str], own: str, expected: str
) -> None:
    assert call_language(channel, languages, own) == expected


def test_base_languages_and_who_speaks_them() -> None:
    assert [base_language(code) for code in ("de_AT", "pt-BR", "en", "yue")] == ["de", "pt", "en", "yue"]
    assert spoken_by(["en", "de"], "de_CH") == "de"
    assert spoken_by(["en", "de"], "") is None


def test_prompts_are_looked_up_in_the_calls_language_its_base_then_the_flows() -> None:
    assert lookup_order("de_AT", "en") == ("de_AT", "de", "en")
    assert lookup_order("de", "en") == ("de", "en")
    assert lookup_order("en_GB", "en") == ("en_GB", "en")


# -- what Asterisk is asked to say ----------------------------------------------------------------------------


def test_date_and_time_formats_per_language() -> None:
    english, german = rules_for("en"), rules_for("de_AT")
    assert [english.date_time_format(kind) for kind in ("date", "time", "datetime")] == [
        "ABdY", "IMp", "ABdY 'digits/at' IMp"]
    assert [german.date_time_format(kind) for kind in ("date", "time", "datetime")] == [
        "AdBY", "HM", "AdBY 'digits/at' HM"]
    unknown = rules_for("fr")
    assert (unknown.time_format, unknown.package, unknown.sounds) == ("HM", "", ())  # 24 hours, nothing known


# -- what the simulator shows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "english", "german"),
    [
        ("number", "21", "twenty-one", "einundzwanzig"),
        ("number", "1234", "one thousand, two hundred and thirty-four", "eintausendzweihundertvierunddreißig"),
        ("number", "-3", "minus three", "minus drei"),
        ("digits", "0301*#", "zero three zero one star hash", "null drei null eins Stern Raute"),
        ("alpha", "ab 1", "A B 1", "A B 1"),
        ("date", "2026-11-30", "Monday, November thirtieth, twenty twenty-six",
         "Montag, dreißigste November zweitausendsechsundzwanzig"),
        ("time", "14:00", "two o'clock PM", "vierzehn Uhr"),
        ("time", "14:30", "two thirty PM", "vierzehn Uhr dreißig"),
        ("time", "08:05", "eight oh five AM", "acht Uhr fünf"),
        ("time", "00:15:00", "twelve fifteen AM", "null Uhr fünfzehn"),
        ("time", "01:00", "one o'clock AM", "ein Uhr"),  # German: "ein Uhr", not "eins Uhr"
        ("datetime", "2026-12-24T14:00:00+01:00", "Thursday, December twenty-fourth, twenty twenty-six at two "
         "o'clock PM", "Donnerstag, vierundzwanzigste Dezember zweitausendsechsundzwanzig um vierzehn Uhr"),
    ],
)
def test_words_the_caller_hears(kind: str, value: str, english: str, german: str) -> None:
    assert say_words(kind, value, "en") == english
    assert say_words(kind, value, "de") == german
    assert say_words(kind, value, "de_AT") == german


def test_a_language_without_rules_has_num2words_numbers_and_iso_dates() -> None:
    assert say_words("number", "21", "fr") == "vingt et un"
    assert say_words("number", "21", "xx") == "21"  # num2words does not know it: as written
    assert say_words("date", "2026-11-30", "fr") == "2026-11-30"
    assert say_words("time", "14:05", "fr") == "14:05"
    assert say_words("digits", "12#", "xx") == "1 2 #"


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("number", "lots", "cannot say 'lots' as a number"),
        ("number", "4.5", "cannot say '4.5' as a number"),
        ("digits", "12a", "cannot say '12a' as digits"),
        ("date", "next tuesday", "cannot say 'next tuesday' as a date: write it as ISO text"),
        ("time", "25:00", "cannot say '25:00' as a time"),
    ],
)
def test_values_the_pbx_could_not_say_are_refused_as_on_a_live_call(kind: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        say_words(kind, value, "de")


def test_saying_takes_as_long_as_the_syllables() -> None:
    assert spoken_seconds(say_words("number", "21", "de")) == spoken_seconds(say_words("number", "21", "en"))
    long = spoken_seconds(say_words("number", "1234", "de"))
    assert long > spoken_seconds(say_words("number", "7", "de")) and long == 2.7  # 10 vowel groups, 4 a second
    assert spoken_seconds("") == 0.45  # never nothing


# -- the Asterisk sounds a language needs ---------------------------------------------------------------------


def sounds(folder: Path, *names: str) -> Path:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"gsm")
    return folder


def test_missing_sounds_are_those_in_no_format(tmp_path: Path) -> None:
    everything = [f"{name}.gsm" for name in RULES["de"].sounds if name != "digits/1N"]
    german = sounds(tmp_path / "de", *everything, "digits/ein.gsm")
    assert missing_sounds(german, "de") == ["digits/1N"]
    (german / "digits" / "7.gsm").unlink()
    sounds(german, "digits/7.ulaw")  # another format will do
    assert missing_sounds(german, "de") == ["digits/1N"]
    (german / "digits" / "7.ulaw").unlink()
    assert missing_sounds(german, "de") == ["digits/7", "digits/1N"]
    assert missing_sounds(tmp_path / "nowhere", "fr") == []  # nothing known about French


def test_stand_ins_link_the_sound_that_says_the_same_in_each_of_its_formats(tmp_path: Path) -> None:
    german = sounds(tmp_path / "de", "digits/ein.gsm", "digits/ein.wav", "digits/1.gsm")
    assert stand_in("de_AT", "digits/1N") == "digits/ein" and stand_in("en", "digits/1N") is None
    made = install_stand_ins(german, "de")
    assert made == [german / "digits/1N.gsm", german / "digits/1N.wav"]
    assert [os.readlink(link) for link in made] == ["ein.gsm", "ein.wav"]  # relative: the folder can move
    assert "digits/1N" not in missing_sounds(german, "de")
    assert install_stand_ins(german, "de") == []  # present now: left alone
    assert install_stand_ins(sounds(tmp_path / "bare", "digits/1.gsm"), "de") == []  # nothing to link to
    assert install_stand_ins(tmp_path / "en", "en") == []
