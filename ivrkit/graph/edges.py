"""Where each step can lead: the edges of a flow's graph, read from the parsed steps themselves.

Every step kind keeps its targets in its own place (a menu's ``choices``, a branch's cases, a queue's
``outcomes``), so this module knows each kind once. It deliberately does not use ``Flow.references``: those
are the names as written, for the static checks; here each edge also says *why* the call goes there.
"""

from __future__ import annotations

from dataclasses import dataclass, is_dataclass
from typing import Any, Literal

from ivrkit.flow.fields import MapOf, Record, StepRef
from ivrkit.flow.model import Flow
from ivrkit.steps.base import Step
from ivrkit.steps.branch import Branch
from ivrkit.steps.collect import Collect
from ivrkit.steps.goto import FlowTarget, Goto
from ivrkit.steps.hangup import Hangup
from ivrkit.steps.hours import Hours
from ivrkit.steps.menu import Menu
from ivrkit.steps.play import Play
from ivrkit.steps.queue import KEEP, Queue
from ivrkit.steps.set import Set
from ivrkit.steps.transfer import Transfer

EdgeKind = Literal["entry", "handler", "next", "choice", "failure", "hours", "branch", "outcome", "cancel", "flow"]

# Pseudo nodes; the brackets and colons cannot appear in step names, so they never clash with a step.
ENTRY = "(start)"
ON_HANGUP = "(on_hangup)"
ON_ERROR = "(on_error)"
FLOW_PREFIX = "flow:"


@dataclass(frozen=True)
class Edge:
    """One way from ``source`` to ``target``; ``label`` is what the caller did (or what happened)."""

    source: str
    target: str
    label: str
    kind: EdgeKind


def flow_node(flow: str, step: str | None = None) -> str:
    """The id of the node standing for another flow (at its start, or at ``step``)."""
    return f"{FLOW_PREFIX}{flow}" + (f"/{step}" if step else "")


def edges(flow: Flow) -> list[Edge]:
    """Every edge of ``flow``: its entry points, then each step's ways out in the order they are written."""
    result = [Edge(ENTRY, flow.start, "start", "entry")]
    if flow.on_hangup:
        result.append(Edge(ON_HANGUP, flow.on_hangup, "caller hung up", "handler"))
    if flow.on_error:
        result.append(Edge(ON_ERROR, flow.on_error, "error", "handler"))
    for step in flow.steps.values():
        result += step_edges(step)
        cancel_key = flow.cancel_key_for(step)
        if step.cancel_to and cancel_key:
            result.append(Edge(step.name, step.cancel_to, f"cancel {cancel_key}", "cancel"))
    return result


def step_edges(step: Step) -> list[Edge]:
    """The ways out of one step (without the cancel key, which depends on the flow)."""
    name, value, settings = step.name, step.value, step.settings
    if isinstance(step, Menu):
        choices = [Edge(name, target, key, "choice") for key, target in value.choices.items()]
        return choices + _failures(name, value)
    if isinstance(step, Collect):
        return _next(step) + _failures(name, value)
    if isinstance(step, Branch):
        cases = [Edge(name, case.target, case.condition.source, "branch") for case in value]
        return [*cases, Edge(name, settings["else"], "else", "branch")]
    if isinstance(step, Hours):
        return [
            Edge(name, settings[status], status, "hours")
            for status in ("open", "closed", "holiday")
            if settings.get(status)
        ]
    if isinstance(step, Goto):
        if isinstance(value, FlowTarget):
            return [Edge(name, flow_node(value.flow, value.step), "goto", "flow")]
        return [Edge(name, value, "goto", "next")]
    if isinstance(step, (Queue, Transfer)):
        outcomes = [Edge(name, target, outcome, "outcome") for outcome, target in settings["outcomes"].items()]
        return _overflow(step) + outcomes if isinstance(step, Queue) else outcomes
    if isinstance(step, (Play, Set)):  # and Say, a kind of Play
        return _next(step)
    if isinstance(step, Hangup):
        return []
    return _generic(step)


def _next(step: Step) -> list[Edge]:
    return [Edge(step.name, step.next, "next", "next")] if step.next else []


def _overflow(step: Queue) -> list[Edge]:
    """Where overflow rules lead before the caller joins: a step, or an offer's choices (``keep`` joins)."""
    result = []
    for rule in step.rules:
        if rule.action == "goto":
            result.append(Edge(step.name, rule.value, rule.describe(), "branch"))
        elif rule.action == "offer":
            offer = rule.value
            result += [Edge(step.name, target, f"{rule.describe()}: {key}", "choice")
                       for key, target in offer.choices.items() if target != KEEP]
            result += [edge for edge in _failures(step.name, offer) if edge.target != KEEP]
    return result


def _failures(name: str, spec: Any) -> list[Edge]:
    """Where a menu or collection goes when no-input or invalid tries run out (each may have its own)."""
    result = []
    for kind, label in (("no_input", "no input"), ("invalid", "invalid")):
        target = getattr(spec, kind).failed or spec.failed
        if target:
            result.append(Edge(name, target, label, "failure"))
    return result


def _generic(step: Step) -> list[Edge]:
    """A kind this module does not know yet: the options of its mapping body that name a step (``sms.unavailable``),
    then its sibling options that name steps (``x: step``, ``x: {k: step}``)."""
    result: list[Edge] = []
    body = type(step).body
    if isinstance(body, Record) and is_dataclass(step.value):
        for option_name, option in body.options.items():
            target = getattr(step.value, option_name, None)
            if isinstance(option.field, StepRef) and isinstance(target, str):
                result.append(Edge(step.name, target, option_name, "outcome"))
    for option_name, option in type(step).options.items():
        value = step.settings.get(option_name)
        if isinstance(option.field, StepRef) and isinstance(value, str):
            result.append(Edge(step.name, value, option_name, "next"))
        elif isinstance(option.field, MapOf) and isinstance(option.field.value, StepRef) and isinstance(value, dict):
            result += [Edge(step.name, target, key, "outcome") for key, target in value.items()]
    return result
