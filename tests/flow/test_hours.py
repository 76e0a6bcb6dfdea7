"""Business hours: weekly ranges, overnight ranges, holidays and special hours, timezones and DST days."""

from __future__ import annotations

import datetime as dt
import textwrap
from typing import Any

import pytest

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.fields import INVALID, ParseContext
from ivrkit.flow.hours import Schedule, ScheduleField
from ivrkit.flow.source import read_source
from ivrkit.steps.hours import Hours
from tests.flow.helpers import load, messages

UTC = dt.UTC


def parse(text: str) -> tuple[Any, Diagnostics]:
    diagnostics = Diagnostics()
    node = read_source("hours.yaml", textwrap.dedent(text), diagnostics)
    assert node is not None, diagnostics.render()
    return ScheduleField().parse(node, ParseContext(diagnostics)), diagnostics


def schedule(text: str) -> Schedule:
    result, diagnostics = parse(text)
    assert result is not INVALID and not diagnostics.items, diagnostics.render()
    assert isinstance(result, Schedule)
    return result


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def local(zone: str, *args: int) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(*args, tzinfo=ZoneInfo(zone))


OFFICE = 'timezone: Europe/Berlin\nopen: {mon-fri: "08:00-20:00", sat: "09:00-13:00"}\n'


@pytest.mark.parametrize(
    ("moment", "status"),
    [
        ((2026, 11, 23, 8, 0), "open"),  # Monday at opening time
        ((2026, 11, 23, 7, 59), "closed"),
        ((2026, 11, 23, 19, 59), "open"),
        ((2026, 11, 23, 20, 0), "closed"),  # the end is exclusive
        ((2026, 11, 27, 12, 0), "open"),  # Friday
        ((2026, 11, 28, 12, 59), "open"),  # Saturday's shorter hours
        ((2026, 11, 28, 13, 0), "closed"),
        ((2026, 11, 29, 12, 0), "closed"),  # Sunday
    ],
)
def test_weekly_ranges(moment: tuple[int, ...], status: str) -> None:
    assert schedule(OFFICE).status(local("Europe/Berlin", *moment)) == status


def test_status_is_taken_in_the_schedules_timezone() -> None:
    office = schedule(OFFICE)
    assert office.status(utc(2026, 11, 23, 7, 30)) == "open"  # 08:30 in Berlin (CET, UTC+1)
    assert office.status(utc(2026, 11, 23, 6, 30)) == "closed"  # 07:30 in Berlin
    tokyo = schedule('timezone: Asia/Tokyo\nopen: {mon-fri: "09:00-17:00"}\n')
    assert tokyo.status(utc(2026, 11, 23, 1, 0)) == "open"  # 10:00 Monday in Tokyo
    assert tokyo.status(utc(2026, 11, 22, 23, 0)) == "closed"  # 08:00 Monday in Tokyo


@pytest.mark.parametrize(
    ("hours", "minute_of_monday", "status"),
    [
        ('"08:00-12:00, 13:00-17:00"', (11, 59), "open"),
        ('"08:00-12:00, 13:00-17:00"', (12, 30), "closed"),  # lunch
        ('"08:00-12:00, 13:00-17:00"', (13, 0), "open"),
        ('["08:00-12:00", "13:00-17:00"]', (12, 30), "closed"),
        ('["08:00-12:00", "13:00-17:00"]', (16, 0), "open"),
        ('"00:00-24:00"', (23, 59), "open"),
        ("closed", (12, 0), "closed"),
    ],
)
def test_several_ranges_a_day(hours: str, minute_of_monday: tuple[int, int], status: str) -> None:
    office = schedule(f"timezone: UTC\nopen: {{mon: {hours}}}\n")
    assert office.status(utc(2026, 11, 23, *minute_of_monday)) == status


@pytest.mark.parametrize(
    ("days", "open_days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),  # wraps round the weekend
        ("daily", {0, 1, 2, 3, 4, 5, 6}),
        ("wed", {2}),
    ],
)
def test_day_ranges(days: str, open_days: set[int]) -> None:
    office = schedule(f'timezone: UTC\nopen: {{"{days}": "10:00-11:00"}}\n')
    monday = dt.date(2026, 11, 23)
    opened = {
        offset for offset in range(7)
        if office.status(dt.datetime.combine(monday + dt.timedelta(days=offset), dt.time(10, 30), UTC)) == "open"
    }
    assert opened == open_days


@pytest.mark.parametrize(
    ("moment", "status"),
    [
        ((2026, 11, 27, 21, 59), "closed"),  # Friday before the night shift
        ((2026, 11, 27, 22, 0), "open"),
        ((2026, 11, 27, 23, 59), "open"),
        ((2026, 11, 28, 0, 0), "open"),  # Saturday, still Friday's range
        ((2026, 11, 28, 1, 59), "open"),
        ((2026, 11, 28, 2, 0), "closed"),
        ((2026, 11, 28, 22, 30), "closed"),  # Saturday has no night shift
        ((2026, 11, 27, 1, 0), "closed"),  # Thursday had none either
    ],
)
def test_overnight_range(moment: tuple[int, ...], status: str) -> None:
    night = schedule('timezone: UTC\nopen: {fri: "22:00-02:00"}\n')
    assert night.status(utc(*moment)) == status


def test_holiday_list_closes_the_whole_day() -> None:
    office = schedule(OFFICE + "holidays: [2026-12-24, 2026-12-25]\n")
    assert office.status(local("Europe/Berlin", 2026, 12, 24, 10, 0)) == "holiday"  # a Thursday
    assert office.status(local("Europe/Berlin", 2026, 12, 23, 10, 0)) == "open"
    assert office.holidays == {dt.date(2026, 12, 24): (), dt.date(2026, 12, 25): ()}


