"""The manifest: what ``ivrkit prompts build`` and ``synth`` made of each prompt, in ``prompts/manifest.json``.

It is committed with the prompts: the simulator and flow tests take each prompt's length from it, so a test
run on a machine without the recordings or ffmpeg times the call exactly as the built audio plays. It also
says where the built files are (``out``, relative to the prompts folder), which prompts are placeholders, and
the key of what each was built from, so a build only redoes what changed.

The JSON is written with sorted keys, two-space indents and a final newline, atomically, so its diffs are
small and a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
VERSION = 1
DEFAULT_OUT = "../build/prompts"


class ManifestError(Exception):
    """The manifest cannot be read; the message names the file and what to do."""


@dataclass
class ManifestEntry:
    """One built prompt in one language."""

    source: str | None  # the recording, relative to the prompts folder (posix); None for a placeholder
    key: str  # what it was built from: source bytes (or text, voice, engine) and the build settings
    duration: float  # seconds of the built audio, after trimming
    placeholder: bool = False  # rendered from the text by `ivrkit prompts synth`
    loudness: float | None = None  # dBFS: RMS of the speech in the built audio
    peak: float | None = None  # dBFS: the highest sample of the built audio
    source_loudness: float | None = None  # dBFS: RMS of the speech in the source, before any gain
    formats: list[str] = field(default_factory=lambda: ["wav"])
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ManifestEntry:
        def number(name: str) -> float | None:
            value = data.get(name)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        source = data.get("source")
        return cls(
            source=source if isinstance(source, str) else None,
            key=str(data.get("key", "")),
            duration=number("duration") or 0.0,
            placeholder=bool(data.get("placeholder", False)),
            loudness=number("loudness"),
            peak=number("peak"),
            source_loudness=number("source_loudness"),
            formats=[str(f) for f in data.get("formats", ["wav"]) if isinstance(f, str)],
            warnings=[str(w) for w in data.get("warnings", []) if isinstance(w, str)],
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Manifest:
    """Every built prompt: ``prompts[language][prompt id]``."""

    out: str = DEFAULT_OUT  # the built audio folder, relative to the prompts folder
    prompts: dict[str, dict[str, ManifestEntry]] = field(default_factory=dict)

    @classmethod
    def load(cls, prompts_dir: Path) -> Manifest:
        """The manifest in ``prompts_dir`` (an empty one when there is none yet)."""
        path = prompts_dir / MANIFEST_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            raise ManifestError(f"{path}: cannot read the prompt manifest ({reason})") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, file: str = MANIFEST_FILE) -> Manifest:
        hint = "it is written by `ivrkit prompts build`: restore it from version control, or delete it and build again"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ManifestError(f"{file}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}); {hint}") from None
        if not isinstance(data, dict) or not isinstance(data.get("prompts", {}), dict):
            raise ManifestError(f"{file}: not a prompt manifest (no 'prompts' mapping); {hint}")
        if data.get("version", VERSION) != VERSION:
            raise ManifestError(f"{file}: manifest version {data.get('version')!r} is not {VERSION}; "
                                "update ivrkit, or delete the file and build again")
        manifest = cls(out=str(data.get("out") or DEFAULT_OUT))
        for language, entries in data.get("prompts", {}).items():
            if isinstance(entries, dict):
                manifest.prompts[str(language)] = {
                    str(prompt): ManifestEntry.from_json(entry)
                    for prompt, entry in entries.items()
                    if isinstance(entry, dict)
                }
        return manifest

    def to_json(self) -> str:
        data = {
            "version": VERSION,
            "out": self.out,
            "prompts": {
                language: {prompt: entry.to_json() for prompt, entry in entries.items()}
                for language, entries in self.prompts.items()
                if entries
            },
        }
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def save(self, prompts_dir: Path) -> None:
        write_atomic(prompts_dir / MANIFEST_FILE, self.to_json().encode("utf-8"))

    def entry(self, language: str, prompt: str) -> ManifestEntry | None:
        return self.prompts.get(language, {}).get(prompt)

    def set(self, language: str, prompt: str, entry: ManifestEntry) -> None:
        self.prompts.setdefault(language, {})[prompt] = entry

    def remove(self, language: str, prompt: str) -> ManifestEntry | None:
        entries = self.prompts.get(language, {})
        entry = entries.pop(prompt, None)
        if not entries:
            self.prompts.pop(language, None)
        return entry

    def items(self) -> Iterator[tuple[str, str, ManifestEntry]]:
        """``(language, prompt, entry)`` for every entry, sorted."""
        for language in sorted(self.prompts):
            for prompt in sorted(self.prompts[language]):
                yield language, prompt, self.prompts[language][prompt]

    def out_dir(self, prompts_dir: Path) -> Path:
        """The folder the built audio is in."""
        return prompts_dir / self.out

    def built_file(self, prompts_dir: Path, language: str, prompt: str, fmt: str) -> Path:
        """Where the built ``fmt`` file of a prompt is: ``<out>/<language>/<prompt>.<fmt>``."""
        return self.out_dir(prompts_dir) / language / f"{prompt}.{fmt}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, so readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
