"""``queue``: hand the caller to an Asterisk queue; the flow resumes with the queue's outcome."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ivrkit.engine.transitions import HandOff
from ivrkit.flow.fields import Duration, Integer, OneOfShape, Option, Record, Text
from ivrkit.steps.handoff import HandOffStep, outcomes_option

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
QUEUE_NAME_HINT = "a queue name has up to 63 letters, digits, '_', '.' and '-', and starts with a letter or digit"
# app_queue's QUEUESTATUS values, lower-cased, plus `otherwise` for anything not listed.
QUEUE_OUTCOMES = ("timeout", "full", "joinempty", "leaveempty", "joinunavail", "leaveunavail", "continue", "otherwise")


@dataclass(frozen=True)
class QueueSpec:
    name: str
    timeout: float | None = None
    priority: int = 0


def _spec(name: str) -> QueueSpec:
    return QueueSpec(name)


class Queue(HandOffStep):
    kind = "queue"
    summary = (
        "Ends the IVR session and puts the caller in an Asterisk queue. When the queue gives the call back "
        "(timeout, full, empty…) the flow resumes at the step named in `outcomes`; without one the call "
        "ends with outcome `queue-<status>`. An answered call ends the flow."
    )
    body = OneOfShape(
        scalar=Text(QUEUE_NAME, what="queue name", hint=QUEUE_NAME_HINT),
        mapping=Record(
            {
                "name": Option(
                    Text(QUEUE_NAME, what="queue name", hint=QUEUE_NAME_HINT),
                    "The queue, as named in queues.conf.",
                    required=True,
                ),
                "timeout": Option(Duration(), "Longest wait in the queue before the flow resumes with `timeout`."),
                "priority": Option(Integer(0, 100), "Queue priority (higher is answered first).", 0),
            },
            factory=QueueSpec,
            what="queue",
        ),
        what="queue name or {name, timeout, priority}",
    )
    options = {"outcomes": outcomes_option("queue", QUEUE_OUTCOMES, "Where the flow resumes for each queue outcome")}
    example = """\
support_queue:
  queue: {name: support, timeout: 10m}
  outcomes: {timeout: offer_callback, joinempty: closed_message}
"""

    @property
    def spec(self) -> QueueSpec:
        return self.value if isinstance(self.value, QueueSpec) else _spec(self.value)

    def hand_off(self, call: CallContext) -> HandOff:
        spec = self.spec
        params = {"priority": str(spec.priority)}
        if spec.timeout is not None:
            params["timeout"] = str(int(spec.timeout))
        return HandOff("queue", spec.name, params)
