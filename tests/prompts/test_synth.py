"""ivrkit prompts synth: espeak-ng placeholders for text-only prompts, marked, incremental, replaced by recordings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ivrkit.prompts.build import BuildReport, PromptBuildError, build_prompts
from ivrkit.prompts.manifest import Manifest, ManifestEntry
from ivrkit.prompts.settings import PromptSettings, SynthSettings
from ivrkit.prompts.synth import synth_prompts
from tests.prompts.audio import measure, needs_espeak, needs_ffmpeg, tone

pytestmark = [needs_ffmpeg, needs_espeak]
PROMPTS = Path("prompts")
OUT = Path("build/prompts")


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (PROMPTS / "en").mkdir(parents=True)
    (PROMPTS / "en" / "catalog.yaml").write_text('welcome: "Welcome to Example Telecom."\nmenu: "Press 1."\nbeep:\n')
    tone(PROMPTS / "en" / "menu.wav", 0.4)
    return tmp_path


def synth(settings: PromptSettings | None = None) -> tuple[BuildReport, list[str]]:
    lines: list[str] = []
    return synth_prompts(PROMPTS, settings or PromptSettings(), progress=lines.append), lines


def statuses(report: BuildReport) -> dict[str, str]:
    return {f"{r.language}/{r.prompt}": r.status for r in report.results}


def entry(language: str, prompt: str) -> ManifestEntry:
    found = Manifest.load(PROMPTS).entry(language, prompt)
    assert found is not None, f"{language}/{prompt} is not in the manifest"
    return found


def absent(language: str, prompt: str) -> bool:
    return Manifest.load(PROMPTS).entry(language, prompt) is None


def test_text_only_prompts_get_marked_placeholders() -> None:
    report, lines = synth()
    assert statuses(report) == {"en/welcome": "built"}  # menu has a recording, beep has no text
    welcome = entry("en", "welcome")
    assert lines == [f"[1/1] en/welcome: placeholder {welcome.duration:.2f} s"]
    assert (welcome.placeholder, welcome.source, welcome.formats) == (True, None, ["wav"])
    assert 1.0 < welcome.duration < 4.0
    out = measure(OUT / "en" / "welcome.wav")
    assert (out.rate, out.channels, out.sample_width) == (8000, 1, 2)
    assert out.seconds == welcome.duration
    assert out.loudness == pytest.approx(-20.0, abs=0.5)
    assert absent("en", "menu")  # recordings are for `build`


def test_placeholders_are_rendered_again_only_when_their_inputs_change() -> None:
    synth()
    report, _ = synth()
    assert statuses(report) == {"en/welcome": "unchanged"}
    first = entry("en", "welcome").duration
    (PROMPTS / "en" / "catalog.yaml").write_text('welcome: "Welcome to Example Telecom, the friendly network."\n')
    report, _ = synth()
    assert statuses(report) == {"en/welcome": "built"} and entry("en", "welcome").duration > first
    report, _ = synth(PromptSettings(synth=SynthSettings(speed=220)))
    assert statuses(report) == {"en/welcome": "built"}
    report, _ = synth(PromptSettings(synth=SynthSettings(speed=220, voices={"en": "en-gb"})))
    assert statuses(report) == {"en/welcome": "built"}


def test_a_recording_replaces_the_placeholder() -> None:
    synth()
    tone(PROMPTS / "en" / "welcome.wav", 0.6)
    report = build_prompts(PROMPTS, PromptSettings())
    assert statuses(report) == {"en/welcome": "built", "en/menu": "built"}
    welcome = entry("en", "welcome")
    assert (welcome.placeholder, welcome.source, welcome.duration) == (False, "en/welcome.wav", 0.6)
    report, _ = synth()  # synth leaves recorded prompts alone
    assert statuses(report) == {} and entry("en", "welcome").placeholder is False
    (PROMPTS / "en" / "welcome.wav").unlink()
    report, _ = synth()  # the recording is gone: back to a placeholder
    assert statuses(report) == {"en/welcome": "built"} and entry("en", "welcome").placeholder is True


def test_a_prompt_gone_from_the_catalog_loses_its_placeholder() -> None:
    synth()
    (PROMPTS / "en" / "catalog.yaml").write_text('menu: "Press 1."\n')
    report, lines = synth()
    assert statuses(report) == {"en/welcome": "removed"} and lines == ["en/welcome: removed"]
    assert absent("en", "welcome") and not (OUT / "en" / "welcome.wav").exists()


def test_text_is_spoken_never_read_as_options_and_other_languages_have_their_voice() -> None:
    (PROMPTS / "en" / "catalog.yaml").write_text('dashes: "--help -v xx -w /tmp/other.wav"\n')
    (PROMPTS / "de").mkdir()
    (PROMPTS / "de" / "catalog.yaml").write_text('welcome: "Willkommen bei Example Telecom."\n')
    report, _ = synth()
    assert statuses(report) == {"de/welcome": "built", "en/dashes": "built"}
    assert entry("en", "dashes").duration > 1.0 and not Path("/tmp/other.wav").exists()


def test_an_unknown_voice_fails_with_what_to_do() -> None:
    report, lines = synth(PromptSettings(synth=SynthSettings(voices={"en": "xx-nowhere"})))
    [failed] = report.failed
    assert failed.error == (
        "welcome: espeak-ng cannot speak it with voice 'xx-nowhere': Error: The specified espeak-ng voice does not "
        "exist.; name an espeak-ng voice for it in settings.yaml (synth: {voices: {...: <voice>}}); "
        "`espeak-ng --voices` lists them")
    assert lines == [f"[1/1] en/welcome: FAILED: {failed.error}"]
    assert absent("en", "welcome")


def test_without_espeak_ng_nothing_is_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("ffmpeg", "ffprobe"):
        os.symlink(str(shutil.which(tool)), tools / tool)
    monkeypatch.setenv("PATH", os.fspath(tools))
    with pytest.raises(PromptBuildError, match=r"^espeak-ng is not installed: apt-get install espeak-ng$"):
        synth()
