"""What a caller hears: recorded prompts and spoken values (numbers, digits, dates, times).

A ``play`` list mixes both: ``[your-balance-is, {number: "{{ vars.balance }}"}, euros]``. Prompt ids are
resolved per language by the channel; spoken values are rendered from templates when the step runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ivrkit.flow.diagnostics import Location, did_you_mean
from ivrkit.flow.expressions import Template
from ivrkit.flow.fields import (
    INVALID,
    PROMPT_PATTERN,
    Field,
    Invalid,
    ListOf,
    OneOfShape,
    ParseContext,
    TemplateField,
)
from ivrkit.flow.source import Mapping, Node, Scalar, describe

SAY_KINDS = ("number", "digits", "alpha", "date", "time", "datetime")


@dataclass(frozen=True)
class PromptSegment:
    """A recorded prompt, by id (``prompts/<language>/<id>.wav``)."""

    prompt: str
    location: Location | None = None


@dataclass(frozen=True)
class SaySegment:
    """A value spoken by the PBX: a number, digits, letters, or a date/time."""

    say: str  # one of SAY_KINDS
    value: Template
    location: Location | None = None


Segment = PromptSegment | SaySegment


class PromptId(Field[PromptSegment]):
    type_name = "prompt id"

    def parse(self, node: Node, ctx: ParseContext) -> PromptSegment:
        if not isinstance(node, Scalar) or not isinstance(node.value, str):
            return ctx.error(node, f"expected a prompt id such as 'main-menu', got {describe(node)}")
        if not PROMPT_PATTERN.match(node.value):
            return ctx.error(
                node,
                f"'{node.value}' is not a valid prompt id",
                "use lower-case letters, digits, '-', '_' and '/', e.g. 'main-menu'",
            )
        ctx.refer("prompt", node.value, node.location)
        return PromptSegment(node.value, node.location)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": PROMPT_PATTERN.pattern}


class PromptName(Field[str]):
    """A prompt id as a plain name (settings that name prompts), recorded as a reference so ``ivrkit check``
    finds it in the catalog like any prompt a step plays."""

    type_name = "prompt id"

    def parse(self, node: Node, ctx: ParseContext) -> str:
        segment = PromptId().parse(node, ctx)
        return segment.prompt if isinstance(segment, PromptSegment) else INVALID

    def json_schema(self) -> dict[str, Any]:
        return PromptId().json_schema()


class SayField(Field[SaySegment]):
    """``{number: …}``, ``{digits: …}``, ``{alpha: …}``, ``{date: …}``, ``{time: …}`` or ``{datetime: …}``."""

    type_name = "spoken value such as {number: 42}"

    def parse(self, node: Node, ctx: ParseContext) -> SaySegment:
        if not isinstance(node, Mapping) or len(node.entries) != 1:
            return ctx.error(node, f"expected one of {{{', '.join(SAY_KINDS)}: value}}, got {describe(node)}")
        ((kind, value_node),) = node.items()
        if kind not in SAY_KINDS:
            return ctx.error(
                node.key_node(kind),
                f"unknown spoken value '{kind}'",
                did_you_mean(kind, SAY_KINDS) or f"use one of: {', '.join(SAY_KINDS)}",
            )
        template = TemplateField().parse(value_node, ctx)
        if isinstance(template, Invalid):
            return INVALID
        return SaySegment(kind, template, node.location)

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {kind: {"type": ["string", "number"]} for kind in SAY_KINDS},
            "additionalProperties": False,
        }


def segments(min_items: int = 1) -> ListOf[Segment]:
    """A prompt, a spoken value, or a list mixing both."""
    item: Field[Any] = OneOfShape(scalar=PromptId(), mapping=SayField(), what="prompt id or spoken value")
    field = ListOf(item, single=True, min_items=min_items)
    field.type_name = "prompt or list of prompts"
    return field