def test_special_hours_on_a_holiday() -> None:
    office = schedule(OFFICE + 'holidays: {2026-12-24: "08:00-12:00", 2026-12-25: closed, 2026-12-27: "10:00-14:00"}\n')
    assert office.status(local("Europe/Berlin", 2026, 12, 24, 11, 0)) == "open"
    assert office.status(local("Europe/Berlin", 2026, 12, 24, 13, 0)) == "holiday"
    assert office.status(local("Europe/Berlin", 2026, 12, 25, 11, 0)) == "holiday"
    assert office.status(local("Europe/Berlin", 2026, 12, 27, 11, 0)) == "open"  # a Sunday, opened specially


def test_overnight_range_runs_into_a_holiday() -> None:
    night = schedule('timezone: UTC\nopen: {daily: "22:00-02:00"}\nholidays: [2026-12-25]\n')
    assert night.status(utc(2026, 12, 25, 1, 0)) == "open"  # the shift that began on the 24th
    assert night.status(utc(2026, 12, 25, 23, 0)) == "holiday"


def test_spring_forward_day() -> None:
    """2026-03-29: Berlin moves from UTC+1 to UTC+2 at 02:00 local. Opening hours follow the wall clock."""
    office = schedule(OFFICE)
    assert office.status(utc(2026, 3, 27, 6, 30)) == "closed"  # Friday 07:30 CET
    assert office.status(utc(2026, 3, 30, 6, 30)) == "open"  # Monday 08:30 CEST: same UTC time, now open
    weekend = schedule('timezone: Europe/Berlin\nopen: {sun: "01:00-04:00"}\n')
    assert weekend.status(utc(2026, 3, 29, 0, 30)) == "open"  # 01:30 CET
    assert weekend.status(utc(2026, 3, 29, 1, 30)) == "open"  # 03:30 CEST (02:00-03:00 never happened)
    assert weekend.status(utc(2026, 3, 29, 2, 0)) == "closed"  # 04:00 CEST


def test_fall_back_day() -> None:
    """2026-10-25: Berlin goes back from UTC+2 to UTC+1 at 03:00 local; 02:30 happens twice."""
    early = schedule('timezone: Europe/Berlin\nopen: {sun: "02:00-03:00"}\n')
    assert early.status(utc(2026, 10, 25, 0, 30)) == "open"  # 02:30 CEST
    assert early.status(utc(2026, 10, 25, 1, 30)) == "open"  # 02:30 CET, the second time
    assert early.status(utc(2026, 10, 25, 2, 30)) == "closed"  # 03:30 CET


@pytest.mark.parametrize(
    ("text", "expected", "hint"),
    [
        ("timezone: Europe/Berln\nopen: {mon: '08:00-20:00'}\n",
         "1:11: error: unknown timezone 'Europe/Berln'", "did you mean 'Europe/Berlin'?"),
        ("timezone: Mars/Olympus\nopen: {mon: '08:00-20:00'}\n",
         "1:11: error: unknown timezone 'Mars/Olympus'", "use an IANA name such as Europe/Berlin"),
        ("open: {mon: '08:00-20:00'}\n",
         "1:1: error: business hours need a `timezone`, e.g. Europe/Berlin", None),
        ("timezone: UTC\n", '1:1: error: business hours need `open`, e.g. {mon-fri: "08:00-20:00"}', None),
        ("timezone: UTC\nopen: {mo-fr: '08:00-20:00'}\n",
         "2:8: error: 'mo-fr' is not a day or range of days",
         "use mon, tue, wed, thu, fri, sat, sun, ranges such as mon-fri, lists such as sat,sun, or daily"),
        ("timezone: UTC\nopen: {mon: '8-20'}\n", "2:13: error: '8-20' is not a time range",
         'write it as "HH:MM-HH:MM", e.g. "08:00-20:00"'),
        ("timezone: UTC\nopen: {mon: '25:00-26:00'}\n", "2:13: error: '25:00-26:00' is not a valid time of day", None),
        ("timezone: UTC\nopen: {mon: 20:00}\n", "2:13: error: '20:00' was read as a number",
         'quote opening times: "08:00-20:00"'),
        ("timezone: UTC\nopen: {mon: '08:00-20:00'}\nholidays: [christmas]\n",
         "3:12: error: 'christmas' is not a date", "write dates as YYYY-MM-DD, e.g. 2026-12-25"),
        ("timezone: UTC\nopen: {mon: '08:00-20:00'}\nholiday: [2026-12-25]\n",
         "3:1: error: unknown option 'holiday' in business hours", "did you mean 'holidays'?"),
    ],
)
def test_mistakes(text: str, expected: str, hint: str | None) -> None:
    result, diagnostics = parse(text)
    assert result is INVALID
    assert messages(diagnostics) == [expected]
    assert diagnostics.items[0].hint == hint


def test_named_schedule_in_a_flow() -> None:
    flow, diagnostics = load("""
        flow: support
        start: check
        schedules:
          office: {timezone: Europe/Berlin, open: {mon-fri: "08:00-20:00"}, holidays: [2026-12-25]}
        steps:
          check: {hours: office, open: done, closed: done}
          done: {hangup: true}
    """)
    assert flow is not None and not diagnostics.items
    step = flow.steps["check"]
    assert isinstance(step, Hours)
    office = step.schedule(flow.schedules)
    assert office.status(utc(2026, 12, 25, 10, 0)) == "holiday"
    assert office.status(utc(2026, 12, 28, 10, 0)) == "open"
