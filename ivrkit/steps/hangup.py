"""``hangup``: end the call, optionally after a goodbye prompt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivrkit.engine.transitions import Finish, Transition
from ivrkit.flow.fields import INVALID, NAME_PATTERN, Field, Option, ParseContext, Record, Text
from ivrkit.flow.segments import Segment, segments
from ivrkit.flow.source import Node, Scalar
from ivrkit.steps.base import Step

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext


@dataclass(frozen=True)
class HangupSpec:
    play: list[Segment] = field(default_factory=list)
    outcome: str = "completed"


_RECORD: Record[HangupSpec] = Record(
    {
        "play": Option(segments(), "Prompts played before hanging up.", []),
        "outcome": Option(
            Text(NAME_PATTERN, what="outcome label"), "Label recorded in the journal and metrics.", "completed"
        ),
    },
    factory=HangupSpec,
    what="hangup",
)


class _HangupBody(Field[HangupSpec]):
    type_name = "true, nothing, or {play, outcome}"
    record = _RECORD  # the mapping form, for the generated reference

    def parse(self, node: Node, ctx: ParseContext) -> HangupSpec:
        if isinstance(node, Scalar) and node.value in (None, True):
            return HangupSpec()
        if isinstance(node, Scalar):
            return ctx.error(node, "expected `hangup: true` or `hangup: {play: goodbye, outcome: done}`")
        result = _RECORD.parse(node, ctx)
        return INVALID if result is INVALID else result

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"enum": [None, True]}, _RECORD.json_schema()]}


class Hangup(Step):
    kind = "hangup"
    summary = "Plays an optional goodbye and hangs up; `outcome` labels how the call ended."
    body = _HangupBody()
    ends_call = True
    example = """\
goodbye:
  hangup: {play: goodbye, outcome: closed}
"""

    def run(self, call: CallContext) -> Transition:
        spec: HangupSpec = self.value
        if spec.play:
            call.play(spec.play)
        return Finish(spec.outcome)
