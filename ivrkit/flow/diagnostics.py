"""Problems found in flow files, reported as ``file:line:col: message`` with the source line.

Every error the flow language raises is a :class:`Diagnostic` pointing at the YAML that caused it, so a
designer can jump straight to the spot in an editor. Loading collects all problems instead of stopping
at the first one (:class:`Diagnostics`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


@dataclass(frozen=True, order=True)
class Location:
    """A 1-based line and column in a source file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One problem, where it is, and what to do about it."""

    location: Location
    message: str
    severity: Severity = Severity.ERROR
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def render(self, source_lines: list[str] | None = None) -> str:
        """Format as ``file:line:col: severity: message`` plus the offending line, a caret and the hint."""
        text = f"{self.location}: {self.severity.value}: {self.message}"
        if source_lines and 0 < self.location.line <= len(source_lines):
            line = source_lines[self.location.line - 1].rstrip("\n")
            caret = " " * (self.location.column - 1) + "^"
            text += f"\n    {line}\n    {caret}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


@dataclass
class Diagnostics:
    """An ordered collection of diagnostics, with the source text needed to show them."""

    items: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)

    def add(self, diagnostic: Diagnostic) -> None:
        if diagnostic not in self.items:
            self.items.append(diagnostic)

    def error(self, location: Location, message: str, hint: str | None = None) -> None:
        self.add(Diagnostic(location, message, Severity.ERROR, hint))

    def warning(self, location: Location, message: str, hint: str | None = None) -> None:
        self.add(Diagnostic(location, message, Severity.WARNING, hint))

    def extend(self, other: Diagnostics) -> None:
        for item in other.items:
            self.add(item)
        self.sources.update(other.sources)

    def remember_source(self, file: str, text: str) -> None:
        self.sources[file] = text.splitlines()

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if not d.is_error]

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(sorted(self.items, key=lambda d: d.location))

    def __len__(self) -> int:
        return len(self.items)

    def render(self) -> str:
        return "\n".join(d.render(self.sources.get(d.location.file)) for d in self)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    matches = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def relative_name(path: Path) -> str:
    """The path as shown in messages: relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
