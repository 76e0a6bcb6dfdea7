"""The one interface between the engine and a call: what both the live AGI channel and the simulator offer.

It is deliberately small. Menus, digit collection, retries and the cancel key are built in the engine on top
of ``play``/``say`` (interruptible by escape keys) and ``wait_for_key``, so a flow behaves the same on a real
PBX and in a flow test. Every method raises :class:`~ivrkit.engine.transitions.CallerHungUp` once the caller
has hung up, except ``get_variable``/``set_variable``, which still work on a dead channel as in Asterisk.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class CallInfo:
    """What is known about a call when its session starts (from the AGI environment)."""

    uniqueid: str
    caller_number: str = ""
    caller_name: str = ""
    dnid: str = ""
    channel: str = ""
    language: str = ""
    args: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)


class Channel(Protocol):
    info: CallInfo

    def now(self) -> dt.datetime:
        """The current time, timezone-aware (simulated in tests)."""
        ...

    def play_prompt(self, prompt: str, language: str, escape: str) -> str | None:
        """Play a prompt; return the escape key that interrupted it, or None when it played to the end."""
        ...

    def say(self, kind: str, value: str, language: str, escape: str) -> str | None:
        """Speak a number, digits, letters or a date/time; interruptible like ``play_prompt``."""
        ...

    def wait_for_key(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` seconds for one key; None on timeout."""
        ...

    def get_variable(self, name: str) -> str | None: ...

    def set_variable(self, name: str, value: str) -> None: ...

    def set_variables(self, values: dict[str, str]) -> None:
        """Several variables at once (one round trip on a live call where the values allow it)."""
        ...

    def hangup(self) -> None: ...
