"""Rounding and wording styles: what a caller hears for an estimate."""

from __future__ import annotations

import pytest

from ivrkit.flow.segments import PromptSegment, Segment
from ivrkit.queueing.wording import minutes, position_segments, prompts_for, wait_segments


def heard(segments: list[Segment]) -> list[str]:
    """Segments as a flow test's `heard` lists them: prompt ids and ``number:N``."""
    return [s.prompt if isinstance(s, PromptSegment) else f"{s.say}:{s.value.source}" for s in segments]


@pytest.mark.parametrize(
    ("seconds", "about", "less_than", "range_"),
    [
        (60, (1, 1), (2, 2), (1, 2)),
        (89, (1, 1), (2, 2), (1, 2)),
        (90, (2, 2), (2, 2), (1, 2)),
        (119, (2, 2), (2, 2), (1, 3)),
        (120, (2, 2), (3, 3), (1, 3)),
        (240, (4, 4), (5, 5), (3, 5)),
        (300, (5, 5), (6, 6), (4, 6)),
        (600, (10, 10), (15, 15), (8, 15)),  # beyond 10 minutes: multiples of 5
        (629, (10, 10), (15, 15), (8, 15)),
        (780, (15, 15), (15, 15), (10, 20)),
        (1440, (25, 25), (25, 25), (15, 30)),
        (3600, (60, 60), (65, 65), (45, 75)),
    ],
)
def test_minutes(seconds: float, about: tuple[int, int], less_than: tuple[int, int], range_: tuple[int, int]) -> None:
    assert minutes(seconds, "about") == about
    assert minutes(seconds, "less_than") == less_than
    assert minutes(seconds, "range") == range_


@pytest.mark.parametrize("wording", ["about", "less_than", "range"])
def test_under_a_minute_and_no_number_sound_the_same_in_every_style(wording: str) -> None:
    assert heard(wait_segments(0, wording)) == ["wait-less-than-a-minute"]
    assert heard(wait_segments(59.9, wording)) == ["wait-less-than-a-minute"]
    assert heard(wait_segments(None, wording)) == ["wait-longer-than-usual"]


def test_each_style_as_heard() -> None:
    assert heard(wait_segments(240, "about")) == ["wait-about", "number:4", "minutes"]
    assert heard(wait_segments(240, "less_than")) == ["wait-less-than", "number:5", "minutes"]
    assert heard(wait_segments(240, "range")) == ["wait-between", "number:3", "and", "number:5", "minutes"]


def test_one_minute_is_singular() -> None:
    assert heard(wait_segments(70, "about")) == ["wait-about", "number:1", "minute"]
    assert heard(wait_segments(60, "less_than")) == ["wait-less-than", "number:2", "minutes"]
    assert heard(wait_segments(60, "range")) == ["wait-between", "number:1", "and", "number:2", "minutes"]


def test_position() -> None:
    assert heard(position_segments(3)) == ["queue-position", "number:3"]


def test_prompts_for_each_style_cover_what_it_says() -> None:
    for wording in ("about", "less_than", "range"):
        said = {p for s in (None, 30, 60, 70, 240, 3600) for p in heard(wait_segments(s, wording)) if ":" not in p}
        assert said <= set(prompts_for(wording)), wording
    assert prompts_for("range") == (
        "wait-between", "minutes", "and", "wait-less-than-a-minute", "wait-longer-than-usual"
    )
