"""What queue and transfer steps share: they end the session for the dialplan, then resume with its outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ivrkit.engine.transitions import Finish, GoTo, HandOff, Transition
from ivrkit.flow.fields import MapOf, Option, StepRef, Text
from ivrkit.steps.base import Step

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext


def outcomes_option(kind: str, outcomes: tuple[str, ...], help_text: str) -> Option:
    """The ``outcomes`` option: the dialplan's status (lower case, or ``otherwise``) → the step to resume at."""
    field = MapOf(Text(choices=outcomes, what=f"{kind} outcome"), StepRef(), f"{kind} outcomes")
    return Option(field, f"{help_text} ({', '.join(outcomes)}).", {})


class HandOffStep(Step):
    """A step whose first run hands the call to the dialplan and whose second run maps the dialplan's outcome.

    An outcome with no step in ``outcomes`` (nor ``otherwise``) ends the call with outcome ``<kind>-<status>``.
    """

    ends_call = True

    def hand_off(self, call: CallContext) -> HandOff:
        raise NotImplementedError

    def run(self, call: CallContext) -> Transition:
        outcome = call.resumed_outcome
        if outcome is None:
            return self.hand_off(call)
        outcomes: dict[str, str] = self.settings["outcomes"]
        target = outcomes.get(outcome) or outcomes.get("otherwise")
        return GoTo(target) if target else Finish(f"{self.kind}-{outcome}")
