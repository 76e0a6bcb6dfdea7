"""prompts/settings.yaml: defaults, every setting read, mistakes reported at their line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrkit.prompts.settings import (
    BuildSettings,
    PromptSettings,
    PromptSettingsError,
    SynthSettings,
    TrimSettings,
    WarnSettings,
    parse_prompt_settings,
)


def test_no_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    settings = PromptSettings.load(tmp_path)
    assert settings.source is None
    assert settings.build == BuildSettings(out="../build/prompts", formats=(), loudness=-20.0, peak=-1.0,
                                           trim=TrimSettings(-45.0, 0.15), warn=WarnSettings(2.0, 6.0, -0.1))
    assert settings.synth == SynthSettings("espeak-ng", {}, 150)
    assert settings.build.all_formats == ("wav",)
    assert settings.out_dir(tmp_path) == tmp_path / "../build/prompts"


def test_every_setting_is_read(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text(
        "build:\n"
        "  out: built\n"
        "  formats: [sln16, ulaw, sln16, wav]\n"
        "  loudness: null\n"
        "  peak: -3\n"
        "  trim: {threshold: -50, keep: 200ms}\n"
        "  warn: {long_silence: 1.5s, loudness_spread: 4, clipping: -0.5}\n"
        "synth:\n"
        "  voices: {en: en-gb, de: de}\n"
        "  speed: 170\n"
    )
    settings = PromptSettings.load(tmp_path)
    assert settings.build == BuildSettings("built", ("sln16", "ulaw", "wav"), None, -3.0,
                                           TrimSettings(-50.0, 0.2), WarnSettings(1.5, 4.0, -0.5))
    assert settings.build.all_formats == ("wav", "sln16", "ulaw")
    assert settings.synth == SynthSettings("espeak-ng", {"en": "en-gb", "de": "de"}, 170)
    assert settings.out_dir(tmp_path) == tmp_path / "built"


def test_a_partial_section_keeps_the_other_defaults() -> None:
    settings = parse_prompt_settings("build: {formats: sln}\n")
    assert settings.build.formats == ("sln",)
    assert settings.build.loudness == -20.0 and settings.build.trim == TrimSettings()
    assert settings.synth == SynthSettings()
    assert parse_prompt_settings("# nothing yet\n").build == BuildSettings()


def test_the_voice_of_a_language() -> None:
    synth = SynthSettings(voices={"en": "en-us", "de_AT": "de"})
    assert synth.voice("en") == "en-us"
    assert synth.voice("en_GB") == "en-us"  # the base language's voice
    assert synth.voice("de_AT") == "de"
    assert synth.voice("fr") == "fr"  # espeak-ng knows the language codes
    assert synth.voice("pt_BR") == "pt-br"


def test_the_build_key_follows_what_changes_the_audio_and_not_the_out_folder() -> None:
    base = BuildSettings()
    assert base.key() == BuildSettings(out="elsewhere").key()
    assert base.key() == BuildSettings(formats=("wav",)).key()
    for changed in (BuildSettings(formats=("sln16",)), BuildSettings(loudness=-18), BuildSettings(peak=-2),
                    BuildSettings(trim=TrimSettings(keep=0.1)), BuildSettings(warn=WarnSettings(long_silence=1))):
        assert changed.key() != base.key()


@pytest.mark.parametrize(("text", "expected"), [
    ("build:\n  loudnes: -20\n",
     "prompts/settings.yaml:2:3: error: unknown option 'loudnes' in build settings\n"
     "      loudnes: -20\n      ^\n    hint: did you mean 'loudness'?"),
    ("build:\n  formats: [sln16, mp3]\n",
     "prompts/settings.yaml:2:20: error: 'mp3' is not one of: sln, sln16, ulaw, alaw, gsm, g722, wav\n"
     "      formats: [sln16, mp3]\n                       ^"),
    ("build: {peak: 3}\n",
     "prompts/settings.yaml:1:15: error: 3 is out of range (-30 to 0)\n    build: {peak: 3}\n                  ^"),
    ("build: {loudness: loud}\n",
     "prompts/settings.yaml:1:19: error: expected a level in dBFS, got 'loud'\n"
     "    build: {loudness: loud}\n                      ^\n    hint: write a number such as -20, or null for none"),
    ("build:\n  trim: {keep: forever}\n",
     "prompts/settings.yaml:2:16: error: expected a duration such as 5s, 500ms or 2m, got 'forever'\n"
     "      trim: {keep: forever}\n                   ^"),
    ("synth: {speed: fast}\n",
     "prompts/settings.yaml:1:16: error: expected a whole number, got 'fast'\n"
     "    synth: {speed: fast}\n                   ^"),
    ("- build\n",
     "prompts/settings.yaml:1:1: error: the prompt settings are a mapping, got a list\n"
     "    - build\n    ^\n    hint: start with 'build:' or 'synth:'"),
])
def test_mistakes_are_located(text: str, expected: str) -> None:
    with pytest.raises(PromptSettingsError) as raised:
        parse_prompt_settings(text, "prompts/settings.yaml")
    assert str(raised.value) == expected


def test_load_names_the_file_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "settings.yaml").write_text("synth: {engine: festival}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PromptSettingsError, match=r"^prompts/settings.yaml:1:17: error: 'festival' is not one of: "
                       r"espeak-ng"):
        PromptSettings.load(Path("prompts"))
