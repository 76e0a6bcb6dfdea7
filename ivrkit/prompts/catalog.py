"""The prompt catalog: ``prompts/<language>/catalog.yaml`` lists each prompt's id and text; recordings sit beside it.

::

    # prompts/en/catalog.yaml
    welcome: "Welcome to Example Telecom."
    main-menu: {text: "For billing, press 1. For technical support, press 2.", file: main-menu-take3.mp3}

The text is what the simulator shows and what placeholder speech is made from. A prompt's recording is
``<id>.<ext>`` in the language folder (any format ffmpeg reads: wav, mp3, ogg, flac, m4a, ...) or the ``file``
named. Only folders named like a language (``en``, ``de``, ``pt_BR``) are languages.

A prompt's length (how long the simulator plays it) comes from the manifest once it is built, else from a
``.wav`` recording, else it is estimated from the text at a calm speaking rate. Mistakes in a catalog file are
collected in :attr:`PromptCatalog.diagnostics` at their ``file:line:col``; loading never stops at them.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ivrkit.flow.diagnostics import Diagnostics, Location, did_you_mean, relative_name
from ivrkit.flow.source import Mapping, Node, Scalar, describe, read_source
from ivrkit.prompts.languages import LANGUAGE_CODE
from ivrkit.prompts.manifest import MANIFEST_FILE, Manifest, ManifestError
from ivrkit.prompts.settings import is_blank

CATALOG_FILE = "catalog.yaml"
# Recordings the catalog picks up as ``<id>.<ext>``, in order of preference. ffmpeg reads more; name those
# with ``file:``. The headerless Asterisk formats are read at their usual rates (see ivrkit/prompts/audio.py).
SOURCE_EXTENSIONS = (
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".aif", ".aiff", ".aifc", ".wma",
    ".webm", ".amr", ".sln", ".sln16", ".ulaw", ".alaw", ".gsm", ".g722",
)
AUDIO_EXTENSIONS = SOURCE_EXTENSIONS  # the name older code imports
ENTRY_KEYS = ("text", "file")
WORDS_PER_SECOND = 2.5  # about 150 words a minute, a typical IVR voice
DEFAULT_SECONDS = 2.0


@dataclass(frozen=True)
class PromptEntry:
    """One prompt in one language: what it says, its recording if any, and where the catalog names it."""

    id: str
    text: str
    source: Path | None = None  # the recording; None: text only (a placeholder can be rendered from it)
    location: Location | None = None  # the entry's key in catalog.yaml

    def duration(self) -> float:
        """The length of a ``.wav`` recording, else the text estimate (the manifest knows better: see the catalog)."""
        if self.source is not None and self.source.suffix.lower() == ".wav":
            seconds = wav_seconds(self.source)
            if seconds is not None:
                return seconds
        return estimate_seconds(self.text)


def wav_seconds(path: Path) -> float | None:
    """The length of a PCM wav file, or None when it is not one."""
    try:
        with wave.open(str(path), "rb") as audio:
            return round(audio.getnframes() / float(audio.getframerate()), 3)
    except (OSError, wave.Error, EOFError):
        return None


def estimate_seconds(text: str) -> float:
    words = len(text.split())
    return round(words / WORDS_PER_SECOND + 0.4, 2) if words else DEFAULT_SECONDS


@dataclass
class PromptCatalog:
    directory: Path | None = None
    languages: dict[str, dict[str, PromptEntry]] = field(default_factory=dict)
    manifest: Manifest = field(default_factory=Manifest)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @classmethod
    def load(cls, directory: Path) -> PromptCatalog:
        """Every ``<language>/catalog.yaml`` below ``directory`` and the manifest (a missing directory is empty).

        Problems (a malformed entry, a missing file, an unreadable manifest) go to ``catalog.diagnostics``.
        """
        catalog = cls(directory)
        if not directory.is_dir():
            return catalog
        try:
            catalog.manifest = Manifest.load(directory)
        except ManifestError as error:
            catalog.diagnostics.error(Location(relative_name(directory / MANIFEST_FILE), 1, 1), str(error),
                                      "prompt lengths are estimated from the text until it is rebuilt")
        for folder in sorted(p for p in directory.iterdir() if p.is_dir() and LANGUAGE_CODE.match(p.name)):
            catalog.languages[folder.name] = _load_language(folder, catalog.diagnostics)
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
        """Seconds the prompt plays: the built length, else a wav recording's, else the text estimate."""
        entry = self.entry(prompt, language)
        if entry is None:
            return DEFAULT_SECONDS
        built = self.manifest.entry(language, prompt)
        return built.duration if built is not None else entry.duration()


