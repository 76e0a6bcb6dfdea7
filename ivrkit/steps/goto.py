"""``goto``: continue at another step, or in another flow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ivrkit.engine.transitions import GoTo, SwitchFlow, Transition
from ivrkit.flow.fields import NAME_PATTERN, FlowRef, OneOfShape, Option, Record, StepRef, Text
from ivrkit.steps.base import Step

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext


@dataclass(frozen=True)
class FlowTarget:
    flow: str
    step: str | None = None


class Goto(Step):
    kind = "goto"
    summary = "Jumps to a step of this flow (`goto: step`) or to another flow (`goto: {flow: billing}`)."
    body = OneOfShape(
        scalar=StepRef(),
        mapping=Record(
            {
                "flow": Option(FlowRef(), "The flow to continue in.", required=True),
                "step": Option(Text(NAME_PATTERN, what="step name"), "A step of that flow (default: its start)."),
            },
            factory=FlowTarget,
            what="flow target",
        ),
        what="step name or {flow: name}",
    )
    dead_safe = True
    example = """\
to_billing:
  goto: {flow: billing}
"""

    @property
    def ends_call(self) -> bool:  # type: ignore[override]
        return isinstance(self.value, FlowTarget)

    def run(self, call: CallContext) -> Transition:
        if isinstance(self.value, FlowTarget):
            return SwitchFlow(self.value.flow, self.value.step)
        return GoTo(self.value)
