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
    language: str = ""  # the channel's language when the session started (Asterisk's CHANNEL(language))
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
        """Speak a number, digits, letters or a date/time in ``language`` (the PBX says it with the sounds of the
        channel's language, which the engine keeps equal to the call's); interruptible like ``play_prompt``."""
        ...

    def set_language(self, language: str) -> None:
        """Make the PBX speak ``language`` from now on: its own sounds, SAY NUMBER/DIGITS/DATETIME and queue
        announcements follow the channel's language. Raises ValueError for a code that is not a language."""
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
