"""Maintenance windows and what a call meets.

A *window* is one stretch of maintenance for a scope (a flow name, or :data:`GLOBAL` for every flow): it
starts at ``starts_at`` and ends at ``ends_at`` (``None``: until switched off) or earlier when an operator
switches it off (``ended_at``). Several windows can cover a call at once (a global emergency during a flow's
planned upgrade); :func:`in_force` picks the one the caller hears.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


class Mode(enum.StrEnum):
    PLANNED = "planned"  # "we are upgrading our systems, please call back later"
    EMERGENCY = "emergency"  # "our service is temporarily unavailable, we are working to restore it"
    CLOSED = "closed"  # "we reopen at 14:00": the window's end is spoken


# First wins; after these come the flow's own holiday, closed hours, then open (the flow's hours step).
PRECEDENCE = (Mode.EMERGENCY, Mode.PLANNED, Mode.CLOSED)

GLOBAL = "*"  # the scope of a window that applies to every flow


class Source(enum.StrEnum):
    """Where a change came from (the audit trail's "from where")."""

    CLI = "cli"
    API = "api"
    SCHEDULE = "schedule"  # a window declared in YAML, or a scheduled start or end reached
    BREAKER = "breaker"  # the circuit breaker


@dataclass(frozen=True)
class Maintenance:
    """What a call meets: ``World.maintenance(flow)`` returns this, or ``None`` when the flow is open."""

    mode: Mode
    scope: str  # a flow name or GLOBAL
    until: dt.datetime | None  # aware; None: until switched off
    reason: str = ""
    since: dt.datetime | None = None


@dataclass(frozen=True)
class Window:
    """A stored (or YAML-declared) maintenance window."""

    id: str
    scope: str  # a flow name or GLOBAL
    mode: Mode
    starts_at: dt.datetime  # aware
    ends_at: dt.datetime | None  # aware; None: until switched off
    reason: str
    by: str
    source: Source
    ended_at: dt.datetime | None = None  # switched off (or replaced) at this time

    def covers(self, now: dt.datetime) -> bool:
        """Whether the window is in force at ``now``: started, not past its end, not switched off."""
        if self.ended_at is not None and self.ended_at <= now:
            return False
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def maintenance(self) -> Maintenance:
        return Maintenance(self.mode, self.scope, self.ends_at, self.reason, self.starts_at)


@dataclass(frozen=True)
class AuditEntry:
    """One recorded change: who, when, what, why, until when, from where."""

    at: dt.datetime
    action: str  # "on", "off", "expired", "scheduled", "tripped", "cleared"
    scope: str
    mode: Mode | None
    by: str
    source: Source
    reason: str
    until: dt.datetime | None
    detail: str = ""
    window_id: str = ""  # the window the change is about


def declared_id(flow: str, mode: Mode, starts_at: dt.datetime, ends_at: dt.datetime | None, reason: str) -> str:
    """The id of a window declared in a flow file: made from what the file says, so reading the file again
    (another reload, another process) gives the same window, and the store keeps it once. The times count as
    instants: the same window written in another timezone is the same window.

    >>> upgrade = dt.datetime(2026, 12, 1, 21, tzinfo=dt.timezone.utc)
    >>> declared_id("support", Mode.PLANNED, upgrade, upgrade + dt.timedelta(hours=4), "database upgrade")
    '22d0a043076a'
    >>> berlin = dt.timezone(dt.timedelta(hours=1))
    >>> declared_id("support", Mode.PLANNED, upgrade.astimezone(berlin), upgrade + dt.timedelta(hours=4),
    ...             " database upgrade ")  # the same instants, the same reason
    '22d0a043076a'
    >>> declared_id("support", Mode.PLANNED, upgrade, upgrade + dt.timedelta(hours=5), "database upgrade")
    '0570682af054'
    """

    def instant(moment: dt.datetime | None) -> str:
        if moment is None:
            return ""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{moment.isoformat()} has no time zone; a declared window's times are aware")
        return moment.astimezone(dt.UTC).isoformat()

    text = "\n".join((flow, Mode(mode).value, instant(starts_at), instant(ends_at), reason.strip()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def in_force(windows: Iterable[Window], flow: str, now: dt.datetime) -> Maintenance | None:
    """The maintenance a call to ``flow`` meets at ``now``, or ``None``.

    Windows for ``flow`` and global windows count when ``[starts_at, ends_at)`` contains ``now`` and they have
    not been switched off. The mode decides first (:data:`PRECEDENCE`), then a flow's own window beats a
    global one, then the latest start.

    >>> utc = dt.timezone.utc
    >>> at = lambda hour: dt.datetime(2026, 12, 1, hour, tzinfo=utc)
    >>> def window(id, scope, mode, start, end=None, ended=None):
    ...     return Window(id, scope, Mode(mode), at(start), end and at(end), "", "ops", Source.CLI,
    ...                   ended and at(ended))
    >>> upgrade = window("w1", "support", "planned", 8, 12)
    >>> in_force([upgrade], "support", at(9)).mode
    <Mode.PLANNED: 'planned'>
    >>> in_force([upgrade], "sales", at(9)) is None        # another flow
    True
    >>> in_force([upgrade], "support", at(12)) is None     # the end is not part of the window
    True
    >>> fault = window("w2", GLOBAL, "emergency", 9)
    >>> in_force([upgrade, fault], "support", at(10)).scope  # emergency beats planned, even global
    '*'
    >>> closed = window("w3", GLOBAL, "closed", 7, 20)
    >>> own = window("w4", "support", "closed", 6, 20)
    >>> in_force([closed, own], "support", at(10)).scope   # same mode: the flow's own window
    'support'
    >>> in_force([window("w5", "support", "planned", 8, ended=9)], "support", at(10)) is None  # switched off
    True
    """
    best: tuple[int, int, dt.datetime] | None = None
    chosen: Window | None = None
    for window in windows:
        if window.scope not in (flow, GLOBAL) or not window.covers(now):
            continue
        # Smaller sorts first: mode precedence, then flow scope (0) over global (1), then the latest start.
        key = (PRECEDENCE.index(window.mode), 0 if window.scope == flow else 1, window.starts_at)
        if best is None or key[:2] < best[:2] or (key[:2] == best[:2] and key[2] > best[2]):
            best, chosen = key, window
    return None if chosen is None else chosen.maintenance()
