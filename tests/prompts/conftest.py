from __future__ import annotations

import pytest

from tests.prompts.project import require_tools


@pytest.fixture
def ffmpeg_installed() -> None:
    require_tools("ffmpeg")


@pytest.fixture
def espeak_installed() -> None:
    require_tools("espeak-ng")
