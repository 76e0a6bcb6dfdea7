"""Overflow rules: conditions on the queue a caller is about to join, checked in order; the first match acts.

A rule has conditions (``when:``, all of which must hold, and/or a flow expression in ``if:``) and one action.
The conditions look at the queue as this caller meets it:

* ``position_over: N``: the caller's position would be more than N;
* ``estimate_over: 15m``: the estimated wait is longer (never true without a number: thin data is not a long
  wait);
* ``waiting_over: N``: more than N callers are waiting;
* ``logged_in_below: N`` / ``ready_below: N``: fewer agents logged in / ready to take a call now;
* ``full: true``: the queue is full (waiting >= the flow's ``queues.<queue>.max_callers``; never without one);
* ``closed: office``: outside the hours of the flow's schedule ``office`` (closed or holiday).

The actions (``goto``, ``queue``, ``offer``) belong to the queue step, which runs them; this module only reads
the rules and picks one, so it knows nothing of steps and menus.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ivrkit.engine.world import QueueStats
from ivrkit.flow.diagnostics import Location, did_you_mean
from ivrkit.flow.expressions import Expression
from ivrkit.flow.fields import (
    INVALID,
    NAME_PATTERN,
    Boolean,
    Duration,
    ExpressionField,
    Field,
    Integer,
    ListOf,
    Option,
    ParseContext,
    Record,
    Text,
)
from ivrkit.flow.hours import Schedule
from ivrkit.flow.source import Mapping as MappingNode
from ivrkit.flow.source import Node, Sequence, describe
from ivrkit.queueing.estimator import Estimate


@dataclass(frozen=True)
class Situation:
    """The queue as the caller would meet it, and what the conditions compare it with."""

    stats: QueueStats
    position: int
    estimate: Estimate
    now: dt.datetime
    max_callers: int = 0  # the flow's `queues.<queue>.max_callers` (0: no limit)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)


@dataclass(frozen=True)
class Condition:
    """One condition of a `when:`: how it is written, whether it holds for a limit, and how a designer reads it
    in a transcript or a graph (``position > 10``)."""

    option: Option
    holds: Callable[[Situation, Any], bool]
    words: Callable[[Any], str]


def _closed(s: Situation, schedule: str) -> bool:
    hours = s.schedules.get(schedule)
    return hours is not None and hours.status(s.now) != "open"


def _full(s: Situation, expected: bool) -> bool:
    return (s.max_callers > 0 and s.stats.waiting >= s.max_callers) == expected


def _duration(seconds: float) -> str:
    """``900`` as ``15m``, ``90`` as ``90s``: as a designer writes it."""
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


CONDITIONS: dict[str, Condition] = {
    "position_over": Condition(
        Option(Integer(0), "The caller's position would be more than this."),
        lambda s, n: s.position > n, lambda n: f"position > {n}",
    ),
    "estimate_over": Condition(
        Option(Duration(), "The estimated wait is longer than this (never true without a number)."),
        lambda s, limit: s.estimate.seconds is not None and s.estimate.seconds > limit,
        lambda limit: f"estimate > {_duration(limit)}",
    ),
    "waiting_over": Condition(
        Option(Integer(0), "More callers than this are waiting."),
        lambda s, n: s.stats.waiting > n, lambda n: f"waiting > {n}",
    ),
    "logged_in_below": Condition(
        Option(Integer(1), "Fewer agents than this are logged in."),
        lambda s, n: s.stats.logged_in < n, lambda n: f"logged in < {n}",
    ),
    "ready_below": Condition(
        Option(Integer(1), "Fewer agents than this are ready to take a call now."),
        lambda s, n: s.stats.ready < n, lambda n: f"ready < {n}",
    ),
    "full": Condition(
        Option(Boolean(), "The queue is full: waiting reaches the flow's `queues.<queue>.max_callers`."),
        _full, lambda full: "full" if full else "not full",
    ),
    "closed": Condition(
        Option(Text(NAME_PATTERN, what="schedule name"),
               "Outside the hours of this schedule (from the flow's `schedules`): closed or a holiday."),
        _closed, lambda schedule: f"outside {schedule}",
    ),
}


@dataclass(frozen=True)
class Rule:
    """One overflow rule: its conditions, its action (``goto``, ``queue`` or ``offer``) and the action's value."""

    conditions: dict[str, Any]  # condition name → limit, from `when:`
    expression: Expression | None  # `if:`
    action: str
    value: Any  # a step name (goto), the queue step's body value (queue), or the offer's menu
    location: Location
    places: dict[str, Location] = field(default_factory=dict, compare=False)  # where each condition is written

    def matches(self, situation: Situation, scope: Callable[[], dict[str, Any]]) -> bool:
        """All conditions hold (``scope`` is built only when there is an ``if:`` to evaluate)."""
        if not all(CONDITIONS[name].holds(situation, limit) for name, limit in self.conditions.items()):
            return False
        return self.expression is None or self.expression.test(scope())

    def describe(self) -> str:
        parts = [CONDITIONS[name].words(limit) for name, limit in self.conditions.items()]
        if self.expression is not None:
            parts.append(self.expression.source)
        return " and ".join(parts)


