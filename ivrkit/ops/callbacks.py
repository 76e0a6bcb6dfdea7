"""What operators see of callbacks, the same through ``ivrkit callbacks`` and the admin API: the JSON shape of a
callback and its events, the state filter, and the words for a cancel that cannot happen.

Times in JSON are UTC in ISO 8601 (``2026-11-23T10:00:05Z``) so they read the same wherever the tool runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from ivrkit.callbacks.model import ACTIVE, IN_FLIGHT, Callback, CallbackEvent, State
from ivrkit.ops.requests import DEFAULT_LIMIT, check_who, parse_limit  # noqa: F401 (the routes' views)

ACTIVE_FILTER = "active"  # pending, dialing and connected
STATE_FILTERS = (*(state.value for state in State), ACTIVE_FILTER)


def parse_states(values: Iterable[str]) -> frozenset[State] | None:
    """The states named in ``values`` (each may list several, comma-separated; ``active`` stands for the
    active ones); None when none is named (every state). ValueError names the states there are."""
    states: set[State] = set()
    for value in values:
        for name in value.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name == ACTIVE_FILTER:
                states.update(ACTIVE)
                continue
            try:
                states.add(State(name))
            except ValueError:
                raise ValueError(f"unknown state {name!r}; states are {', '.join(STATE_FILTERS)}") from None
    return frozenset(states) if states else None


def iso(at: float | None) -> str | None:
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def callback_json(callback: Callback) -> dict[str, Any]:
    """A callback for operators; ``next_attempt_at`` only while it is pending (else it means nothing)."""
    return {
        "id": callback.id,
        "state": callback.state.value,
        "number": callback.number,
        "queue": callback.queue,
        "flow": callback.flow,
        "origin": callback.origin.value,
        "reason": callback.reason,
        "language": callback.language,
        "priority": callback.priority,
        "attempts": callback.attempts,
        "last_result": callback.last_result.value if callback.last_result is not None else None,
        "joined_at": iso(callback.joined_at),
        "requested_at": iso(callback.requested_at),
        "updated_at": iso(callback.updated_at),
        "next_attempt_at": iso(callback.next_attempt_at) if callback.state is State.PENDING else None,
        "channel_id": callback.channel_id,
        "uniqueid": callback.uniqueid,
    }


def event_json(event: CallbackEvent) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "from": event.from_state.value if event.from_state is not None else None,
        "to": event.to_state.value,
        "attempt": event.attempt,
        "reason": event.reason,
    }


def detail_json(callback: Callback, events: Sequence[CallbackEvent]) -> dict[str, Any]:
    """A callback with its audit trail, oldest event first."""
    return {**callback_json(callback), "events": [event_json(event) for event in events]}


def list_json(callbacks: Sequence[Callback], limit: int) -> dict[str, Any]:
    """A page of callbacks, newest first; ``truncated`` when there may be more than ``limit``."""
    return {
        "callbacks": [callback_json(callback) for callback in callbacks],
        "count": len(callbacks),
        "limit": limit,
        "truncated": len(callbacks) >= limit,
    }


def in_flight_note(callback: Callback) -> str | None:
    """What cancelling does not do, for a callback with an attempt in flight."""
    if callback.state not in IN_FLIGHT:
        return None
    return (
        f"an attempt was {callback.state.value} (channel {callback.channel_id}): no further attempt is made, but a "
        "call already in progress is not hung up"
    )


def check_cancel(by: object, reason: object) -> tuple[str, str]:
    """Who cancels and why, as the audit trail will record them; ValueError says what is wrong."""
    return check_who(by, reason, doing="cancels")
