"""A designer's project on disk for the check, deploy and CLI tests: flows, catalogs, real recordings.

The tools the prompt pipeline runs (ffmpeg, espeak-ng) are real; without them a test is skipped with the
command that installs them, except under CI (``$CI`` set), where it fails: there they must run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_directory
from ivrkit.prompts.build import build_prompts
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.prompts.checks import check_prompts
from ivrkit.prompts.deploy import SoundsDir
from ivrkit.prompts.settings import PromptSettings
from ivrkit.prompts.synth import synth_prompts

PACKAGES = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "espeak-ng": "espeak-ng"}
CLI = "import sys; from ivrkit.cli import main; sys.exit(main())"


def require_tools(*tools: str) -> None:
    """Skip (fail under CI) unless every tool is installed, saying how to install the missing ones."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    packages = " ".join(dict.fromkeys(PACKAGES.get(tool, tool) for tool in missing))
    message = f"{', '.join(missing)} not installed: apt-get install {packages}"
    if os.environ.get("CI"):
        pytest.fail(f"the prompt tests must run in CI: {message}", pytrace=False)
    pytest.skip(message)


def lines(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@dataclass
class Project:
    """``flows/`` and ``prompts/`` under ``root``; messages name files relative to ``root`` (the tests chdir)."""

    root: Path

    @property
    def flows(self) -> Path:
        return self.root / "flows"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts"

    @property
    def built(self) -> Path:
        return self.root / "build" / "prompts"

    def flow(self, name: str, text: str) -> Path:
        path = self.flows / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(lines(text))
        return path

    def catalog(self, language: str, text: str) -> Path:
        path = self.prompts / language / "catalog.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(lines(text))
        return path

    def settings(self, text: str) -> None:
        (self.prompts / "settings.yaml").write_text(lines(text))

    def load_settings(self) -> PromptSettings:
        return PromptSettings.load(self.prompts)

    def build(self) -> None:
        report = build_prompts(self.prompts, self.load_settings())
        assert report.ok, [result.line() for result in report.failed]

    def synth(self) -> None:
        report = synth_prompts(self.prompts, self.load_settings())
        assert report.ok, [result.line() for result in report.failed]

    def check(self, sounds: SoundsDir | None = None, languages: list[str] | None = None) -> Diagnostics:
        """Every prompt check, as ``ivrkit prompts check`` runs them (the flows must load)."""
        result = load_directory(self.flows)
        assert not result.diagnostics.errors, result.diagnostics.render()
        catalog = PromptCatalog.load(self.prompts)
        diagnostics = result.diagnostics
        check_prompts(result.flows, catalog, catalog.manifest, diagnostics, sounds_dir=sounds,
                      settings=self.load_settings(), languages=languages)
        return diagnostics

    def ivrkit(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """``ivrkit ARGS`` as a user runs it in the project: (exit status, stdout, stderr)."""
        done = subprocess.run([sys.executable, "-c", CLI, *args], cwd=self.root, capture_output=True, text=True,
                              env=env, timeout=120)
        return done.returncode, done.stdout, done.stderr


def messages(diagnostics: Diagnostics) -> list[str]:
    """``file:line:col: severity: message`` of each diagnostic, sorted by position."""
    return [f"{d.location}: {d.severity.value}: {d.message}" for d in diagnostics]