def first_match(rules: list[Rule], situation: Situation, scope: Callable[[], dict[str, Any]]) -> Rule | None:
    return next((rule for rule in rules if rule.matches(situation, scope)), None)


class RuleField(Field[Rule]):
    """One rule: ``when`` and/or ``if``, and exactly one of the queue step's actions."""

    type_name = "overflow rule"

    def __init__(self, actions: dict[str, Option]):
        self.actions = actions
        self.when: Record[dict[str, Any]] = Record(
            {name: condition.option for name, condition in CONDITIONS.items()}, what="`when` mapping"
        )
        self.record: Record[dict[str, Any]] = Record(  # the whole shape, for the reference and the schema
            {
                "when": Option(self.when, "Conditions that must all hold."),
                "if": Option(ExpressionField(), "A flow expression that must hold too."),
                **actions,
            },
            what="overflow rule",
        )

    def parse(self, node: Node, ctx: ParseContext) -> Rule:
        if not isinstance(node, MappingNode):
            return ctx.error(node, f"expected an overflow rule such as {{when: {{position_over: 10}}, goto: busy}}, "
                             f"got {describe(node)}")
        failed = False
        for key in node.keys():
            if key not in self.record.options:
                ctx.error(node.key_node(key), f"unknown option '{key}' in an overflow rule",
                          did_you_mean(key, self.record.options) or f"a rule takes: {', '.join(self.record.options)}")
                failed = True
        actions = [key for key in node.keys() if key in self.actions]
        if len(actions) != 1:
            where = node.key_node(actions[1]) if actions else node
            names = ", ".join(f"`{name}`" for name in self.actions)
            ctx.error(where, "an overflow rule does exactly one thing" + (
                f", but this one has both '{actions[0]}' and '{actions[1]}'" if actions else ""),
                f"give one of {names}" + (": split it into two rules" if actions else ""))
            return INVALID
        if "when" not in node and "if" not in node:
            ctx.error(node, "an overflow rule needs conditions: `when:` or `if:`",
                      "e.g. when: {position_over: 10}, or if: \"queues.support.waiting > 20\"")
            return INVALID
        conditions, places = self._conditions(node.get("when"), ctx)
        expression = None
        if "if" in node:
            with ctx.at("if"):
                expression = ExpressionField().parse(node.entries["if"][1], ctx)
        action = actions[0]
        with ctx.at(action):
            value = self.actions[action].field.parse(node.entries[action][1], ctx)
        if failed or INVALID in (conditions, expression, value):
            return INVALID
        return Rule(conditions, expression, action, value, node.location, places)

    def _conditions(self, node: Node | None, ctx: ParseContext) -> tuple[dict[str, Any], dict[str, Location]]:
        if node is None:
            return {}, {}
        if isinstance(node, MappingNode) and not node.entries:
            return ctx.error(node, "`when` needs at least one condition",
                             f"conditions: {', '.join(CONDITIONS)}"), {}
        with ctx.at("when"):
            values = self.when.parse(node, ctx)
        if values is INVALID:
            return INVALID, {}
        assert isinstance(node, MappingNode)  # Record.parse refused anything else
        given = {name: value for name, value in values.items() if value is not None}
        return given, {name: node.entries[name][1].location for name in given}

    def json_schema(self) -> dict[str, Any]:
        schema = self.record.json_schema()
        schema["properties"]["when"]["minProperties"] = 1
        schema["oneOf"] = [{"required": [name]} for name in self.actions]
        schema["anyOf"] = [{"required": ["when"]}, {"required": ["if"]}]
        return schema


class OverflowRules(ListOf[Rule]):
    """``overflow:``: a list of rules; the actions' fields are the queue step's (``goto`` a step, …)."""

    def __init__(self, actions: dict[str, Option]):
        super().__init__(RuleField(actions), single=False)
        self.type_name = "list of overflow rules"

    def parse(self, node: Node, ctx: ParseContext) -> list[Rule]:
        if not isinstance(node, Sequence):
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}",
                             "write each rule as a list item: - when: {position_over: 10}\\n    goto: busy")
        return super().parse(node, ctx)


@dataclass(frozen=True)
class Problem:
    """What ``ivrkit check`` reports about a rule that can be judged before any call."""

    error: bool
    location: Location
    message: str
    hint: str | None = None


def problems(rules: list[Rule], schedules: Mapping[str, Schedule], max_callers: int, queue: str) -> list[Problem]:
    """Schedules that do not exist, and ``full`` on a queue without ``max_callers`` (it could never hold)."""
    found = []
    for rule in rules:
        name = rule.conditions.get("closed")
        if name is not None and name not in schedules:
            hint = did_you_mean(name, schedules) or "define it under `schedules:` in this flow"
            found.append(Problem(True, rule.places["closed"], f"unknown schedule '{name}'", hint))
        if rule.conditions.get("full") and max_callers <= 0:
            found.append(Problem(
                False, rule.places["full"], f"queue '{queue}' has no `max_callers` in this flow, so `full` never holds",
                f"declare it: queues: {{{queue}: {{max_callers: 20}}}}"))
    return found
