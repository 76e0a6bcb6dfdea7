"""How long a caller about to join a queue will wait: two documented estimators and the minimum-data rule.

``position`` (the default) is ivrkit's own. It treats the queue as agents serving callers first come, first
served, each call taking the *handle time* ``H`` = average talk time + the queue's wrap-up time:

* ``N`` = staffed agents: logged in and not paused (``logged_in - paused``, at least ``ready``);
* ``R`` = ready agents: logged in, not paused, not on a call, not in wrap-up (they take a caller at once);
* ``p`` = the caller's position on joining (``waiting + 1`` unless the statistics give it);
* ``B = max(0, p - 1 - R)`` = callers ahead who cannot be taken by a ready agent.

If ``p <= R`` a ready agent takes the caller at once: the wait is 0. Otherwise every staffed agent is busy
once the ready ones have taken the first ``R`` callers, and the caller is taken at the ``B + 1``-th time an
agent finishes. With handle times that vary the way they do in contact centres (exponentially, the model
behind Erlang C) agents finish at a combined rate of ``N / H``, whatever point their calls are at, so the
first finish is expected after the residual ``H / N`` and each further one ``H / N`` later::

    wait = (B + 1) * H / N

``asterisk`` gives Asterisk's own figure for comparison: the queue's average hold time (``avg_hold``, an
exponential moving average of the waits of answered calls, ``QUEUEHOLDTIME``), whatever the position.

Minimum data: with fewer than ``min_answered`` recent answered calls, no staffed agent, or (``position``) no
handle time yet, there is no number. The caller then hears the safe phrase instead (``wait-longer-than-usual``):
a made-up figure would be worse than none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ivrkit.engine.world import QueueStats

DEFAULT_MIN_ANSWERED = 5


@dataclass(frozen=True)
class Estimate:
    """An estimator's answer: ``seconds``, or None with the reason there is no number."""

    seconds: float | None
    method: str
    reason: str = ""  # why there is no number ("" when there is one)

    @property
    def known(self) -> bool:
        return self.seconds is not None


def position_of(stats: QueueStats) -> int:
    """The caller's position on joining: the statistics' own, else behind everyone waiting."""
    return stats.position if stats.position > 0 else stats.waiting + 1


def staffed(stats: QueueStats) -> int:
    """Agents who will take calls: logged in and not paused (never fewer than those ready now)."""
    return max(stats.logged_in - stats.paused, stats.ready, 0)


def handle_time(stats: QueueStats, wrapup: float) -> float:
    """Seconds an agent is kept by one call: talk time, plus the queue's wrap-up when there is talk time."""
    return stats.avg_talk + wrapup if stats.avg_talk > 0 else 0.0


def by_position(stats: QueueStats, wrapup: float) -> Estimate:
    """ivrkit's estimator: ``(B + 1) * H / N`` (see the module documentation)."""
    position, ready = position_of(stats), max(stats.ready, 0)
    if position <= ready:
        return Estimate(0.0, "position")
    agents, handle = staffed(stats), handle_time(stats, wrapup)
    if handle <= 0:
        return Estimate(None, "position", "no average talk time yet")
    blocked = max(0, position - 1 - ready)
    return Estimate((blocked + 1) * handle / agents, "position")


def like_asterisk(stats: QueueStats, wrapup: float) -> Estimate:
    """Asterisk's figure: the queue's average hold time, the same for every position."""
    return Estimate(max(stats.avg_hold, 0.0), "asterisk")


ESTIMATORS: dict[str, Callable[[QueueStats, float], Estimate]] = {
    "position": by_position,
    "asterisk": like_asterisk,
}


def estimate_wait(
    stats: QueueStats, method: str = "position", *, wrapup: float = 0.0, min_answered: int = DEFAULT_MIN_ANSWERED
) -> Estimate:
    """The wait for a caller joining now, or no number when the data is too thin (the minimum-data rule)."""
    if stats.answered < min_answered:
        return Estimate(None, method, f"{stats.answered} recent answered call(s), fewer than {min_answered}")
    if staffed(stats) == 0:
        return Estimate(None, method, "no staffed agent")
    return ESTIMATORS[method](stats, wrapup)
