"""The prompt catalog: ``prompts/<language>/catalog.yaml`` lists each prompt's id and text; audio sits beside it.

::

    # prompts/en/catalog.yaml
    welcome: "Welcome to Example Telecom."
    main-menu: {text: "For billing, press 1. For technical support, press 2.", file: main-menu.wav}

The text is what the simulator shows and what placeholder speech is made from. A prompt's audio is
``<id>.wav`` (or the ``file`` named) in the language folder; its length sets how long the prompt plays in the
simulator, and without audio the length is estimated from the text at a calm speaking rate.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CATALOG_FILE = "catalog.yaml"
AUDIO_EXTENSIONS = (".wav", ".sln16", ".ulaw", ".alaw", ".gsm", ".mp3", ".ogg", ".flac", ".m4a")
WORDS_PER_SECOND = 2.5  # about 150 words a minute, a typical IVR voice
DEFAULT_SECONDS = 2.0


@dataclass(frozen=True)
class PromptEntry:
    id: str
    text: str
    audio: Path | None = None

    def duration(self) -> float:
        if self.audio is not None and self.audio.suffix == ".wav":
            try:
                with wave.open(str(self.audio), "rb") as audio:
                    return round(audio.getnframes() / float(audio.getframerate()), 3)
            except (OSError, wave.Error, EOFError):
                pass
        return estimate_seconds(self.text)


def estimate_seconds(text: str) -> float:
    words = len(text.split())
    return round(words / WORDS_PER_SECOND + 0.4, 2) if words else DEFAULT_SECONDS


@dataclass
class PromptCatalog:
    directory: Path | None = None
    languages: dict[str, dict[str, PromptEntry]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> PromptCatalog:
        """Read every ``<language>/catalog.yaml`` below ``directory`` (a missing directory is an empty catalog)."""
        catalog = cls(directory)
        if not directory.is_dir():
            return catalog
        for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
            entries: dict[str, PromptEntry] = {}
            catalog_file = folder / CATALOG_FILE
            data = yaml.safe_load(catalog_file.read_text(encoding="utf-8")) if catalog_file.is_file() else {}
            for prompt_id, value in (data or {}).items():
                text = value.get("text", "") if isinstance(value, dict) else str(value or "")
                named = value.get("file") if isinstance(value, dict) else None
                entries[str(prompt_id)] = PromptEntry(str(prompt_id), text, _audio(folder, str(prompt_id), named))
            for audio in folder.iterdir():
                if audio.suffix in AUDIO_EXTENSIONS and audio.stem not in entries:
                    entries[audio.stem] = PromptEntry(audio.stem, "", audio)
            catalog.languages[folder.name] = entries
        return catalog

    def has(self, prompt: str, language: str) -> bool:
        return prompt in self.languages.get(language, {})

    def entry(self, prompt: str, language: str) -> PromptEntry | None:
        return self.languages.get(language, {}).get(prompt)

    def language_for(self, prompt: str, languages: Sequence[str]) -> str:
        """The first of ``languages`` that has the prompt (the first one when none has it)."""
        for language in languages:
            if self.has(prompt, language):
                return language
        return languages[0]

    def text(self, prompt: str, language: str) -> str:
        entry = self.entry(prompt, language)
        return entry.text if entry and entry.text else f"[{prompt}]"

    def duration(self, prompt: str, language: str) -> float:
        entry = self.entry(prompt, language)
        return entry.duration() if entry else DEFAULT_SECONDS


def _audio(folder: Path, prompt: str, named: str | None) -> Path | None:
    if named:
        path = folder / named
        return path if path.is_file() else None
    for extension in AUDIO_EXTENSIONS:
        path = folder / f"{prompt}{extension}"
        if path.is_file():
            return path
    return None
