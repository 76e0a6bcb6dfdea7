"""``transfer``: connect the caller to an endpoint or a number through the dialplan."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivrkit.engine.transitions import HandOff
from ivrkit.flow.expressions import ExpressionError, Template
from ivrkit.flow.fields import Duration, OneOfShape, Option, Record, TemplateField
from ivrkit.steps.handoff import HandOffStep, outcomes_option

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext

# An endpoint (PJSIP/alice, PJSIP/100@trunk) or a number (+4930123456). Nothing else may reach Dial().
DESTINATION = re.compile(r"^(?:[A-Za-z][A-Za-z0-9]*/[A-Za-z0-9_.+@-]{1,80}|\+?[0-9]{1,20})$")
# DIALSTATUS values, lower-cased, plus `otherwise`.
TRANSFER_OUTCOMES = (
    "busy",
    "noanswer",
    "congestion",
    "chanunavail",
    "cancel",
    "dontcall",
    "torture",
    "invalidargs",
    "otherwise",
)


@dataclass(frozen=True)
class TransferSpec:
    to: Template
    timeout: float = 30.0


def _spec(to: Template) -> TransferSpec:
    return TransferSpec(to)


class Transfer(HandOffStep):
    kind = "transfer"
    summary = (
        "Ends the IVR session and dials an endpoint (`PJSIP/operator`) or a number (`+4930123456`). If the "
        "destination does not answer, the flow resumes at the step named in `outcomes` (busy, noanswer, …)."
    )
    body = OneOfShape(
        scalar=TemplateField(),
        mapping=Record(
            {
                "to": Option(TemplateField(), "Endpoint or number; may be a template.", required=True),
                "timeout": Option(Duration(), "How long it rings before `noanswer`.", 30.0),
            },
            factory=TransferSpec,
            what="transfer",
        ),
        what="destination or {to, timeout}",
    )
    options = {
        "outcomes": outcomes_option(
            "transfer", TRANSFER_OUTCOMES, "Where the flow resumes when the destination is not reached"
        )
    }
    example = """\
operator:
  transfer: {to: PJSIP/operator, timeout: 20s}
  outcomes: {busy: operator_busy, noanswer: operator_busy}
"""

    @property
    def spec(self) -> TransferSpec:
        return self.value if isinstance(self.value, TransferSpec) else _spec(self.value)

    def hand_off(self, call: CallContext) -> HandOff:
        return transfer_hand_off(self.spec, call.scope())


def transfer_hand_off(spec: TransferSpec, scope: Mapping[str, Any]) -> HandOff:
    """The dialplan's instructions for a transfer (also a maintenance mode's); only a valid destination passes."""
    destination = spec.to.render_text(scope).strip()
    if not DESTINATION.match(destination):
        reason = f"'{destination}' is not an endpoint or number"
        raise ExpressionError(str(spec.to.source), spec.to.location, reason)
    return HandOff("transfer", destination, {"timeout": str(int(spec.timeout))})
