"""``hours``: branch on business hours (open, closed, holiday) in the flow's timezone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ivrkit.engine.transitions import GoTo, Transition
from ivrkit.flow.fields import NAME_PATTERN, OneOfShape, Option, StepRef, Text
from ivrkit.flow.hours import Schedule, ScheduleField
from ivrkit.steps.base import Step

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext


class Hours(Step):
    kind = "hours"
    summary = (
        "Checks business hours and goes to `open`, `closed` or `holiday` (a holiday date while closed; "
        "default: `closed`). The hours are written inline or named from the flow's `schedules`."
    )
    body = OneOfShape(
        scalar=Text(NAME_PATTERN, what="schedule name"),
        mapping=ScheduleField(),
        what="business hours or a schedule name",
    )
    options = {
        "open": Option(StepRef(), "Where to go while open.", required=True),
        "closed": Option(StepRef(), "Where to go while closed.", required=True),
        "holiday": Option(StepRef(), "Where to go on a holiday (default: `closed`)."),
    }
    dead_safe = True
    example = """\
hours_check:
  hours: {timezone: Europe/Berlin, open: {mon-fri: "08:00-20:00"}, holidays: [2026-12-25]}
  open: main_menu
  closed: closed_message
"""

    def schedule(self, schedules: dict[str, Schedule]) -> Schedule:
        return schedules[self.value] if isinstance(self.value, str) else self.value

    def run(self, call: CallContext) -> Transition:
        status = self.schedule(call.flow.schedules).status(call.now())
        call.log("hours", status=status)
        target = self.settings.get(status) or self.settings["closed"]
        return GoTo(target)
