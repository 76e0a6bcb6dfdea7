"""The estimators' formulas and the minimum-data rule (docs/estimator.md)."""

from __future__ import annotations

import pytest

from ivrkit.engine.world import QueueStats
from ivrkit.queueing.estimator import (
    Estimate,
    by_position,
    estimate_wait,
    handle_time,
    like_asterisk,
    position_of,
    staffed,
)


def queue(**stats: float) -> QueueStats:
    return QueueStats(**{"answered": 10, **stats})  # type: ignore[arg-type]


def test_position_is_behind_everyone_waiting_unless_the_statistics_say() -> None:
    assert position_of(QueueStats(waiting=3)) == 4
    assert position_of(QueueStats(waiting=3, position=2)) == 2


def test_staffed_agents_are_logged_in_and_not_paused_never_fewer_than_ready() -> None:
    assert staffed(QueueStats(logged_in=5, paused=2)) == 3
    assert staffed(QueueStats(logged_in=1, ready=2)) == 2  # figures read at slightly different moments
    assert staffed(QueueStats(logged_in=1, paused=3)) == 0


def test_handle_time_adds_wrap_up_only_to_a_known_talk_time() -> None:
    assert handle_time(QueueStats(avg_talk=180), 60) == 240
    assert handle_time(QueueStats(), 60) == 0


@pytest.mark.parametrize(
    ("stats", "wrapup", "seconds"),
    [
        # (B + 1) * H / N with B = callers ahead no ready agent takes
        (dict(waiting=3, logged_in=4, avg_talk=180), 60, 240),  # B = 3: 4 * 240 / 4
        (dict(waiting=3, logged_in=4, ready=2, avg_talk=180), 60, 120),  # B = 1: 2 * 240 / 4
        (dict(waiting=3, logged_in=6, paused=2, avg_talk=240), 0, 240),  # paused agents take no calls
        (dict(waiting=0, logged_in=1, avg_talk=300), 0, 300),  # first in line, all busy: the residual H / N
        (dict(waiting=11, logged_in=2, avg_talk=180), 60, 1440),
        (dict(waiting=1, logged_in=4, ready=2, avg_talk=180), 0, 0),  # a ready agent for this caller
        (dict(waiting=0, logged_in=4, ready=1, avg_talk=180), 0, 0),
    ],
)
def test_by_position(stats: dict[str, float], wrapup: float, seconds: float) -> None:
    assert by_position(queue(**stats), wrapup) == Estimate(seconds, "position")


def test_by_position_needs_a_talk_time() -> None:
    assert by_position(queue(waiting=3, logged_in=2), 60) == Estimate(None, "position", "no average talk time yet")


def test_like_asterisk_is_the_average_hold_time_whatever_the_position() -> None:
    for waiting in (0, 5, 50):
        assert like_asterisk(queue(waiting=waiting, logged_in=2, avg_hold=95), 60) == Estimate(95, "asterisk")


def test_minimum_data_too_few_answered_calls() -> None:
    thin = QueueStats(waiting=3, logged_in=4, avg_talk=180, answered=4)
    assert estimate_wait(thin, min_answered=5) == Estimate(
        None, "position", "4 recent answered call(s), fewer than 5"
    )
    assert estimate_wait(thin, min_answered=4).seconds == 180
    assert estimate_wait(thin, "asterisk", min_answered=5).seconds is None


def test_minimum_data_no_staffed_agent() -> None:
    for stats in (queue(waiting=3), queue(waiting=3, logged_in=2, paused=2, avg_talk=100, avg_hold=60)):
        for method in ("position", "asterisk"):
            assert estimate_wait(stats, method) == Estimate(None, method, "no staffed agent")


def test_estimate_knows_whether_there_is_a_number() -> None:
    assert Estimate(0.0, "position").known
    assert not Estimate(None, "position", "no staffed agent").known
