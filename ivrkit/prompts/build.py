"""``ivrkit prompts build``: every recording in the catalog made into the formats Asterisk plays, incrementally.

A prompt is rebuilt when its key changed (the recording's bytes or the build settings) or one of its built
files is missing; otherwise it is left alone. Each file is written atomically and the manifest is saved at
the end (also after a failure or an interruption, so what was built is not built again). A recording ffmpeg
cannot read fails alone, with ffmpeg's reason; the other prompts still build.

After the batch, a recording far louder or quieter than the median of its language gets a warning: it was
probably made in another session, and callers hear the difference even when the level is normalised.
"""

from __future__ import annotations

import hashlib
import os
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.prompts import audio
from ivrkit.prompts.catalog import PromptCatalog, PromptEntry
from ivrkit.prompts.manifest import Manifest, ManifestEntry, ManifestError, write_atomic
from ivrkit.prompts.settings import PromptSettings

Progress = Callable[[str], None]
PIPELINE = "1"  # bump when the processing changes what a build makes from the same recording and settings
SPREAD_PREFIX = "loudness:"
MIN_FOR_SPREAD = 3  # recordings a language needs before one can be said to be far from the rest


class PromptBuildError(Exception):
    """The build cannot run at all (ffmpeg or espeak-ng missing, a manifest that cannot be read)."""


@dataclass
class PromptResult:
    """What happened to one prompt in one language."""

    language: str
    prompt: str
    status: str  # "built", "unchanged", "failed" or "removed"
    duration: float | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # why it failed: the file and ffmpeg's (or espeak-ng's) message
    source: str | None = None  # the recording, relative to the prompts folder
    placeholder: bool = False

    def line(self) -> str:
        """``en/welcome: built 1.73 s`` (the progress line without its counter)."""
        name = f"{self.language}/{self.prompt}"
        if self.status == "failed":
            return f"{name}: FAILED: {self.error}"
        if self.status == "removed":
            return f"{name}: removed"
        what = "placeholder" if self.placeholder and self.status == "built" else self.status
        length = f" {self.duration:.2f} s" if self.duration is not None else ""
        count = len(self.warnings)
        return f"{name}: {what}{length}" + (f" ({count} warning{'s' if count > 1 else ''})" if count else "")


@dataclass
class BuildReport:
    results: list[PromptResult] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)  # the catalog's problems, found on the way

    def _status(self, status: str) -> list[PromptResult]:
        return [result for result in self.results if result.status == status]

    @property
    def built(self) -> list[PromptResult]:
        return self._status("built")

    @property
    def unchanged(self) -> list[PromptResult]:
        return self._status("unchanged")

    @property
    def failed(self) -> list[PromptResult]:
        return self._status("failed")

    @property
    def removed(self) -> list[PromptResult]:
        return self._status("removed")

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def warnings(self) -> list[tuple[str, str, str]]:
        """``(language, prompt, warning)`` for every prompt the run looked at."""
        return [(r.language, r.prompt, warning) for r in self.results for warning in r.warnings]

    def summary(self) -> str:
        counts = [f"{len(self.built)} built", f"{len(self.unchanged)} unchanged", f"{len(self.failed)} failed"]
        if self.removed:
            counts.append(f"{len(self.removed)} removed")
        warnings = len(self.warnings)
        return ", ".join(counts) + (f"; {warnings} warning{'s' if warnings != 1 else ''}" if warnings else "")


