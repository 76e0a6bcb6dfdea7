"""Fixtures for the flow-language tests: running ``ivrkit check`` as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrkit.cli import main
from tests.flow.helpers import CheckRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ivrkit_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> CheckRun:
    """ivrkit_check("--flows", dir, …) -> (exit status, stdout), run from the repository root.

    Messages name files relative to the working directory, so tests run from the root to compare them exactly.
    """
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("IVRKIT_FLOWS", raising=False)
    monkeypatch.delenv("IVRKIT_PROMPTS", raising=False)

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        status = main(["check", *args])
        return status, capsys.readouterr().out

    return run
