"""ivrkit prompts build: recordings to built files and the manifest, incrementally, one failure at a time."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ivrkit.prompts.build import BuildReport, PromptBuildError, build_prompts
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.prompts.manifest import Manifest, ManifestEntry
from ivrkit.prompts.settings import BuildSettings, PromptSettings
from tests.prompts.audio import convert, measure, needs_ffmpeg, padded, tone

pytestmark = needs_ffmpeg
PROMPTS = Path("prompts")
OUT = Path("build/prompts")


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (PROMPTS / "en").mkdir(parents=True)
    return tmp_path


def catalog(language: str, text: str) -> None:
    (PROMPTS / language).mkdir(exist_ok=True)
    (PROMPTS / language / "catalog.yaml").write_text(text)


def build(settings: PromptSettings | None = None, *, languages: list[str] | None = None,
          only: list[str] | None = None) -> tuple[BuildReport, list[str]]:
    lines: list[str] = []
    report = build_prompts(PROMPTS, settings or PromptSettings(), languages=languages, only=only,
                           progress=lines.append)
    return report, lines


def statuses(report: BuildReport) -> dict[str, str]:
    return {f"{r.language}/{r.prompt}": r.status for r in report.results}


def manifest() -> Manifest:
    return Manifest.load(PROMPTS)


def entry(language: str, prompt: str) -> ManifestEntry:
    found = Manifest.load(PROMPTS).entry(language, prompt)
    assert found is not None, f"{language}/{prompt} is not in the manifest"
    return found


def with_formats(*formats: str) -> PromptSettings:
    return PromptSettings(BuildSettings(formats=formats))


def two_prompts() -> None:
    catalog("en", "welcome: Welcome.\nmenu: Press 1.\ngoodbye: Goodbye.\n")
    convert(padded(PROMPTS / "en" / "welcome.wav", 1.0, -10.0), "mp3")
    tone(PROMPTS / "en" / "menu.wav", 0.8, -20.0, rate=44100, channels=2)


def test_recordings_are_built_and_recorded_in_the_manifest() -> None:
    two_prompts()
    report, lines = build(with_formats("sln16", "ulaw"))
    assert lines == ["[1/2] en/welcome: built 1.30 s", "[2/2] en/menu: built 0.80 s"]
    assert report.summary() == "2 built, 0 unchanged, 0 failed" and report.ok
    for prompt in ("welcome", "menu"):
        assert sorted(p.name for p in OUT.joinpath("en").glob(f"{prompt}.*")) == [
            f"{prompt}.sln16", f"{prompt}.ulaw", f"{prompt}.wav"]
        out = measure(OUT / "en" / f"{prompt}.wav")
        assert (out.rate, out.channels, out.sample_width) == (8000, 1, 2)
        assert out.loudness == pytest.approx(-20.0, abs=0.5)
    data = json.loads((PROMPTS / "manifest.json").read_text())
    assert data["out"] == "../build/prompts" and sorted(data["prompts"]["en"]) == ["menu", "welcome"]
    welcome = entry("en", "welcome")
    assert (welcome.source, welcome.placeholder, welcome.duration, welcome.formats, welcome.warnings) == (
        "en/welcome.mp3", False, 1.3, ["wav", "sln16", "ulaw"], [])
    assert welcome.loudness == pytest.approx(-20.0, abs=0.1)
    assert welcome.source_loudness == pytest.approx(-13.0, abs=0.5)
    assert welcome.peak == pytest.approx(-17.0, abs=0.5)
    # The simulator now plays the mp3 prompt as long as the built audio lasts.
    assert PromptCatalog.load(PROMPTS).duration("welcome", "en") == 1.3


def test_only_what_changed_is_rebuilt() -> None:
    two_prompts()
    build()
    stamps = {p.name: p.stat().st_mtime_ns for p in OUT.joinpath("en").iterdir()}
    report, lines = build()
    assert statuses(report) == {"en/welcome": "unchanged", "en/menu": "unchanged"}
    assert lines == ["[1/2] en/welcome: unchanged 1.30 s", "[2/2] en/menu: unchanged 0.80 s"]
    assert {p.name: p.stat().st_mtime_ns for p in OUT.joinpath("en").iterdir()} == stamps

    tone(PROMPTS / "en" / "menu.wav", 0.6, -20.0)  # a new take
    report, _ = build()
    assert statuses(report) == {"en/welcome": "unchanged", "en/menu": "built"}
    assert entry("en", "menu").duration == 0.6

    (OUT / "en" / "welcome.wav").unlink()
    report, _ = build()
    assert statuses(report) == {"en/welcome": "built", "en/menu": "unchanged"}
    assert (OUT / "en" / "welcome.wav").is_file()

    report, _ = build(PromptSettings(BuildSettings(loudness=-18.0)))
    assert statuses(report) == {"en/welcome": "built", "en/menu": "built"}
    assert measure(OUT / "en" / "menu.wav").loudness == pytest.approx(-18.0, abs=0.5)


def test_a_missing_extra_format_is_built_and_a_dropped_one_deleted() -> None:
    two_prompts()
    build(with_formats("gsm"))
    (OUT / "en" / "menu.gsm").unlink()
    report, _ = build(with_formats("gsm"))
    assert statuses(report) == {"en/welcome": "unchanged", "en/menu": "built"}
    report, _ = build()
    assert statuses(report) == {"en/welcome": "built", "en/menu": "built"}
    assert sorted(p.name for p in OUT.joinpath("en").iterdir()) == ["menu.wav", "welcome.wav"]
    assert entry("en", "menu").formats == ["wav"]


def test_prompts_gone_from_the_catalog_are_removed_with_their_files() -> None:
    two_prompts()
    catalog("de", "welcome: Willkommen.\n")
    tone(PROMPTS / "de" / "welcome.wav", 0.5)
    build(with_formats("sln"))
    catalog("en", "welcome: Welcome.\ngoodbye: Goodbye.\n")
    (PROMPTS / "en" / "menu.wav").unlink()
    report, lines = build(with_formats("sln"))
    assert statuses(report) == {"en/welcome": "unchanged", "de/welcome": "unchanged", "en/menu": "removed"}
    assert "en/menu: removed" in lines
    assert not list(OUT.joinpath("en").glob("menu.*"))
    assert manifest().entry("en", "menu") is None

    (PROMPTS / "en" / "welcome.mp3").unlink()  # the text stays: a placeholder can be made of it
    report, _ = build()
    assert statuses(report)["en/welcome"] == "removed"
    assert not list(OUT.joinpath("en").glob("welcome.*"))

    shutil.rmtree(PROMPTS / "de")
    report, _ = build()
    assert statuses(report) == {"de/welcome": "removed"}
    assert manifest().prompts == {}
    assert not list(OUT.joinpath("de").iterdir())


def test_an_unreadable_recording_fails_alone() -> None:
    two_prompts()
    catalog("en", "welcome: Welcome.\nbroken: Broken.\nmenu: Press 1.\n")
    (PROMPTS / "en" / "broken.mp3").write_bytes(b"this is not an mp3 " * 50)
    report, lines = build()
    assert statuses(report) == {"en/welcome": "built", "en/broken": "failed", "en/menu": "built"}
    [failed] = report.failed
    assert failed.error is not None and failed.error.startswith("en/broken.mp3: ffmpeg cannot read it: ")
    assert lines[1] == f"[2/3] en/broken: FAILED: {failed.error}"
    assert report.summary() == "2 built, 0 unchanged, 1 failed" and not report.ok
    assert manifest().entry("en", "broken") is None and manifest().entry("en", "menu") is not None
    assert not list(OUT.joinpath("en").glob("broken.*"))


def test_languages_and_only_narrow_the_build() -> None:
    two_prompts()
    catalog("de", "welcome: Willkommen.\n")
    tone(PROMPTS / "de" / "welcome.wav", 0.5)
    report, lines = build(languages=["de"])
    assert statuses(report) == {"de/welcome": "built"} and lines == ["[1/1] de/welcome: built 0.50 s"]
    report, _ = build(only=["welcome"])
    assert statuses(report) == {"en/welcome": "built", "de/welcome": "unchanged"}
    catalog("en", "menu: Press 1.\n")
    report, _ = build(only=["menu"])  # a partial build removes nothing
    assert statuses(report) == {"en/menu": "built"} and manifest().entry("en", "welcome") is not None
    with pytest.raises(PromptBuildError, match=r"^no catalog for fr in prompts \(languages: de, en\)$"):
        build(languages=["fr", "en"])


def test_a_recording_far_from_the_rest_of_its_language(tmp_path: Path) -> None:
    catalog("en", "".join(f"p{n}: Prompt {n}.\n" for n in range(5)))
    for n, level in enumerate((-12.0, -13.0, -11.0, -26.0, -3.0)):
        tone(PROMPTS / "en" / f"p{n}.wav", 0.3, level)
    report, _ = build()
    warned = {prompt: warning for _, prompt, warning in report.warnings}
    assert sorted(warned) == ["p3", "p4"]
    assert warned["p3"] == ("loudness: recorded 14.0 dB quieter than the median of the 'en' recordings "
                            "(-15.0 dBFS): the build evens out the level, but not the sound of another session; "
                            "record it again like the rest")
    assert warned["p4"].startswith("loudness: recorded 9.0 dB louder than the median")
    assert entry("en", "p3").warnings == [warned["p3"]]
    tone(PROMPTS / "en" / "p3.wav", 0.3, -12.5)  # re-recorded: the others' warnings are judged again
    report, lines = build()
    assert [prompt for _, prompt, _ in report.warnings] == ["p4"]
    assert lines[4] == "[5/5] en/p4: unchanged 0.30 s (1 warning)"


def test_the_out_folder_comes_from_the_settings() -> None:
    two_prompts()
    (PROMPTS / "settings.yaml").write_text("build: {out: built}\n")
    build(PromptSettings.load(PROMPTS))
    assert (PROMPTS / "built" / "en" / "welcome.wav").is_file()
    assert manifest().out == "built"
    assert manifest().built_file(PROMPTS, "en", "menu", "wav") == PROMPTS / "built" / "en" / "menu.wav"
    assert sorted(PromptCatalog.load(PROMPTS).languages) == ["en"]


def test_without_ffmpeg_nothing_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    two_prompts()
    monkeypatch.setenv("PATH", os.fspath(tmp_path / "empty"))
    with pytest.raises(PromptBuildError, match=r"^ffmpeg and ffprobe are not installed: apt-get install ffmpeg$"):
        build()
    assert not (PROMPTS / "manifest.json").exists()


def test_an_out_folder_that_cannot_be_written_stops_the_build() -> None:
    two_prompts()
    (PROMPTS / "blocked").write_text("a file where the out folder should be")
    with pytest.raises(PromptBuildError, match=r"^cannot write prompts/blocked/en/welcome.wav \(.+\); check the "
                       r"`out` folder in settings.yaml and its permissions$"):
        build(PromptSettings(BuildSettings(out="blocked")))
