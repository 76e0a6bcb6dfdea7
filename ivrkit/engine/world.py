"""The outside of a call: queue statistics and maintenance state a flow reads, and texts it sends.

The live server reads them from Asterisk and the state store and queues texts in the outbox; flow tests fake
them. Both are reached through :class:`World`, so expressions such as ``queues.support.waiting > 10`` read the
same way and an ``sms`` step behaves the same in a flow test and on a live call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ivrkit.engine.channel import Channel


@dataclass(frozen=True)
class QueueStats:
    """A queue as a caller is about to meet it."""

    waiting: int = 0  # callers waiting
    logged_in: int = 0  # agents logged in
    ready: int = 0  # agents who can take a call now: not on a call, not paused, not in wrap-up
    free: int = 0  # agents not on a call and not paused (wrap-up included: QUEUE_MEMBER's `free`)
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


@dataclass(frozen=True)
class QueueJoin:
    """A queue step hands a caller to a queue: what they were told about the wait, for the estimate log."""

    uniqueid: str
    flow: str
    queue: str
    position: int  # the caller's position on joining
    estimate: float | None  # seconds the estimator gave; None: too little data for a number
    said: str  # what the caller heard about the wait: number, safe (the safe phrase), none (next in line), off
    method: str  # the estimator (position, asterisk)
    at: dt.datetime


@dataclass(frozen=True)
class QueueExit:
    """The dialplan gave back a call it held in a queue (or the caller hung up there): the wait that followed."""

    uniqueid: str
    flow: str
    queue: str
    wait: float  # seconds in the queue
    result: str  # answered, abandoned, a queue outcome (timeout, full, …) or an exit-key outcome
    talk: float | None  # seconds with an agent, for answered calls when Asterisk tells
    at: dt.datetime


@dataclass(frozen=True)
class TextRequest:
    """A text message a flow step asks for. The world signs the link, renders the text and queues it; the step
    never sees the signing key nor waits for a gateway."""

    to: str  # the caller's number (the step checked it can receive texts)
    key: str  # idempotency key: a second request with the same key queues nothing new
    render: Callable[[str], str]  # the message, given the link ("" when there is no link)
    link: str | None = None  # the base URL the signed token is appended to
    context: Mapping[str, Any] = field(default_factory=dict)  # what the token carries: caller, flow, queue, …
    at: dt.datetime | None = None  # the call's time, for the token's issue time


@dataclass(frozen=True)
class SentText:
    """A text as queued: what will go out, to whom."""

    to: str
    text: str
    link: str
    key: str
    new: bool = True  # False: the key was queued before, this is that earlier message


class TextNotQueued(Exception):
    """The world cannot queue a text now (no store, the store failed): the step treats the caller as unable to
    receive one."""


def link_with_token(base: str, token: str) -> str:
    """``base`` with the token as the query parameter ``t``."""
    return f"{base}{'&' if '?' in base else '?'}t={token}" if base else ""


class World(Protocol):
    def queue(self, name: str, channel: Channel) -> QueueStats:
        """The queue as this call would meet it now (the live world asks Asterisk through the call's channel)."""
        ...

    def maintenance(self, flow: str) -> str | None:
        """The maintenance mode in force for a flow (``planned``, ``emergency``, ``closed``) or None."""
        ...

    def send_text(self, request: TextRequest) -> SentText:
        """Queue a text message (durably, before the caller hears it was sent); raises :class:`TextNotQueued`."""
        ...

    def queue_joined(self, join: QueueJoin) -> None:
        """A caller is handed to a queue (the live world logs the estimate they heard)."""
        ...

    def queue_left(self, left: QueueExit) -> None:
        """A caller the flow queued has left the queue (the live world records the actual wait against the
        estimate)."""
        ...


@dataclass
class StaticWorld:
    """Fixed external state: what flow tests and the simulator use."""

    queues: dict[str, QueueStats]
    maintenance_modes: dict[str, str]  # flow name (or "*" for all) → mode
    joined: list[QueueJoin] = field(default_factory=list)  # what queue steps reported, for tests to read
    left: list[QueueExit] = field(default_factory=list)
    texts: list[SentText] = field(default_factory=list)  # what sms steps queued, for tests to read

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

    def send_text(self, request: TextRequest) -> SentText:
        """Record the text once per key; the link carries the placeholder token ``SIMULATED``."""
        for sent in self.texts:
            if sent.key == request.key:
                return replace(sent, new=False)
        link = link_with_token(request.link or "", "SIMULATED")
        sent = SentText(request.to, request.render(link), link, request.key)
        self.texts.append(sent)
        return sent

    def queue_joined(self, join: QueueJoin) -> None:
        self.joined.append(join)

    def queue_left(self, left: QueueExit) -> None:
        self.left.append(left)

    def fresh(self) -> StaticWorld:
        """The same queues and maintenance with nothing recorded: a world for one call, so that calls sharing a
        setup (flow-test cases under the same `defaults`) never see each other's records."""
        return StaticWorld(self.queues, self.maintenance_modes)

    def changed(self, queues: Mapping[str, Mapping[str, Any]]) -> StaticWorld:
        """This world after queues changed (statistics not named keep their values): the simulator applies
        what a flow test says happened while the caller was in the dialplan. The records are shared."""
        updated = dict(self.queues)
        for name, stats in queues.items():
            updated[name] = replace(updated.get(name, QueueStats()), **stats)
        return StaticWorld(updated, self.maintenance_modes, self.joined, self.left, self.texts)
