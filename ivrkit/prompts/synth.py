"""``ivrkit prompts synth``: placeholder audio, spoken by espeak-ng, for prompts that have text but no recording.

A new flow can be heard end to end before the studio recordings exist. Each placeholder is rendered with
``espeak-ng -v <voice> -s <speed> -w <tmp.wav> -- <text>`` (the text is an argument, never seen by a shell),
then processed exactly like a recording and marked ``placeholder: true`` in the manifest, so checks can say
which prompts still need recording. It is redone when the text, voice, speed, espeak-ng's version or the
build settings change. A prompt that gained a recording is left to ``ivrkit prompts build``, which replaces
the placeholder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from ivrkit.prompts import audio
from ivrkit.prompts.build import Batch, BuildReport, Progress, PromptBuildError, prune
from ivrkit.prompts.catalog import PromptEntry
from ivrkit.prompts.settings import PromptSettings

ENGINE = "espeak-ng"
INSTALL = "espeak-ng is not installed: apt-get install espeak-ng"


def synth_prompts(prompts_dir: Path, settings: PromptSettings, *, languages: Iterable[str] | None = None,
                  only: Iterable[str] | None = None, progress: Progress | None = None) -> BuildReport:
    """Render every catalog entry with text and no recording (in ``languages``, among ``only`` when given)."""
    if shutil.which(ENGINE) is None:
        raise PromptBuildError(INSTALL)
    batch = Batch.open(prompts_dir, settings, languages, progress)
    work = batch.select(only, lambda entry: entry.source is None and bool(entry.text.strip()))
    version = engine_version()
    try:
        with tempfile.TemporaryDirectory(prefix="ivrkit-synth-") as scratch:
            for language, entry in work:
                voice = settings.synth.voice(language)
                key = text_key(entry.text, voice, settings, version)
                batch.make(language, entry, key, _Speaker(entry, voice, settings.synth.speed, Path(scratch)),
                           placeholder=True)
        if only is None:
            prune(batch, placeholders=True)
    finally:
        report = batch.finish()
    return report


@cache
def engine_version() -> str:
    """espeak-ng's version line: a new version speaks differently, so placeholders are rendered again."""
    try:
        result = subprocess.run([ENGINE, "--version"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise PromptBuildError(INSTALL) from None
    return result.stdout.strip().split("  Data at")[0]


def text_key(text: str, voice: str, settings: PromptSettings, version: str) -> str:
    """What a placeholder depends on: text, voice, speed, engine version, build settings."""
    data = {"text": text, "voice": voice, "speed": settings.synth.speed, "engine": version,
            "build": settings.build.key()}
    return hashlib.sha256(("placeholder\n" + json.dumps(data, sort_keys=True)).encode()).hexdigest()


class _Speaker:
    """Renders one entry's text when the build asks for it (an up-to-date placeholder is never rendered)."""

    def __init__(self, entry: PromptEntry, voice: str, speed: int, scratch: Path):
        self.entry, self.voice, self.speed, self.scratch = entry, voice, speed, scratch

    def __call__(self) -> Any:
        target = self.scratch / "speech.wav"
        command = [ENGINE, "-v", self.voice, "-s", str(self.speed), "-w", str(target), "--", self.entry.text]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        message = (result.stderr or result.stdout).strip()
        if result.returncode != 0 or not target.is_file():
            hint = ""
            if "voice" in message.lower():
                hint = ("; name an espeak-ng voice for it in settings.yaml (synth: {voices: {...: <voice>}}); "
                        "`espeak-ng --voices` lists them")
            raise audio.AudioError(f"espeak-ng cannot speak it with voice '{self.voice}': "
                                   f"{message or 'exit status ' + str(result.returncode)}{hint}")
        try:
            return audio.load(target)
        finally:
            target.unlink(missing_ok=True)
