"""Every call leaves a journal: steps entered, prompts played, keys received, outcome, with timestamps.

The simulator's transcript and the flow-test assertions read it; the live server logs each event with the
call's unique id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)  # not frozen: a frozen dataclass is slow to build, and a call records a dozen
class Event:
    at: float  # seconds since the call started
    kind: str  # session, step, played, key, choice, collected, no_input, invalid, cancel, set, handoff, end, …
    flow: str
    step: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        details = " ".join(f"{k}={v}" for k, v in self.detail.items() if v not in (None, ""))
        where = f"{self.flow}.{self.step}" if self.step else self.flow
        return f"{self.at:8.2f}s  {self.kind:<10} {where:<28} {details}".rstrip()


@dataclass
class Journal:
    started: dt.datetime
    events: list[Event] = field(default_factory=list)
    listeners: list[Callable[[Event], None]] = field(default_factory=list)

    def record(self, now: dt.datetime, kind: str, flow: str, step: str | None, /, **detail: Any) -> Event:
        return self.add(now, kind, flow, step, detail)

    def add(self, now: dt.datetime, kind: str, flow: str, step: str | None, detail: dict[str, Any]) -> Event:
        """:meth:`record` with the details as a dictionary the journal may keep."""
        event = Event(round((now - self.started).total_seconds(), 3), kind, flow, step, detail)
        self.events.append(event)
        for listener in self.listeners:
            listener(event)
        return event

    def where(self) -> tuple[str | None, str | None]:
        """The flow and step of the latest event: where the call is now (logs ask it for each line)."""
        if not self.events:
            return None, None
        last = self.events[-1]
        return last.flow, last.step

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def steps_entered(self) -> list[str]:
        return [f"{e.flow}.{e.step}" for e in self.of_kind("step")]

    def prompts_heard(self) -> list[str]:
        """Prompt ids and spoken values as the caller heard them (interrupted ones included)."""
        heard = []
        for event in self.of_kind("played"):
            heard.append(
                event.detail["prompt"] if "prompt" in event.detail else f"{event.detail['say']}:{event.detail['value']}"
            )
        return heard

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"at": e.at, "kind": e.kind, "flow": e.flow, "step": e.step, **e.detail} for e in self.events]
