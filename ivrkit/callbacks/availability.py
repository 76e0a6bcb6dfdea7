"""Who can take a callback now: a queue's ready agents and waiting callers, read from AMI ``QueueStatus``.

``QueueStatus Queue=<q>`` answers with one ``QueueParams``, one ``QueueMember`` per member and one
``QueueEntry`` per waiting caller (Asterisk 22.10, checked on the real PBX). A member is *ready* when it is
neither paused, nor on a call, nor ringing, nor wrapping up: ``Paused: 0``, ``InCall: 0``, ``Status: 1``
(``AST_DEVICE_NOT_INUSE``) and its ``LastCall`` longer ago than the wrap-up time — what
``QUEUE_MEMBER(q,ready)`` counts, so the flows' ``queues.<q>.ready`` and the dispatcher agree. ``Status`` is
the device state (0 unknown, 1 not in use, 2 in use, 3 busy, 4 invalid, 5 unavailable, 6 ringing, 7 ring+in
use, 8 on hold); a Local-channel member rings as 2 (in use). A device whose state Asterisk does not know (0)
is not counted, although ``QueueSummary``'s ``Available`` counts it: devices must report their state.
``Wrapuptime`` is the member's own wrap-up (0: the queue's, which QueueStatus does not tell: the flow's
``queues.<q>.wrapup`` is passed in).

A caller waiting since before a callback's requester joined is *ahead* of it: the callback keeps the place the
requester had, so it waits until the ready agents outnumber those callers (and the callbacks already ringing).
``Wait`` is whole seconds, so a join time read here is exact to a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ivrkit.ami.client import Message

NOT_IN_USE = 1


@dataclass(frozen=True)
class Member:
    name: str
    interface: str  # Location: Local/agent1@agents, PJSIP/2001...
    status: int  # device state, see the module docstring
    paused: bool
    in_call: bool
    last_call: float = 0.0  # Unix time its latest queue call ended (0: none yet)
    wrapup: float = 0.0  # its own wrap-up seconds (0: the queue's)

    def ready(self, now: float, queue_wrapup: float = 0.0) -> bool:
        if self.status != NOT_IN_USE or self.paused or self.in_call:
            return False
        wrapup = self.wrapup or queue_wrapup
        return not (self.last_call and wrapup and now - self.last_call < wrapup)


@dataclass(frozen=True)
class Entry:
    """A caller waiting in the queue."""

    uniqueid: str
    channel: str
    position: int
    joined_at: float  # Unix time, to the second: now - Wait
    priority: int


@dataclass(frozen=True)
class Availability:
    queue: str
    read_at: float  # Unix time of the QueueStatus answer
    members: tuple[Member, ...] = ()
    entries: tuple[Entry, ...] = ()
    wrapup: float = 0.0  # the queue's wrap-up seconds (the flow's queues.<q>.wrapup)

    @property
    def ready(self) -> int:
        """Members that can take a call now."""
        return sum(member.ready(self.read_at, self.wrapup) for member in self.members)

    def ahead_of(self, joined_at: float, *, ignore: Iterable[str] = ()) -> int:
        """Callers who joined before ``joined_at`` and still wait, leaving out the channels in ``ignore`` (the
        callbacks' own legs, counted as callbacks in flight)."""
        skipped = set(ignore)
        return sum(entry.joined_at < joined_at and entry.uniqueid not in skipped for entry in self.entries)


def parse_queue_status(queue: str, events: Iterable[Message], now: float, *, wrapup: float = 0.0) -> Availability:
    """The availability of ``queue`` from the events of a ``QueueStatus`` answer read at ``now``.

    Events of other queues are skipped (``QueueStatus`` without ``Queue`` lists them all); a field Asterisk
    left out or garbled counts against readiness (an unreadable member is not ready).

    >>> events = [
    ...     Message([("Event", "QueueMember"), ("Queue", "support"), ("Name", "ann"),
    ...              ("Location", "Local/ann@agents"), ("InCall", "0"), ("Status", "1"), ("Paused", "0")]),
    ...     Message([("Event", "QueueMember"), ("Queue", "support"), ("Name", "bob"),
    ...              ("Location", "Local/bob@agents"), ("InCall", "0"), ("Status", "1"), ("Paused", "1")]),
    ...     Message([("Event", "QueueMember"), ("Queue", "support"), ("Name", "cy"), ("Location", "Local/cy@agents"),
    ...              ("InCall", "0"), ("Status", "1"), ("Paused", "0"), ("LastCall", "995"), ("Wrapuptime", "0")]),
    ...     Message([("Event", "QueueEntry"), ("Queue", "support"), ("Position", "1"), ("Channel", "PJSIP/x-1"),
    ...              ("Uniqueid", "1700000000.1"), ("Wait", "42"), ("Priority", "0")]),
    ... ]
    >>> status = parse_queue_status("support", events, now=1000.0, wrapup=10)
    >>> status.ready, status.entries[0].joined_at, status.ahead_of(990.0), status.ahead_of(950.0)
    (1, 958.0, 1, 0)
    >>> parse_queue_status("support", events, now=1005.0, wrapup=10).ready  # cy's wrap-up is over
    2
    """
    members: list[Member] = []
    entries: list[Entry] = []
    for event in events:
        if event.get("Queue") != queue:
            continue
        if event.name == "QueueMember":
            members.append(
                Member(
                    name=event.get("Name", ""),
                    interface=event.get("Location") or event.get("StateInterface", ""),
                    status=_int(event.get("Status"), -1),
                    paused=_int(event.get("Paused"), 1) != 0,
                    in_call=_int(event.get("InCall"), 1) != 0,
                    last_call=float(_int(event.get("LastCall"), 0)),
                    wrapup=float(_int(event.get("Wrapuptime"), 0)),
                )
            )
        elif event.name == "QueueEntry":
            entries.append(
                Entry(
                    uniqueid=event.get("Uniqueid", ""),
                    channel=event.get("Channel", ""),
                    position=_int(event.get("Position"), 0),
                    joined_at=now - _int(event.get("Wait"), 0),
                    priority=_int(event.get("Priority"), 0),
                )
            )
    return Availability(queue, now, tuple(members), tuple(entries), wrapup)


def _int(value: str | None, default: int) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return default
