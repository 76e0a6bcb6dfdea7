"""Compiled files on disk: written whole or not at all, and compared with what the flows compile to now."""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ivrkit.compiler.render import edited_by_hand


@dataclass(frozen=True)
class FileState:
    path: Path
    state: str  # "written", "unchanged", "missing", "out of date", "edited by hand"

    @property
    def stale(self) -> bool:
        return self.state in ("missing", "out of date", "edited by hand")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def write_files(directory: Path, files: dict[str, str]) -> list[FileState]:
    """Write each file that differs, through a temporary file renamed into place (readers never see half)."""
    directory.mkdir(parents=True, exist_ok=True)
    states = []
    for name, text in files.items():
        path = directory / name
        if _read(path) == text:
            states.append(FileState(path, "unchanged"))
            continue
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        states.append(FileState(path, "written"))
    return states


def compare_files(directory: Path, files: dict[str, str]) -> list[FileState]:
    """How each file on disk stands against what the flows compile to now."""
    states = []
    for name, text in files.items():
        path = directory / name
        current = _read(path)
        if current is None:
            state = "missing"
        elif current == text:
            state = "unchanged"
        elif edited_by_hand(current):
            state = "edited by hand"
        else:
            state = "out of date"
        states.append(FileState(path, state))
    return states


def diff(path: Path, new: str) -> str:
    """A unified diff from the file on disk (or nothing) to ``new``."""
    old = _read(path) or ""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"{path} (on disk)", f"{path} (compiled)"
    )
    return "".join(lines)
