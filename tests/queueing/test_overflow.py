"""Overflow rules: how they are written (errors at the YAML), what `ivrkit check` says, how they are drawn."""

from __future__ import annotations

import datetime as dt

from ivrkit.engine.world import QueueStats
from ivrkit.graph.edges import Edge, edges
from ivrkit.queueing.estimator import Estimate
from ivrkit.queueing.overflow import Rule, Situation
from ivrkit.steps.queue import Queue
from tests.flow.helpers import check, flow, hints, load, messages

MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def rules(overflow: str, top: str = "") -> list[Rule]:
    loaded, diagnostics = load(flow(f"  a:\n    queue: support\n    overflow:\n{overflow}", top))
    assert loaded is not None and not diagnostics.errors, diagnostics.render()
    step = loaded.steps["a"]
    assert isinstance(step, Queue)
    return step.rules


def problems(overflow: str, top: str = "") -> list[str]:
    _, diagnostics = load(flow(f"  a:\n    queue: support\n    overflow:\n{overflow}", top))
    return [f"{line} | {hint}" for line, hint in zip(messages(diagnostics), hints(diagnostics))]


def test_a_rule_with_conditions_and_an_expression() -> None:
    (rule,) = rules("      - when: {position_over: 10, estimate_over: 15m}\n        if: vars.vip\n        goto: end\n")
    assert (rule.conditions, rule.action, rule.value) == ({"position_over": 10, "estimate_over": 900.0}, "goto", "end")
    assert rule.describe() == "position > 10 and estimate > 15m and vars.vip"


def test_conditions_read_the_queue_as_the_caller_meets_it() -> None:
    (rule,) = rules("      - when: {waiting_over: 2, ready_below: 1}\n        goto: end\n")
    busy = Situation(QueueStats(waiting=3), 4, Estimate(None, "position"), MONDAY)
    assert rule.matches(busy, dict)
    assert not rule.matches(Situation(QueueStats(waiting=3, ready=1), 4, Estimate(None, "position"), MONDAY), dict)
    assert not rule.matches(Situation(QueueStats(waiting=2), 3, Estimate(None, "position"), MONDAY), dict)


def test_mistakes_in_rules() -> None:
    assert problems("      - when: {position_ovr: 10}\n        goto: end\n") == [
        "7:16: error: unknown option 'position_ovr' in `when` mapping | did you mean 'position_over'?"
    ]
    assert problems("      - when: {position_over: 10}\n        goto: end\n        queue: other\n") == [
        "9:9: error: an overflow rule does exactly one thing, but this one has both 'goto' and 'queue' | give one "
        "of `goto`, `queue`, `offer`: split it into two rules"
    ]
    assert problems("      - when: {position_over: 10}\n") == [
        "7:9: error: an overflow rule does exactly one thing | give one of `goto`, `queue`, `offer`"
    ]
    assert problems("      - goto: end\n") == [
        "7:9: error: an overflow rule needs conditions: `when:` or `if:` | e.g. when: {position_over: 10}, or if: "
        "\"queues.support.waiting > 20\""
    ]
    assert problems("      - when: {}\n        goto: end\n") == [
        "7:15: error: `when` needs at least one condition | conditions: position_over, "
        "estimate_over, waiting_over, logged_in_below, ready_below, full, closed"
    ]
    assert problems("      - when: {waiting_over: 3}\n        goto: end\n        then: end\n") == [
        "9:9: error: unknown option 'then' in an overflow rule | did you mean 'when'?"
    ]
    assert problems("      - when: {estimate_over: soon}\n        goto: end\n") == [
        "7:31: error: expected a duration such as 5s, 500ms or 2m, got 'soon' | None"
    ]
    assert problems("      - when: 5\n        goto: end\n") == [
        "7:15: error: expected a `when` mapping, got the number 5 | None"
    ]
    assert problems("      when: {waiting_over: 3}\n") == [
        "7:7: error: expected a list of overflow rules, got a mapping | write each rule as a list item: - when: "
        "{position_over: 10}\\n    goto: busy"
    ]


def test_actions() -> None:
    goto, queue, offer = rules(
        "      - {when: {waiting_over: 30}, goto: end}\n"
        "      - {when: {waiting_over: 20}, queue: {name: spare, timeout: 1m}}\n"
        "      - {when: {waiting_over: 10}, offer: {prompt: options, choices: {'1': keep, '2': end}}}\n"
    )
    assert (goto.action, queue.action, offer.action) == ("goto", "queue", "offer")
    assert (offer.value.choices, offer.value.failed) == ({"1": "keep", "2": "end"}, "keep")


def test_checks_unknown_steps_and_schedules_and_full_without_max_callers() -> None:
    text = flow(
        "  a:\n    queue: support\n    overflow:\n"
        "      - {when: {closed: ofice}, goto: end}\n"
        "      - {when: {full: true}, offer: {prompt: options, choices: {'1': keep, '2': nowhere}}}\n",
        "schedules:\n  office: {timezone: Europe/Berlin, open: {mon-fri: '08:00-18:00'}}\n",
    )
    diagnostics = check(text)
    assert [f"{line} | {hint}" for line, hint in zip(messages(diagnostics), hints(diagnostics))] == [
        "9:25: error: unknown schedule 'ofice' | did you mean 'office'?",
        "10:23: warning: queue 'support' has no `max_callers` in this flow, so `full` never holds | declare it: "
        "queues: {support: {max_callers: 20}}",
        "10:81: error: unknown step 'nowhere' | add a step 'nowhere' under `steps:`",
    ]


def test_full_with_max_callers_is_fine() -> None:
    text = flow("  a:\n    queue: support\n    overflow: [{when: {full: true}, goto: end}]\n",
                "queues: {support: {max_callers: 5}}\n")
    assert messages(check(text)) == []


def test_graph_edges_of_rules() -> None:
    loaded, _ = load(flow(
        "  a:\n    queue: support\n    overflow:\n"
        "      - {when: {ready_below: 1}, goto: end}\n"
        "      - {when: {position_over: 5}, offer: {prompt: o, choices: {'1': keep, '2': end}, failed: b}}\n"
        "    outcomes: {timeout: b}\n"
        "  b:\n    hangup: true\n"
    ))
    assert loaded is not None
    assert [edge for edge in edges(loaded) if edge.source == "a"] == [
        Edge("a", "end", "ready < 1", "branch"),
        Edge("a", "end", "position > 5: 2", "choice"),
        Edge("a", "b", "no input", "failure"),
        Edge("a", "b", "invalid", "failure"),
        Edge("a", "b", "timeout", "outcome"),
    ]