@dataclass
class Batch:
    """The state one build or synth run shares: where things go, the manifest, the report, the counter."""

    prompts_dir: Path
    settings: PromptSettings
    catalog: PromptCatalog
    manifest: Manifest
    languages: list[str]
    progress: Progress | None
    report: BuildReport = field(default_factory=BuildReport)
    total: int = 0
    done: int = 0

    @classmethod
    def open(cls, prompts_dir: Path, settings: PromptSettings, languages: Iterable[str] | None,
             progress: Progress | None) -> Batch:
        try:
            audio.require_ffmpeg()
        except audio.AudioError as error:
            raise PromptBuildError(str(error)) from None
        catalog = PromptCatalog.load(prompts_dir)
        try:
            manifest = Manifest.load(prompts_dir)
        except ManifestError as error:
            raise PromptBuildError(str(error)) from None
        manifest.out = settings.build.out
        wanted = set(languages) if languages is not None else None
        unknown = sorted(wanted - set(catalog.languages)) if wanted is not None else []
        if unknown:
            known = ", ".join(catalog.languages) or "none"
            raise PromptBuildError(f"no catalog for {', '.join(unknown)} in {prompts_dir} (languages: {known})")
        chosen = [language for language in catalog.languages if wanted is None or language in wanted]
        report = BuildReport(diagnostics=catalog.diagnostics)
        return cls(prompts_dir, settings, catalog, manifest, chosen, progress, report)

    def select(self, only: Iterable[str] | None, wanted: Callable[[PromptEntry], bool]) -> list[
            tuple[str, PromptEntry]]:
        """The entries of the chosen languages this run works on (``wanted``, among ``only`` when given)."""
        chosen = set(only) if only is not None else None
        work = [(language, entry) for language in self.languages for entry in self.catalog.languages[language].values()
                if wanted(entry) and (chosen is None or entry.id in chosen)]
        self.total = len(work)
        return work

    def tell(self, result: PromptResult, counted: bool = True) -> None:
        self.report.results.append(result)
        if self.progress is None:
            return
        if counted:
            self.done += 1
            width = len(str(self.total))
            self.progress(f"[{self.done:>{width}}/{self.total}] {result.line()}")
        else:
            self.progress(result.line())

    def up_to_date(self, language: str, prompt: str, key: str) -> ManifestEntry | None:
        """The manifest entry when it was built from ``key`` and all its files are there."""
        entry = self.manifest.entry(language, prompt)
        if entry is None or entry.key != key:
            return None
        formats = self.settings.build.all_formats
        if not all(self.manifest.built_file(self.prompts_dir, language, prompt, f).is_file() for f in formats):
            return None
        return entry

    def make(self, language: str, entry: PromptEntry, key: str, load: Callable[[], Any], *,
             placeholder: bool) -> None:
        """Build one prompt from ``load()`` (a pydub segment) unless it is up to date; record the outcome."""
        source = _relative(entry.source, self.prompts_dir) if entry.source is not None else None
        current = self.up_to_date(language, entry.id, key)
        if current is not None:
            self.tell(PromptResult(language, entry.id, "unchanged", current.duration, list(current.warnings),
                                   source=source, placeholder=current.placeholder))
            return
        build = self.settings.build
        try:
            built = audio.process(load(), build, build.all_formats)
            files = {fmt: built.encode(fmt) for fmt in build.all_formats}
        except audio.AudioError as error:
            self.tell(PromptResult(language, entry.id, "failed", error=f"{source or entry.id}: {error}",
                                   source=source, placeholder=placeholder))
            return
        for fmt, data in files.items():
            target = self.manifest.built_file(self.prompts_dir, language, entry.id, fmt)
            try:
                write_atomic(target, data)
            except OSError as error:  # a full disk or a read-only folder stops every prompt, not just this one
                raise PromptBuildError(f"cannot write {target} ({error.strerror or error}); check the `out` "
                                       "folder in settings.yaml and its permissions") from None
        previous = self.manifest.entry(language, entry.id)
        if previous is not None:
            self.delete_files(language, entry.id, [f for f in previous.formats if f not in files])
        self.manifest.set(language, entry.id, ManifestEntry(
            source=source, key=key, duration=built.duration, placeholder=placeholder, loudness=built.loudness,
            peak=built.peak, source_loudness=built.source_loudness, formats=list(files),
            warnings=list(built.warnings),
        ))
        self.tell(PromptResult(language, entry.id, "built", built.duration, list(built.warnings), source=source,
                               placeholder=placeholder))

    def remove(self, language: str, prompt: str) -> None:
        entry = self.manifest.remove(language, prompt)
        if entry is not None:
            self.delete_files(language, prompt, entry.formats)
            self.tell(PromptResult(language, prompt, "removed", placeholder=entry.placeholder), counted=False)

    def delete_files(self, language: str, prompt: str, formats: Iterable[str]) -> None:
        for fmt in formats:
            self.manifest.built_file(self.prompts_dir, language, prompt, fmt).unlink(missing_ok=True)

    def finish(self) -> BuildReport:
        """Judge the loudness spread, give each result its current warnings, save the manifest."""
        spread_warnings(self.manifest, self.languages, self.settings.build.warn.loudness_spread,
                        normalised=self.settings.build.loudness is not None)
        for result in self.report.results:
            entry = self.manifest.entry(result.language, result.prompt)
            if entry is not None and result.status in ("built", "unchanged"):
                result.warnings = list(entry.warnings)
        self.save()
        return self.report

    def save(self) -> None:
        self.manifest.save(self.prompts_dir)


