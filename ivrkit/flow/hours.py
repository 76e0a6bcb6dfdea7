"""Business hours: weekly opening times in a timezone, with holidays and special opening days.

Written the way a contact-center planner says it::

    timezone: Europe/Berlin
    open: {mon-fri: "08:00-20:00", sat: "09:00-13:00"}
    holidays: [2026-12-25, 2026-12-26]            # closed all day
    # or, with special hours:  holidays: {2026-12-24: "08:00-12:00", 2026-12-25: closed}

Ranges may cross midnight ("22:00-02:00") and may be lists ("08:00-12:00, 13:00-17:00").
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from ivrkit.flow.diagnostics import did_you_mean
from ivrkit.flow.fields import INVALID, Field, ParseContext
from ivrkit.flow.source import Mapping, Node, Scalar, Sequence, describe

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
Ranges = tuple[tuple[int, int], ...]  # minutes from midnight, end may exceed 1440 for overnight ranges


@dataclass(frozen=True)
class Schedule:
    timezone: str
    weekly: dict[int, Ranges] = field(default_factory=dict)  # weekday (0 = Monday) → ranges
    holidays: dict[dt.date, Ranges] = field(default_factory=dict)  # date → special ranges (empty = closed)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def _ranges(self, day: dt.date) -> Ranges:
        if day in self.holidays:
            return self.holidays[day]
        return self.weekly.get(day.weekday(), ())

    def status(self, now: dt.datetime) -> str:
        """``open``, ``holiday`` (a holiday and closed now) or ``closed``, for an aware ``now``."""
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        today, yesterday = local.date(), local.date() - dt.timedelta(days=1)
        if any(start <= minute < end for start, end in self._ranges(today)):
            return "open"
        if any(start <= minute + 1440 < end for start, end in self._ranges(yesterday)):
            return "open"
        return "holiday" if today in self.holidays else "closed"


def is_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _parse_ranges(node: Node, ctx: ParseContext) -> Ranges | Any:
    if isinstance(node, Scalar) and node.value in ("closed", None, False):
        return ()
    if isinstance(node, Scalar) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return ctx.error(node, f"'{node.raw}' was read as a number", 'quote opening times: "08:00-20:00"')
    texts: list[tuple[str, Node]] = []
    items = node.items if isinstance(node, Sequence) else [node]
    for item in items:
        if not isinstance(item, Scalar) or not isinstance(item.value, str):
            return ctx.error(item, f'expected opening times such as "08:00-20:00", got {describe(item)}')
        texts.extend((part, item) for part in item.value.split(","))
    ranges = []
    for text, item in texts:
        match = _RANGE.match(text)
        if not match:
            return ctx.error(
                item, f"'{text.strip()}' is not a time range", 'write it as "HH:MM-HH:MM", e.g. "08:00-20:00"'
            )
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            return ctx.error(item, f"'{text.strip()}' is not a valid time of day")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            end += 1440  # crosses midnight
        ranges.append((start, end))
    return tuple(ranges)


def _parse_days(key: str) -> list[int] | None:
    days: list[int] = []
    for part in key.lower().replace(" ", "").split(","):
        if part in ("daily", "all", "mon-sun"):
            days.extend(range(7))
        elif "-" in part:
            first, _, last = part.partition("-")
            if first not in DAYS or last not in DAYS:
                return None
            a, b = DAYS.index(first), DAYS.index(last)
            days.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        elif part in DAYS:
            days.append(DAYS.index(part))
        else:
            return None
    return days


def _parse_date(node: Scalar, ctx: ParseContext) -> dt.date | Any:
    value = node.value
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return ctx.error(node, f"'{node.raw}' is not a date", "write dates as YYYY-MM-DD, e.g. 2026-12-25")


class ScheduleField(Field[Schedule]):
    type_name = "business hours"

    def parse(self, node: Node, ctx: ParseContext) -> Schedule:
        if not isinstance(node, Mapping):
            return ctx.error(node, f"expected business hours {{timezone, open, holidays}}, got {describe(node)}")
        ok = True
        for key in node.keys():
            if key not in ("timezone", "open", "holidays"):
                ctx.error(
                    node.key_node(key),
                    f"unknown option '{key}' in business hours",
                    did_you_mean(key, ("timezone", "open", "holidays")) or "use timezone, open and holidays",
                )
                ok = False
        timezone = self._timezone(node, ctx)
        weekly: dict[int, Ranges] = {}
        open_node = node.get("open")
        if not isinstance(open_node, Mapping):
            return ctx.error(open_node or node, 'business hours need `open`, e.g. {mon-fri: "08:00-20:00"}')
        for key, value in open_node.items():
            days = _parse_days(key)
            if days is None:
                ctx.error(
                    open_node.key_node(key),
                    f"'{key}' is not a day or range of days",
                    "use mon, tue, wed, thu, fri, sat, sun, ranges such as mon-fri, lists such as sat,sun, or daily",
                )
                ok = False
                continue
            ranges = _parse_ranges(value, ctx)
            if ranges is INVALID:
                ok = False
                continue
            for day in days:
                weekly[day] = weekly.get(day, ()) + ranges
        holidays = self._holidays(node.get("holidays"), ctx)
        if not ok or timezone is INVALID or holidays is INVALID:
            return INVALID
        return Schedule(timezone, weekly, holidays)

    def _timezone(self, node: Mapping, ctx: ParseContext) -> str | Any:
        tz_node = node.get("timezone")
        if tz_node is None:
            return ctx.error(node, "business hours need a `timezone`, e.g. Europe/Berlin")
        name = tz_node.value if isinstance(tz_node, Scalar) else None
        if not is_timezone(str(name)):
            return ctx.error(
                tz_node,
                f"unknown timezone '{name}'",
                did_you_mean(str(name), zoneinfo.available_timezones()) or "use an IANA name such as Europe/Berlin",
            )
        return str(name)

    def _holidays(self, node: Node | None, ctx: ParseContext) -> dict[dt.date, Ranges] | Any:
        holidays: dict[dt.date, Ranges] = {}
        if node is None:
            return holidays
        if isinstance(node, Sequence):
            entries: list[tuple[Scalar, Node | None]] = []
            for item in node.items:
                if not isinstance(item, Scalar):
                    return ctx.error(item, f"expected a date, got {describe(item)}")
                entries.append((item, None))
        elif isinstance(node, Mapping):
            entries = [(node.key_node(k), v) for k, v in node.items()]
        else:
            return ctx.error(node, "expected a list of dates or a mapping of date: hours")
        for date_node, hours in entries:
            day = _parse_date(date_node, ctx)
            ranges = () if hours is None else _parse_ranges(hours, ctx)
            if day is INVALID or ranges is INVALID:
                return INVALID
            holidays[day] = ranges
        return holidays

    def json_schema(self) -> dict[str, Any]:
        ranges = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
        return {
            "type": "object",
            "required": ["timezone", "open"],
            "additionalProperties": False,
            "properties": {
                "timezone": {"type": "string", "description": "IANA timezone, e.g. Europe/Berlin"},
                "open": {
                    "type": "object",
                    "additionalProperties": ranges,
                    "description": 'Days to opening times, e.g. {mon-fri: "08:00-20:00"}',
                },
                "holidays": {
                    "anyOf": [
                        {"type": "array", "items": {"type": "string"}},
                        {"type": "object", "additionalProperties": ranges},
                    ]
                },
            },
        }
