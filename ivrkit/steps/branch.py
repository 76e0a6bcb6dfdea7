"""``branch``: choose the next step by conditions, first match wins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ivrkit.engine.transitions import GoTo, Transition
from ivrkit.flow.expressions import Expression
from ivrkit.flow.fields import ExpressionField, ListOf, Option, Record, StepRef
from ivrkit.steps.base import Step

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext


@dataclass(frozen=True)
class Case:
    condition: Expression
    target: str


def _case(**values: object) -> Case:
    return Case(values["if"], values["then"])  # type: ignore[arg-type]


class Branch(Step):
    kind = "branch"
    summary = "Tests conditions in order and goes to the first whose condition is true, else to `else`."
    body = ListOf(
        Record(
            {
                "if": Option(
                    ExpressionField(), "A condition, e.g. `caller.number.startswith('+4930')`.", required=True
                ),
                "then": Option(StepRef(), "Where to go when it is true.", required=True),
            },
            factory=_case,
            what="branch case",
        ),
        single=False,
        min_items=1,
    )
    options = {"else": Option(StepRef(), "Where to go when no condition is true.", required=True)}
    dead_safe = True
    example = """\
route_vip:
  branch:
    - if: "vars.customer_tier == 'gold'"
      then: vip_queue
    - if: "caller.number.startswith('+4930')"
      then: berlin_team
  else: main_menu
"""

    def run(self, call: CallContext) -> Transition:
        scope = call.scope()
        for case in self.value:
            if case.condition.test(scope):
                call.log("branch", condition=case.condition.source, then=case.target)
                return GoTo(case.target)
        return GoTo(self.settings["else"])