def build_prompts(prompts_dir: Path, settings: PromptSettings, *, languages: Iterable[str] | None = None,
                  only: Iterable[str] | None = None, progress: Progress | None = None) -> BuildReport:
    """Build every catalog entry that has a recording (in ``languages``, and among ``only`` when given)."""
    batch = Batch.open(prompts_dir, settings, languages, progress)
    work = batch.select(only, lambda entry: entry.source is not None)
    try:
        for language, entry in work:
            source = entry.source
            assert source is not None
            try:
                key = source_key(source, settings)
            except OSError as error:
                reason = error.strerror or error
                batch.tell(PromptResult(language, entry.id, "failed", error=f"{_relative(source, prompts_dir)}: "
                                        f"cannot read it ({reason})", source=_relative(source, prompts_dir)))
                continue
            batch.make(language, entry, key, partial(audio.load, source), placeholder=False)
        if only is None:
            prune(batch, placeholders=False)
    finally:
        report = batch.finish()
    return report


def prune(batch: Batch, *, placeholders: bool) -> None:
    """Remove the manifest entries (and built files) of prompts gone from the catalog; a build also removes
    recordings that are gone (the prompt has text only now: a placeholder can be made), a synth placeholders
    whose text is gone."""
    for language in batch.languages:
        entries = batch.catalog.languages.get(language, {})
        for prompt, built in list(batch.manifest.prompts.get(language, {}).items()):
            if _gone(entries.get(prompt), built, placeholders):
                batch.remove(language, prompt)
    if len(batch.languages) == len(batch.catalog.languages):  # all languages: a deleted folder is gone too
        for language in [lang for lang in batch.manifest.prompts if lang not in batch.catalog.languages]:
            for prompt in list(batch.manifest.prompts[language]):
                batch.remove(language, prompt)


def _gone(entry: PromptEntry | None, built: ManifestEntry, placeholders: bool) -> bool:
    if entry is None:
        return True
    if entry.source is not None or built.placeholder != placeholders:
        return False
    return not placeholders or not entry.text.strip()


def spread_warnings(manifest: Manifest, languages: Iterable[str], spread: float, *, normalised: bool) -> None:
    """Replace each recording's loudness-spread warning: how far its source level is from its language's median."""
    for language in languages:
        entries = manifest.prompts.get(language, {})
        for entry in entries.values():
            entry.warnings = [w for w in entry.warnings if not w.startswith(SPREAD_PREFIX)]
        levels = {prompt: entry.source_loudness for prompt, entry in entries.items()
                  if not entry.placeholder and entry.source_loudness is not None}
        if len(levels) < MIN_FOR_SPREAD:
            continue
        median = statistics.median(levels.values())
        for prompt, level in levels.items():
            difference = level - median
            if abs(difference) <= spread:
                continue
            how = "louder" if difference > 0 else "quieter"
            effect = ("the build evens out the level, but not the sound of another session" if normalised
                      else "callers hear the jump")
            entries[prompt].warnings.append(
                f"{SPREAD_PREFIX} recorded {abs(difference):.1f} dB {how} than the median of the '{language}' "
                f"recordings ({median:.1f} dBFS): {effect}; record it again like the rest")


def source_key(source: Path, settings: PromptSettings) -> str:
    """What a built recording depends on: its bytes, the build settings and the processing version."""
    digest = hashlib.sha256(f"recording {PIPELINE} {settings.build.key()}\n".encode())
    with source.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()
