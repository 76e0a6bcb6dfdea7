"""The boxes of a flow graph: one per step, labelled with its name, kind and what it plays or where it sends.

Besides the steps there are pseudo nodes for the ways into the flow (start, hang-up and error handlers),
for other flows that ``goto`` leads to, and for targets that do not exist (drawn so a typo is visible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ivrkit.flow.model import Flow
from ivrkit.flow.segments import PromptSegment, Segment
from ivrkit.graph.edges import ENTRY, FLOW_PREFIX, ON_ERROR, ON_HANGUP, Edge
from ivrkit.steps.base import Step
from ivrkit.steps.callback import ON_HANGUP as WHEN_HANGING_UP
from ivrkit.steps.callback import Callback
from ivrkit.steps.collect import Collect
from ivrkit.steps.goto import FlowTarget, Goto
from ivrkit.steps.hangup import Hangup
from ivrkit.steps.hours import Hours
from ivrkit.steps.menu import Menu
from ivrkit.steps.play import Play
from ivrkit.steps.queue import Queue
from ivrkit.steps.set import Set
from ivrkit.steps.transfer import Transfer

MAX_CONTENT = 48  # characters of content per label line; graphs are for overview, the YAML has the rest

_PSEUDO = {ENTRY: ("entry", "start"), ON_HANGUP: ("handler", "on hang-up"), ON_ERROR: ("handler", "on error")}


@dataclass(frozen=True)
class GraphNode:
    """A node: ``kind`` is a step kind, or ``entry``, ``handler``, ``flow`` or ``missing``."""

    id: str
    kind: str
    lines: tuple[str, ...]

    @property
    def label(self) -> str:
        return "\n".join(self.lines)


def nodes(flow: Flow, flow_edges: Sequence[Edge]) -> list[GraphNode]:
    """The nodes for ``flow_edges``: entry points, the steps in file order, then other flows and missing steps."""
    used = {edge.source for edge in flow_edges} | {edge.target for edge in flow_edges}
    result = [GraphNode(node, *_pseudo(node)) for node in _PSEUDO if node in used]
    result += [step_node(step) for step in flow.steps.values()]
    for edge in flow_edges:
        target = edge.target
        if target in flow.steps or target in _PSEUDO or any(node.id == target for node in result):
            continue
        if target.startswith(FLOW_PREFIX):
            other, _, step = target[len(FLOW_PREFIX) :].partition("/")
            result.append(GraphNode(target, "flow", ("flow " + other, f"at {step}") if step else ("flow " + other,)))
        else:
            result.append(GraphNode(target, "missing", (target, "(no such step)")))
    return result


def _pseudo(node: str) -> tuple[str, tuple[str, ...]]:
    kind, label = _PSEUDO[node]
    return kind, (label,)


def step_node(step: Step) -> GraphNode:
    content = shorten(describe(step))
    lines = [step.name, f"{step.kind}: {content}" if content else step.kind]
    if step.note:
        lines.append(shorten(f"note: {step.note}"))
    return GraphNode(step.name, step.kind, tuple(lines))


def describe(step: Step) -> str:
    """A step's main content in a few words: its prompts, queue, destination, variables, …"""
    value: Any = step.value
    if isinstance(step, Play):  # and Say
        return segments_text(value)
    if isinstance(step, Menu):
        return segments_text(value.prompt)
    if isinstance(step, Collect):
        return f"{segments_text(value.prompt)} → vars.{value.into}"
    if isinstance(step, Set):
        return ", ".join(f"{name} = {template.source}" for name, template in value.items())
    if isinstance(step, Hours):
        return value if isinstance(value, str) else f"inline, {value.timezone}"
    if isinstance(step, Goto):
        if isinstance(value, FlowTarget):
            return f"flow {value.flow}" + (f" at {value.step}" if value.step else "")
        return str(value)
    if isinstance(step, Queue):
        return step.spec.name
    if isinstance(step, Callback):
        return step.spec.queue + (", if the caller hangs up waiting" if step.spec.when == WHEN_HANGING_UP else "")
    if isinstance(step, Transfer):
        return str(step.spec.to.source)
    if isinstance(step, Hangup):
        played = segments_text(value.play)
        return f"{played}; outcome {value.outcome}" if played else f"outcome {value.outcome}"
    return ""  # a branch: its conditions label its edges


def segments_text(segments: Sequence[Segment]) -> str:
    """Prompts by id, spoken values as ``number {{ … }}``."""
    return ", ".join(
        segment.prompt if isinstance(segment, PromptSegment) else f"{segment.say} {segment.value.source}"
        for segment in segments
    )


def shorten(text: str) -> str:
    """One line of at most ``MAX_CONTENT`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_CONTENT else text[: MAX_CONTENT - 1].rstrip() + "…"
