"""What a caller hears about a wait: rounded minutes in one of three styles, as prompts and spoken numbers.

Styles (``wording:`` of a queue step's ``announce``), for an estimate of ``s`` seconds:

* under a minute (``s < 60``), every style: ``wait-less-than-a-minute``;
* ``about``: the nearest whole minute, "Your expected wait is about 4 minutes" (``1 minute`` in the singular);
* ``less_than``: the next whole minute above, "… less than 5 minutes" (a promise the estimate keeps);
* ``range``: 80 % to 120 % of the estimate, rounded outwards, "… between 3 and 5 minutes" (at least one
  minute apart, the lower end at least 1).

Above 10 minutes a precise figure sounds more certain than any estimate is, so numbers move to multiples of 5
(``about`` to the nearest, a lower end down, ``less_than`` and an upper end up). Without a number the caller
hears the safe phrase ``wait-longer-than-usual``.
"""

from __future__ import annotations

import math

from ivrkit.flow.expressions import Template
from ivrkit.flow.segments import PromptSegment, SaySegment, Segment

WORDINGS = ("about", "less_than", "range")
POSITION_PROMPT = "queue-position"  # "Your position in the queue is" + the number
SAFE_PHRASE = "wait-longer-than-usual"
UNDER_A_MINUTE = "wait-less-than-a-minute"
STYLE_PROMPTS = {"about": "wait-about", "less_than": "wait-less-than", "range": "wait-between"}
AND, MINUTE, MINUTES = "and", "minute", "minutes"
COARSE_ABOVE = 10  # minutes: beyond this, figures are multiples of 5
RANGE_SPREAD = 0.2  # the range is the estimate ± 20 %


def prompts_for(wording: str) -> tuple[str, ...]:
    """Every prompt a style may play, so checks can find them in the catalog."""
    words = (STYLE_PROMPTS[wording], MINUTES) + ((AND,) if wording == "range" else (MINUTE,))
    return (*words, UNDER_A_MINUTE, SAFE_PHRASE)


def _down(minutes: int) -> int:
    return minutes if minutes <= COARSE_ABOVE else minutes // 5 * 5


def _up(minutes: int) -> int:
    return minutes if minutes <= COARSE_ABOVE else -(-minutes // 5) * 5


def minutes(seconds: float, wording: str) -> tuple[int, int]:
    """The figures said for ``seconds`` (at least 60) in a style: (n, n) or, for ``range``, (low, high)."""
    if wording == "about":
        value = math.floor(seconds / 60 + 0.5)  # half up, as Asterisk rounds its hold time
        value = value if value <= COARSE_ABOVE else math.floor(value / 5 + 0.5) * 5
        return value, value
    if wording == "less_than":
        value = _up(math.floor(seconds / 60) + 1)
        return value, value
    low = max(1, _down(math.floor(seconds * (1 - RANGE_SPREAD) / 60)))
    high = max(low + 1, _up(math.ceil(seconds * (1 + RANGE_SPREAD) / 60)))
    return low, high


def _number(value: int) -> SaySegment:
    return SaySegment("number", Template.compile(value))


def wait_segments(seconds: float | None, wording: str) -> list[Segment]:
    """The estimate as the caller hears it; None (no number) gives the safe phrase."""
    if seconds is None:
        return [PromptSegment(SAFE_PHRASE)]
    if seconds < 60:
        return [PromptSegment(UNDER_A_MINUTE)]
    low, high = minutes(seconds, wording)
    lead = PromptSegment(STYLE_PROMPTS[wording])
    if wording == "range":
        return [lead, _number(low), PromptSegment(AND), _number(high), PromptSegment(MINUTES)]
    return [lead, _number(low), PromptSegment(MINUTE if low == 1 else MINUTES)]


def position_segments(position: int) -> list[Segment]:
    """"Your position in the queue is" and the number."""
    return [PromptSegment(POSITION_PROMPT), _number(position)]
