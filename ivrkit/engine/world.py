"""External state a flow can read: queue statistics and maintenance state.

The live server reads them from Asterisk and the state store (later issues); flow tests fake them. Both are
reached through :class:`World`, so expressions such as ``queues.support.waiting > 10`` read the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ivrkit.engine.channel import Channel


@dataclass(frozen=True)
class QueueStats:
    """A queue as a caller is about to meet it."""

    waiting: int = 0  # callers waiting
    logged_in: int = 0  # agents logged in
    ready: int = 0  # agents logged in and not paused
    free: int = 0  # agents ready and not on a call
    avg_hold: float = 0.0  # seconds
    avg_talk: float = 0.0  # seconds
    longest_wait: float = 0.0  # seconds
    position: int = 0  # this caller's position once queued (0: not in the queue)
    paused: int = 0  # agents logged in but paused
    answered: int = 0  # recently answered calls the wait estimate can learn from
    exists: bool = True  # False: Asterisk does not know the queue (its functions then read as empty)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> QueueStats:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown queue statistic(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)


class World(Protocol):
    def queue(self, name: str, channel: Channel) -> QueueStats:
        """The queue as this call would meet it now (the live world asks Asterisk through the call's channel)."""
        ...

    def maintenance(self, flow: str) -> str | None:
        """The maintenance mode in force for a flow (``planned``, ``emergency``, ``closed``) or None."""
        ...


@dataclass
class StaticWorld:
    """Fixed external state: what flow tests and the simulator use."""

    queues: dict[str, QueueStats]
    maintenance_modes: dict[str, str]  # flow name (or "*" for all) → mode

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> StaticWorld:
        data = data or {}
        queues = {name: QueueStats.from_mapping(stats or {}) for name, stats in (data.get("queues") or {}).items()}
        maintenance = data.get("maintenance") or {}
        if isinstance(maintenance, str):
            maintenance = {"*": maintenance}
        return cls(queues, dict(maintenance))

    def queue(self, name: str, channel: Channel) -> QueueStats:
        return self.queues.get(name, QueueStats())

    def maintenance(self, flow: str) -> str | None:
        return self.maintenance_modes.get(flow) or self.maintenance_modes.get("*")