def _load_language(folder: Path, diagnostics: Diagnostics) -> dict[str, PromptEntry]:
    entries: dict[str, PromptEntry] = {}
    recordings = _recordings(folder)
    catalog_file = folder / CATALOG_FILE
    if catalog_file.is_file():
        file = relative_name(catalog_file)
        try:
            text = catalog_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            diagnostics.error(Location(file, 1, 1), f"cannot read the catalog ({reason})", "save it as UTF-8 text")
            text = ""
        root = None if is_blank(text) else read_source(file, text, diagnostics)
        if root is not None and not isinstance(root, Mapping):
            diagnostics.error(root.location, f"a catalog is a mapping of prompt ids to texts, got {describe(root)}",
                              'write one prompt per line: welcome: "Welcome to Example Telecom."')
        elif isinstance(root, Mapping):
            for prompt, value in root.items():
                entries[prompt] = _entry(folder, recordings, prompt, root.key_node(prompt), value, diagnostics)
    named = {entry.source for entry in entries.values()}
    for stem, paths in sorted(recordings.items()):
        if stem in entries or paths[0] in named:
            continue
        where = Location(relative_name(paths[0]), 1, 1)
        entries[stem] = PromptEntry(stem, "", paths[0], where)
        diagnostics.warning(where, f"recording '{paths[0].name}' has no entry in {CATALOG_FILE}: the simulator "
                            "cannot show what it says", f'add `{stem}: "<what it says>"` to '
                            f"{relative_name(catalog_file)}")
    return entries


def _recordings(folder: Path) -> dict[str, list[Path]]:
    """The recordings in a language folder by id, each id's files in order of preference."""
    found: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        if path.suffix.lower() in SOURCE_EXTENSIONS and path.is_file():
            found.setdefault(path.stem, []).append(path)
    for paths in found.values():
        paths.sort(key=lambda p: SOURCE_EXTENSIONS.index(p.suffix.lower()))
    return found


def _entry(folder: Path, recordings: dict[str, list[Path]], prompt: str, key: Scalar, value: Node,
           diagnostics: Diagnostics) -> PromptEntry:
    """The entry as far as it can be read; what cannot be read is reported (the entry still exists, so flows
    that play it are not reported a second time)."""
    text, file_node = "", None
    if isinstance(value, Scalar) and (value.value is None or isinstance(value.value, str)):
        text = value.value or ""
    elif isinstance(value, Mapping):
        for name in value.keys():
            if name not in ENTRY_KEYS:
                diagnostics.error(value.key_node(name).location, f"unknown key '{name}' in prompt '{prompt}'",
                                  did_you_mean(name, ENTRY_KEYS) or f"a prompt has: {', '.join(ENTRY_KEYS)}")
        text_node, file_node = value.get("text"), value.get("file")
        if isinstance(text_node, Scalar) and (text_node.value is None or isinstance(text_node.value, str)):
            text = text_node.value or ""
        elif text_node is not None:
            diagnostics.error(text_node.location, f"the text of prompt '{prompt}' should be text, got "
                              f"{describe(text_node)}", 'quote it: text: "..."')
    else:
        example = f'{prompt}: "Welcome." or {prompt}: {{text: "Welcome.", file: {prompt}-take2.mp3}}'
        diagnostics.error(value.location, f"prompt '{prompt}' should be its text or {{text, file}}, got "
                          f"{describe(value)}", f"quote the text: {example}")
    if file_node is None:
        return PromptEntry(prompt, text, _recording(folder, recordings, prompt, key, diagnostics), key.location)
    if not isinstance(file_node, Scalar) or not isinstance(file_node.value, str) or not file_node.value.strip():
        diagnostics.error(file_node.location, f"the file of prompt '{prompt}' should be a file name, got "
                          f"{describe(file_node)}", f"name a recording in {relative_name(folder)}")
        return PromptEntry(prompt, text, None, key.location)
    source = folder / file_node.value
    if not source.is_file():
        nearby = [path.name for paths in recordings.values() for path in paths]
        diagnostics.error(file_node.location, f"recording '{file_node.value}' of prompt '{prompt}' does not exist "
                          f"in {relative_name(folder)}", did_you_mean(file_node.value, nearby)
                          or "put the file beside the catalog, or correct the name")
        return PromptEntry(prompt, text, None, key.location)
    return PromptEntry(prompt, text, source, key.location)


def _recording(folder: Path, recordings: dict[str, list[Path]], prompt: str, key: Scalar,
               diagnostics: Diagnostics) -> Path | None:
    """``<id>.<ext>`` beside the catalog; two of them is a mistake (which one is the recording?)."""
    if "/" in prompt:  # an id such as digits/1: its recording is in a subfolder
        found = [folder / f"{prompt}{ext}" for ext in SOURCE_EXTENSIONS if (folder / f"{prompt}{ext}").is_file()]
    else:
        found = recordings.get(prompt, [])
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        diagnostics.error(key.location, f"prompt '{prompt}' has {len(found)} recordings: {names}",
                          "delete the ones that are not the recording, or name one with "
                          f"`{prompt}: {{text: ..., file: {found[0].name}}}`")
    return found[0] if found else None
