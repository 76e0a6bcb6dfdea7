"""What a queue step says just before the caller joins: position and wait, under the rules callers expect.

* Nothing is said to a caller who is next: position 1, or a ready agent for them (position <= ready agents).
* A position is never announced as going up within a call: the last position the caller heard is kept in the
  call's state (it survives hand-offs), and a higher one is left out; the wait is still said.
* The wait is a number from the estimator, or the safe phrase when the data is too thin
  (:mod:`ivrkit.queueing.estimator`), worded as the step asks (:mod:`ivrkit.queueing.wording`).

Every join is estimated, even by a step that announces nothing, so the estimate log can show how accurate an
estimator would be before callers hear it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ivrkit.engine.world import QueueStats
from ivrkit.flow.fields import Boolean, Integer, Option, ParseContext, Record, Text
from ivrkit.flow.segments import Segment
from ivrkit.flow.source import Node
from ivrkit.queueing.estimator import DEFAULT_MIN_ANSWERED, ESTIMATORS, Estimate, estimate_wait, position_of
from ivrkit.queueing.wording import POSITION_PROMPT, WORDINGS, position_segments, prompts_for, wait_segments

# What the caller heard about the wait, as the estimate log and the metrics count it.
SAID_NUMBER, SAID_SAFE, SAID_NONE, SAID_OFF = "number", "safe", "none", "off"


@dataclass(frozen=True)
class AnnounceSpec:
    """A queue step's ``announce:`` options."""

    position: bool = True
    wait: bool = True
    estimator: str = "position"
    wording: str = "about"
    min_answered: int = DEFAULT_MIN_ANSWERED


def _refer_prompts(spec: AnnounceSpec, node: Node, ctx: ParseContext) -> AnnounceSpec:
    """Record the prompts the options may play, so ``ivrkit check`` finds missing ones."""
    prompts = ((POSITION_PROMPT,) if spec.position else ()) + (prompts_for(spec.wording) if spec.wait else ())
    for prompt in prompts:
        ctx.refer("prompt", prompt, node.location)
    return spec


ANNOUNCE_FIELD: Record[AnnounceSpec] = Record(  # the queue step's `announce:` option
    {
        "position": Option(Boolean(), "Say the caller's position (never a higher one than they heard).", True),
        "wait": Option(Boolean(), "Say the estimated wait (or the safe phrase when the data is thin).", True),
        "estimator": Option(
            Text(choices=tuple(ESTIMATORS), what="estimator"),
            "How the wait is estimated: `position` (callers ahead, agents and handle time) or `asterisk` "
            "(Asterisk's queue-wide average hold time); see docs/estimator.md.",
            AnnounceSpec.estimator,
        ),
        "wording": Option(
            Text(choices=WORDINGS, what="wording"),
            'How the wait is said: `about` ("about 5 minutes"), `less_than` ("less than 5 minutes") or `range` '
            '("between 4 and 6 minutes").',
            AnnounceSpec.wording,
        ),
        "min_answered": Option(
            Integer(0, 10000),
            "Recent answered calls the estimate needs; with fewer the caller hears `wait-longer-than-usual`.",
            AnnounceSpec.min_answered,
        ),
    },
    factory=AnnounceSpec,
    what="announce options",
    check=_refer_prompts,
)


@dataclass(frozen=True)
class Announcement:
    """What to say to a caller about to join, and what the estimate log keeps of it."""

    position: int  # the caller's position on joining
    estimate: Estimate
    said: str  # what the caller hears about the wait: number, safe, none (next in line), off (not announced)
    segments: list[Segment] = field(default_factory=list)
    said_position: bool = False


def is_next(stats: QueueStats, position: int) -> bool:
    """True when an agent takes the caller at once: first in line, or a ready agent for them."""
    return position <= max(1, stats.ready)


def announcement(
    spec: AnnounceSpec | None, stats: QueueStats, *, heard_position: int | None, wrapup: float = 0.0
) -> Announcement:
    """Apply the rules above to a queue as the caller meets it; ``heard_position``: the last one they heard."""
    method = spec.estimator if spec else AnnounceSpec.estimator
    min_answered = spec.min_answered if spec else AnnounceSpec.min_answered
    position = position_of(stats)
    estimate = estimate_wait(stats, method, wrapup=wrapup, min_answered=min_answered)
    if spec is None:
        return Announcement(position, estimate, SAID_OFF)
    if is_next(stats, position):
        return Announcement(position, estimate, SAID_NONE if spec.wait else SAID_OFF)
    segments: list[Segment] = []
    said_position = spec.position and (heard_position is None or position <= heard_position)
    if said_position:
        segments += position_segments(position)
    said = SAID_OFF
    if spec.wait:
        segments += wait_segments(estimate.seconds, spec.wording)
        said = SAID_NUMBER if estimate.known else SAID_SAFE
    return Announcement(position, estimate, said, segments, said_position)
