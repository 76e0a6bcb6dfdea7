"""What every operator request carries, checked the same way for the CLI and the admin API: a list limit, and
who makes a change and why (both go into an audit trail)."""

from __future__ import annotations

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_BY_LENGTH = 100
MAX_REASON_LENGTH = 500


def parse_limit(value: str | int) -> int:
    """A list limit between 1 and ``MAX_LIMIT``; ValueError says what is allowed.

    >>> parse_limit("50")
    50
    """
    try:
        limit = int(value)
    except ValueError:
        raise ValueError(f"limit {value!r} is not a number; give 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit {limit} is out of range; give 1 to {MAX_LIMIT}")
    return limit


def check_who(by: object, reason: object, *, doing: str = "makes the change", reason_required: bool = False
              ) -> tuple[str, str]:
    """Who makes a change and why, as the audit trail records them; ValueError says what is wrong."""
    if not isinstance(by, str) or not by.strip():
        raise ValueError(f"say who {doing}: a non-empty 'by' (your name or ticket), recorded in the audit trail")
    if not isinstance(reason, str):
        raise ValueError("'reason' must be text")
    by, reason = by.strip(), reason.strip()
    if len(by) > MAX_BY_LENGTH or not by.isprintable():
        raise ValueError(f"'by' must be printable text of at most {MAX_BY_LENGTH} characters")
    if reason_required and not reason:
        raise ValueError("say why: a non-empty 'reason', recorded in the audit trail")
    if len(reason) > MAX_REASON_LENGTH or not reason.isprintable():
        raise ValueError(f"'reason' must be printable text of at most {MAX_REASON_LENGTH} characters")
    return by, reason
