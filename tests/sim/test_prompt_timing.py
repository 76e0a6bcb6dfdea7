"""Prompt lengths in the simulator come from the audio when there is some, else from the text."""

from __future__ import annotations

import wave
from pathlib import Path

from ivrkit.prompts.catalog import PromptCatalog, estimate_seconds
from ivrkit.sim.script import parse_keys
from ivrkit.sim.session import simulate
from tests.calls import build

FLOW = """
flow: t
start: a
steps:
  a: {play: [recorded, text-only, unknown], next: b}
  b: {hangup: true}
"""


def _write_wav(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x00\x00" * int(seconds * rate))


def test_durations_from_wav_then_text_then_default(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "catalog.yaml").write_text(
        'recorded: "A prompt with a recording."\ntext-only: "One two three four five six seven eight nine ten."\n'
    )
    _write_wav(tmp_path / "en" / "recorded.wav", 3.25)
    catalog = PromptCatalog.load(tmp_path)
    result = simulate(build(FLOW), "t", parse_keys(""), catalog=catalog)
    played = [e.at for e in result.events if e.kind == "played"]
    assert played == [
        3.25,
        3.25 + estimate_seconds("One two three four five six seven eight nine ten."),
        3.25 + 4.4 + 2.0,
    ]
    assert estimate_seconds("One two three four five six seven eight nine ten.") == 4.4


def test_language_fallback_and_texts(tmp_path: Path) -> None:
    for language, text in (("en", "Hello"), ("de", "Hallo")):
        (tmp_path / language).mkdir()
        (tmp_path / language / "catalog.yaml").write_text(f'recorded: "{text}"\n')
    (tmp_path / "en" / "catalog.yaml").write_text('recorded: "Hello"\ntext-only: "Only in English"\n')
    catalog = PromptCatalog.load(tmp_path)
    german = FLOW.replace("flow: t\n", "flow: t\nlanguages: [en, de]\n")
    result = simulate(build(german), "t", parse_keys(""), catalog=catalog, language="de_AT")
    languages = [(e.detail["prompt"], e.detail["language"]) for e in result.events if e.kind == "played"]
    assert languages == [("recorded", "de"), ("text-only", "en"), ("unknown", "de_AT")]  # de_AT, de, then en
    assert '"Hallo"' in result.transcript()
    assert '"[unknown]"' in result.transcript()
    # a flow that does not speak German plays its own language to a German channel, even what German has
    result = simulate(build(FLOW), "t", parse_keys(""), catalog=catalog, language="de")
    assert [e.detail["language"] for e in result.events if e.kind == "played"] == ["en", "en", "en"]
