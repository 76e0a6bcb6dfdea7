"""What a call meets while its flow is in maintenance, and ``maintenance`` in expressions.

When a session starts, the runner asks :func:`in_force_for`: the world's maintenance (switched on by an
operator, scheduled, tripped) and the flow's own YAML windows, by the precedence of
:mod:`ivrkit.maintenance.model`. When something is in force, :func:`meet` plays the mode's prompts and the
spoken end and returns the mode's action as the transition, instead of the flow's start step. The flow's side
(modes, windows, breaker) is :mod:`ivrkit.flow.maintenance`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from ivrkit.engine.transitions import Finish, GoTo, Transition
from ivrkit.flow.expressions import Template
from ivrkit.flow.maintenance import HANGUP, ModeHandling, TimeWords
from ivrkit.flow.segments import PromptSegment, SaySegment, Segment
from ivrkit.maintenance.model import PRECEDENCE, Maintenance, Mode, in_force
from ivrkit.steps.queue import Queue
from ivrkit.steps.transfer import transfer_hand_off

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext
    from ivrkit.flow.model import Flow


class MaintenanceSource(Protocol):
    """What knows the maintenance in force: the call's world, or the live store reader alone."""

    def maintenance(self, flow: str, now: dt.datetime) -> Maintenance | None: ...


def in_force_for(world: MaintenanceSource, flow: Flow, now: dt.datetime) -> Maintenance | None:
    """The maintenance a call to ``flow`` meets at ``now``: the world's, or the flow's own YAML window in force,
    whichever wins by the store's rules (mode first, then the flow's own scope, then the latest start)."""
    found = world.maintenance(flow.name, now)
    declared = in_force(flow.maintenance.windows, flow.name, now) if flow.maintenance is not None else None
    if found is None or declared is None:
        return found or declared

    def rank(candidate: Maintenance) -> tuple[int, int, float]:
        since = candidate.since or now
        return PRECEDENCE.index(candidate.mode), 0 if candidate.scope == flow.name else 1, -since.timestamp()

    return min((found, declared), key=rank)


def mode_now(world: MaintenanceSource, flows: Mapping[str, Flow], flow: str) -> str | None:
    """The maintenance mode a call to ``flow`` would meet now, YAML windows included (a flow not loaded: the
    world's alone). The callback dispatcher dials none of a flow's callbacks while it is not None."""
    now = dt.datetime.now(dt.UTC)
    loaded = flows.get(flow)
    found = in_force_for(world, loaded, now) if loaded is not None else world.maintenance(flow, now)
    return None if found is None else found.mode.value


def handling_for(flow: Flow, mode: Mode) -> ModeHandling:
    """The mode's prompts, spoken end and action; without a ``maintenance:`` block, the gate's prompt and a
    hang-up (what the compiled gate does)."""
    gate = (flow.dialplan.maintenance.prompt(mode.value),)
    if flow.maintenance is None:
        return ModeHandling(gate, (), HANGUP)
    handling = flow.maintenance.handling(mode)
    return handling if handling.prompt is not None else replace(handling, prompt=gate)


def spoken_end(until: dt.datetime, now: dt.datetime, timezone: str, words: TimeWords) -> list[Segment]:
    """The end as a caller hears it, in the flow's timezone: "today at" 14:00, "tomorrow at" 08:00, or "on"
    <date> "at" 08:00. The channel says the time as the caller's language does (2 PM, 14:00).

    >>> from ivrkit.flow.maintenance import TimeWords
    >>> at = lambda day, hour: dt.datetime(2026, 12, day, hour, tzinfo=dt.UTC)
    >>> def heard(end, now):
    ...     return [s.prompt if isinstance(s, PromptSegment) else f"{s.say}:{s.value.source}"
    ...             for s in spoken_end(end, now, "Europe/Berlin", TimeWords())]
    >>> heard(at(1, 13), at(1, 9))
    ['reopen-today', 'time:14:00']
    >>> heard(at(1, 23), at(1, 9))      # midnight in Berlin: tomorrow
    ['reopen-tomorrow', 'time:00:00']
    >>> heard(at(3, 7), at(1, 9))
    ['reopen-on', 'date:2026-12-03', 'reopen-at', 'time:08:00']
    """
    zone = zoneinfo.ZoneInfo(timezone)
    end = until.astimezone(zone)
    days = (end.date() - now.astimezone(zone).date()).days
    clock = SaySegment("time", Template.compile(f"{end:%H:%M}"))
    if days <= 0:
        return [PromptSegment(words.today), clock]
    if days == 1:
        return [PromptSegment(words.tomorrow), clock]
    return [PromptSegment(words.on), SaySegment("date", Template.compile(end.date().isoformat())),
            PromptSegment(words.at), clock]


def meet(call: CallContext, found: Maintenance) -> Transition:
    """Play what the mode says and return its action: a hang-up, a step, or a transfer or queue hand-off."""
    flow = call.flow
    handling = handling_for(flow, found.mode)
    action = handling.then
    zone = zoneinfo.ZoneInfo(flow.timezone)
    until = found.until.astimezone(zone).isoformat(timespec="minutes") if found.until is not None else None
    call.log("maintenance", mode=found.mode.value, scope=found.scope, until=until, reason=found.reason or None,
             action=action.kind, target=action.target)
    segments: list[Segment] = [PromptSegment(prompt) for prompt in handling.prompt or ()]
    if found.until is not None and handling.reopening:
        words = flow.maintenance.time_words if flow.maintenance is not None else TimeWords()
        segments += [PromptSegment(prompt) for prompt in handling.reopening]
        segments += spoken_end(found.until, call.now(), flow.timezone, words)
    call.play(segments)
    if action.kind == "goto" and action.step is not None:
        return GoTo(action.step)
    if action.transfer is not None:
        return transfer_hand_off(action.transfer, call.scope())
    if action.queue is not None:
        return Queue.hand_off_to(action.queue)
    return Finish(f"maintenance-{found.mode.value}")


class InScope:
    """``maintenance`` in expressions: ``.mode``, ``.scope`` (the flow, or ``*``), ``.until`` (in the flow's
    timezone, or None) and ``.reason``. It equals its mode, so ``maintenance == 'planned'`` reads as before."""

    __slots__ = ("mode", "reason", "scope", "until")

    def __init__(self, found: Maintenance, timezone: str):
        self.mode: str = found.mode.value
        self.scope = found.scope
        self.until = found.until.astimezone(zoneinfo.ZoneInfo(timezone)) if found.until is not None else None
        self.reason = found.reason

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, str):
            return self.mode == other
        if isinstance(other, InScope):
            return (self.mode, self.scope, self.until, self.reason) == (other.mode, other.scope, other.until,
                                                                       other.reason)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.mode)

    def __str__(self) -> str:
        return self.mode

    def __repr__(self) -> str:
        until = f" until {self.until.isoformat(timespec='minutes')}" if self.until is not None else ""
        return f"<maintenance {self.mode} ({self.scope}){until}>"
