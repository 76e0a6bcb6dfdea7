"""The catalog: texts, recordings of any format, where each entry is, lengths, and located mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrkit.flow.diagnostics import Location
from ivrkit.prompts.catalog import DEFAULT_SECONDS, PromptCatalog, estimate_seconds
from ivrkit.prompts.manifest import Manifest, ManifestEntry
from tests.prompts.audio import tone


@pytest.fixture
def prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # locations are relative to the working directory, as for flows
    (tmp_path / "prompts" / "en").mkdir(parents=True)
    return Path("prompts")


def write(prompts: Path, language: str, text: str) -> None:
    (prompts / language).mkdir(exist_ok=True)
    (prompts / language / "catalog.yaml").write_text(text)


def test_texts_recordings_and_locations(prompts: Path) -> None:
    write(prompts, "en", 'welcome: "Welcome."\n'
                         'menu: {text: "Press 1.", file: menu-take3.mp3}\n'
                         'beep:\n'
                         'goodbye: Goodbye.\n')
    (prompts / "en" / "welcome.ogg").write_bytes(b"ogg")
    (prompts / "en" / "menu-take3.mp3").write_bytes(b"mp3")
    (prompts / "en" / "beep.FLAC").write_bytes(b"flac")
    catalog = PromptCatalog.load(prompts)
    entries = catalog.languages["en"]
    assert [(e.id, e.text, e.source, e.location) for e in entries.values()] == [
        ("welcome", "Welcome.", prompts / "en" / "welcome.ogg", Location("prompts/en/catalog.yaml", 1, 1)),
        ("menu", "Press 1.", prompts / "en" / "menu-take3.mp3", Location("prompts/en/catalog.yaml", 2, 1)),
        ("beep", "", prompts / "en" / "beep.FLAC", Location("prompts/en/catalog.yaml", 3, 1)),
        ("goodbye", "Goodbye.", None, Location("prompts/en/catalog.yaml", 4, 1)),
    ]
    assert not catalog.diagnostics.items
    assert catalog.text("beep", "en") == "[beep]" and catalog.text("welcome", "en") == "Welcome."


def test_only_language_folders_are_languages(prompts: Path) -> None:
    for folder in ("de", "pt_BR", "zh-Hans", "sounds", ".git", "build", "EN"):
        write(prompts, folder, "welcome: Hi.\n")
    assert sorted(PromptCatalog.load(prompts).languages) == ["de", "en", "pt_BR", "zh-Hans"]


def test_lookup_helpers_keep_working(prompts: Path) -> None:
    write(prompts, "en", "welcome: Welcome.\nonly-en: English.\n")
    write(prompts, "de", "welcome: Willkommen.\n")
    catalog = PromptCatalog.load(prompts)
    assert catalog.has("welcome", "de") and not catalog.has("only-en", "de")
    assert catalog.language_for("only-en", ["de", "en"]) == "en"
    assert catalog.language_for("unknown", ["de", "en"]) == "de"
    assert catalog.entry("welcome", "de") is not None and catalog.entry("welcome", "fr") is None
    assert PromptCatalog.load(prompts / "missing").languages == {}


def test_duration_from_the_manifest_then_a_wav_then_the_text(prompts: Path) -> None:
    write(prompts, "en", "built: A built prompt.\nrecorded: A recording.\ntext: One two three four five.\n")
    tone(prompts / "en" / "recorded.wav", seconds=0.75)
    (prompts / "en" / "built.mp3").write_bytes(b"not read: the manifest knows")
    manifest = Manifest()
    manifest.set("en", "built", ManifestEntry(source="en/built.mp3", key="k", duration=1.234))
    manifest.save(prompts)
    catalog = PromptCatalog.load(prompts)
    assert catalog.duration("built", "en") == 1.234
    assert catalog.duration("recorded", "en") == 0.75
    assert catalog.duration("text", "en") == estimate_seconds("One two three four five.") == 2.4
    assert catalog.duration("unknown", "en") == DEFAULT_SECONDS


def test_a_broken_manifest_is_reported_and_lengths_fall_back(prompts: Path) -> None:
    write(prompts, "en", "welcome: One two three four five.\n")
    (prompts / "manifest.json").write_text("{")
    catalog = PromptCatalog.load(prompts)
    assert catalog.duration("welcome", "en") == 2.4
    [problem] = catalog.diagnostics.errors
    assert problem.location == Location("prompts/manifest.json", 1, 1)
    assert "prompts/manifest.json:1:2: not valid JSON" in problem.message


@pytest.mark.parametrize(("text", "expected"), [
    ("- welcome\n",
     "prompts/en/catalog.yaml:1:1: error: a catalog is a mapping of prompt ids to texts, got a list\n"
     "    - welcome\n    ^\n"
     '    hint: write one prompt per line: welcome: "Welcome to Example Telecom."'),
    ("welcome: [Welcome, friend]\n",
     "prompts/en/catalog.yaml:1:10: error: prompt 'welcome' should be its text or {text, file}, got a list\n"
     "    welcome: [Welcome, friend]\n             ^\n"
     '    hint: quote the text: welcome: "Welcome." or welcome: {text: "Welcome.", file: welcome-take2.mp3}'),
    ("seven: 7\n",
     "prompts/en/catalog.yaml:1:8: error: prompt 'seven' should be its text or {text, file}, got the number 7\n"
     "    seven: 7\n           ^\n"
     '    hint: quote the text: seven: "Welcome." or seven: {text: "Welcome.", file: seven-take2.mp3}'),
    ("welcome: {txt: Welcome.}\n",
     "prompts/en/catalog.yaml:1:11: error: unknown key 'txt' in prompt 'welcome'\n"
     "    welcome: {txt: Welcome.}\n              ^\n    hint: did you mean 'text'?"),
    ("welcome: {text: {a: b}}\n",
     "prompts/en/catalog.yaml:1:17: error: the text of prompt 'welcome' should be text, got a mapping\n"
     "    welcome: {text: {a: b}}\n                    ^\n"
     '    hint: quote it: text: "..."'),
    ("welcome: {text: Hi., file: welcome-tak3.mp3}\n",
     "prompts/en/catalog.yaml:1:28: error: recording 'welcome-tak3.mp3' of prompt 'welcome' does not exist in "
     "prompts/en\n    welcome: {text: Hi., file: welcome-tak3.mp3}\n                               ^\n"
     "    hint: did you mean 'welcome-take3.mp3'?"),
    ("welcome: Hi.\nwelcome: Hello.\n",
     "prompts/en/catalog.yaml:2:1: error: duplicate key 'welcome' (first defined at line 1)\n"
     "    welcome: Hello.\n    ^\n    hint: YAML keeps only the last one; remove or rename one of them"),
    ("welcome: {text: Hi.\n",
     "prompts/en/catalog.yaml:2:1: error: invalid YAML: expected ',' or '}', but got '<stream end>'"),
])
def test_mistakes_are_located_not_crashes(prompts: Path, text: str, expected: str) -> None:
    write(prompts, "en", text)
    (prompts / "en" / "welcome-take3.mp3").write_bytes(b"mp3")
    catalog = PromptCatalog.load(prompts)
    assert catalog.diagnostics.render().startswith(expected)
    assert catalog.diagnostics.errors


def test_a_prompt_with_two_recordings_is_an_error(prompts: Path) -> None:
    write(prompts, "en", "welcome: Welcome.\n")
    for name in ("welcome.wav", "welcome.mp3"):
        (prompts / "en" / name).write_bytes(b"audio")
    catalog = PromptCatalog.load(prompts)
    assert catalog.diagnostics.render() == (
        "prompts/en/catalog.yaml:1:1: error: prompt 'welcome' has 2 recordings: welcome.wav, welcome.mp3\n"
        "    welcome: Welcome.\n    ^\n"
        "    hint: delete the ones that are not the recording, or name one with "
        "`welcome: {text: ..., file: welcome.wav}`")


def test_a_recording_without_an_entry_is_a_prompt_with_a_warning(prompts: Path) -> None:
    write(prompts, "en", "welcome: Welcome.\nmenu: {text: Press 1., file: menu-final.ogg}\n")
    for name in ("welcome.wav", "menu-final.ogg", "goodbye.m4a", "notes.txt"):
        (prompts / "en" / name).write_bytes(b"x")
    catalog = PromptCatalog.load(prompts)
    assert sorted(catalog.languages["en"]) == ["goodbye", "menu", "welcome"]
    goodbye = catalog.languages["en"]["goodbye"]
    assert (goodbye.text, goodbye.source) == ("", prompts / "en" / "goodbye.m4a")
    [warning] = catalog.diagnostics.warnings
    assert not catalog.diagnostics.errors
    assert warning.location == Location("prompts/en/goodbye.m4a", 1, 1)
    assert warning.message == ("recording 'goodbye.m4a' has no entry in catalog.yaml: the simulator cannot show "
                               "what it says")
    assert warning.hint == 'add `goodbye: "<what it says>"` to prompts/en/catalog.yaml'


def test_an_empty_or_comment_only_catalog_is_empty(prompts: Path) -> None:
    write(prompts, "en", "# nothing recorded yet\n")
    write(prompts, "de", "")
    catalog = PromptCatalog.load(prompts)
    assert catalog.languages == {"de": {}, "en": {}}
    assert not catalog.diagnostics.items
