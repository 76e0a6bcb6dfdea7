"""Can this caller receive a text? Only a real number that matches the mobile patterns: never an anonymous,
withheld or empty caller id.

Caller ids arrive as whatever the network sent: ``anonymous``, ``unknown``, ``Restricted``, ``Private``,
``0``, an empty string, or a number. Anything that is not a plain number (an optional ``+`` and digits) is
treated as anonymous. Mobile ranges are per country, so the patterns are configurable (step or flow
``mobile:``); without them any number of 7 to 15 digits counts, landlines included.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ANONYMOUS = "anonymous"  # no usable number
NOT_MOBILE = "not-mobile"  # a number, but not one of the mobile patterns
DEFAULT_MOBILE = (re.compile(r"^\+?[1-9][0-9]{6,14}$"),)
_NUMBER = re.compile(r"^\+?[0-9]+$")


def unreachable_reason(number: str | None, patterns: Sequence[re.Pattern[str]] = DEFAULT_MOBILE) -> str | None:
    """Why ``number`` cannot receive a text (:data:`ANONYMOUS` or :data:`NOT_MOBILE`), or None when it can.

    >>> unreachable_reason("anonymous"), unreachable_reason(""), unreachable_reason("000")
    ('anonymous', 'anonymous', 'anonymous')
    >>> unreachable_reason("+4915112345678", [re.compile(r"^\\+491[5-7][0-9]{7,10}$")])
    >>> unreachable_reason("+4930123456", [re.compile(r"^\\+491[5-7][0-9]{7,10}$")])
    'not-mobile'
    """
    text = (number or "").strip()
    if not _NUMBER.match(text) or not text.strip("+0"):
        return ANONYMOUS
    if not any(pattern.fullmatch(text) for pattern in patterns or DEFAULT_MOBILE):
        return NOT_MOBILE
    return None
