"""Whole-flow checks on the step graph: names that must exist, reachability, ways out, traps and loops."""

from __future__ import annotations

import pytest

from tests.flow.helpers import check, flow, hints, messages

# -- references -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "top", "expected"),
    [
        ("  a:\n    play: p\n    next: ned\n", "", "6:11: error: unknown step 'ned'"),
        ('  a:\n    menu: {prompt: p, choices: {"1": ned}, failed: end}\n', "", "5:38: error: unknown step 'ned'"),
        ('  a:\n    menu: {prompt: p, choices: {"1": end}, failed: ned}\n', "", "5:52: error: unknown step 'ned'"),
        ('  a:\n    menu: {prompt: p, choices: {"1": end}, no_input: {failed: ned}, failed: end}\n', "",
         "5:63: error: unknown step 'ned'"),
        ("  a:\n    branch: [{if: 'true', then: ned}]\n    else: end\n", "", "5:33: error: unknown step 'ned'"),
        ("  a:\n    branch: [{if: 'true', then: end}]\n    else: ned\n", "", "6:11: error: unknown step 'ned'"),
        ("  a:\n    queue: support\n    outcomes: {timeout: ned}\n", "", "6:25: error: unknown step 'ned'"),
        ("  a:\n    transfer: PJSIP/op\n    outcomes: {busy: ned}\n", "", "6:22: error: unknown step 'ned'"),
        ("  a:\n    goto: ned\n", "", "5:11: error: unknown step 'ned'"),
        ("  a:\n    play: p\n    next: end\n    cancel_to: ned\n", "", "7:16: error: unknown step 'ned'"),
        ("  a:\n    goto: end\n", "on_hangup: ned\n", "3:12: error: unknown step 'ned'"),
        ("  a:\n    goto: end\n", "on_error: ned\n", "3:11: error: unknown step 'ned'"),
    ],
)
def test_unknown_steps_everywhere_a_step_is_named(steps: str, top: str, expected: str) -> None:
    diagnostics = check(flow(steps, top))
    assert messages(diagnostics) == [expected]
    assert hints(diagnostics) == ["did you mean 'end'?"]


def test_unknown_start() -> None:
    diagnostics = check(flow("  a:\n    goto: end\n", start="aa"))
    assert messages(diagnostics) == ["2:8: error: unknown step 'aa'"]  # and no "never reached" for a and end
    assert hints(diagnostics) == ["did you mean 'a'?"]


def test_unknown_step_without_a_close_name() -> None:
    diagnostics = check(flow("  a:\n    play: p\n    next: somewhere_else\n"))
    assert hints(diagnostics) == ["add a step 'somewhere_else' under `steps:`"]


def test_unknown_flow_and_step_in_a_flow() -> None:
    support = flow("  a:\n    menu: {prompt: p, choices: {'1': x, '2': y, '3': z}, failed: end}\n"
                   "  x:\n    goto: {flow: biling}\n  y:\n    goto: {flow: billing, step: idnetify}\n"
                   "  z:\n    goto: {flow: billing, step: identify}\n")
    billing = flow("  identify:\n    goto: end\n", name="billing", start="end")
    diagnostics = check(support, billing)
    assert [(d.location.file, *m.split(": ", 1)) for d, m in zip(diagnostics, messages(diagnostics))] == [
        ("flow0.yaml", "7:18", "error: unknown flow 'biling'"),
        ("flow0.yaml", "9:33", "error: flow 'billing' has no step 'idnetify'"),
    ]
    assert hints(diagnostics) == ["did you mean 'billing'?", "did you mean 'identify'?"]


def test_goto_another_flow_without_a_step_starts_it() -> None:
    support = flow("  a:\n    goto: {flow: billing}\n")
    billing = flow("  a:\n    goto: end\n", name="billing")
    assert messages(check(support, billing)) == ["6:3: warning: step 'end' is never reached"]


def test_unknown_schedule() -> None:
    top = "schedules:\n  office: {timezone: UTC, open: {daily: '08:00-20:00'}}\n"
    diagnostics = check(flow("  a:\n    hours: ofice\n    open: end\n    closed: end\n", top))
    assert messages(diagnostics) == ["7:12: error: unknown schedule 'ofice'"]
    assert hints(diagnostics) == ["did you mean 'office'?"]
    diagnostics = check(flow("  a:\n    hours: office\n    open: end\n    closed: end\n"))
    assert hints(diagnostics) == ["define it under `schedules:` in this flow"]


def test_known_schedule_and_inline_hours_pass() -> None:
    top = "schedules:\n  office: {timezone: UTC, open: {daily: '08:00-20:00'}}\n"
    steps = ("  a:\n    hours: office\n    open: b\n    closed: end\n"
             "  b:\n    hours: {timezone: UTC, open: {mon: '08:00-09:00'}}\n    open: end\n    closed: end\n")
    assert messages(check(flow(steps, top))) == []


# -- reachability -----------------------------------------------------------------------------------------------


def test_unreachable_step_is_a_warning() -> None:
    diagnostics = check(flow("  a:\n    goto: end\n  lost:\n    goto: end\n"))
    assert messages(diagnostics) == ["6:3: warning: step 'lost' is never reached"]
    assert diagnostics.errors == []


@pytest.mark.parametrize(
    ("steps", "top"),
    [
        ("  a:\n    goto: end\n  b:\n    goto: end\n", "on_error: b\n"),
        ("  a:\n    goto: end\n  b:\n    set: {x: 1}\n", "on_hangup: b\n"),
        ("  a:\n    play: p\n    next: end\n    cancel_to: b\n  b:\n    goto: end\n", ""),
        ("  a:\n    queue: q\n    outcomes: {timeout: b}\n  b:\n    goto: end\n", ""),
        ("  a:\n    collect: {into: x, prompt: p, failed: b}\n    next: end\n  b:\n    goto: end\n", ""),
        ("  a:\n    menu: {prompt: p, choices: {'1': end}, invalid: {failed: b}, failed: end}\n"
         "  b:\n    goto: end\n", ""),
    ],
)
def test_ways_a_step_is_reached(steps: str, top: str) -> None:
    assert messages(check(flow(steps, top))) == []


def test_a_step_entered_from_another_flow_is_reached() -> None:
    support = flow("  a:\n    branch: [{if: 'true', then: end}]\n    else: b\n"
                   "  b:\n    goto: {flow: billing, step: pay}\n")
    billing = flow("  a:\n    goto: end\n  pay:\n    goto: end\n", name="billing")
    assert messages(check(support, billing)) == []


def test_cancel_to_of_an_unreachable_step_reaches_nothing() -> None:
    steps = ("  a:\n    goto: end\n  lost:\n    play: p\n    next: end\n    cancel_to: also_lost\n"
             "  also_lost:\n    goto: end\n")
    assert messages(check(flow(steps))) == [
        "6:3: warning: step 'lost' is never reached",
        "10:3: warning: step 'also_lost' is never reached",
    ]


# -- ways out ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("play: p", "play"),
        ("say: {number: 5}", "say"),
        ("set: {x: 1}", "set"),
        ("collect: {into: x, prompt: p, failed: end}", "collect"),
    ],
)
def test_step_without_next_has_no_way_out(body: str, kind: str) -> None:
    diagnostics = check(flow(f"  a:\n    {body}\n", "on_error: end\n"))
    assert messages(diagnostics) == ["5:3: error: step 'a' has no way out: add `next: <step>`"], kind
    assert hints(diagnostics) == ["after it the call would just end; end calls on purpose with a `hangup` step"]


def test_a_hangup_handler_may_just_end() -> None:
    steps = "  a:\n    goto: end\n  note:\n    set: {abandoned: true}\n    next: more\n  more:\n    set: {x: 1}\n"
    assert messages(check(flow(steps, "on_hangup: note\n"))) == []


def test_a_step_shared_by_the_call_and_the_handler_needs_a_way_out() -> None:
    steps = "  a:\n    set: {x: 1}\n"
    diagnostics = check(flow(steps, "on_hangup: a\non_error: end\n"))
    assert messages(diagnostics) == ["6:3: error: step 'a' has no way out: add `next: <step>`"]


def test_trapped_callers() -> None:
    steps = ("  a:\n    play: p\n    next: m\n"
             "  m:\n    menu: {prompt: p, choices: {'1': info, '2': m}, failed: m}\n"
             "  info:\n    play: p\n    next: m\n"
             "  end_unused:\n    goto: a\n")
    diagnostics = check(flow(steps))
    assert messages(diagnostics) == [
        "7:3: error: callers can never leave steps 'm', 'info': no hangup, queue, transfer or other flow can be "
        "reached from here",
        "12:3: warning: step 'end_unused' is never reached",
        "14:3: warning: step 'end' is never reached",
    ]
    assert hints(diagnostics)[0] == "give callers a way to end the call, e.g. `failed: goodbye` with a hangup step"


@pytest.mark.parametrize(
    "menu",
    [
        "menu: {prompt: p, choices: {'1': m}, failed: m}\n    cancel_to: end",  # the cancel key leads out
        "menu: {prompt: p, choices: {'1': m, '2': end}, failed: m}",
        "menu: {prompt: p, choices: {'1': m}}",  # failing it ends the call (warned about separately)
        "menu: {prompt: p, choices: {'1': m}, failed: q}\n  q:\n    queue: support\n    outcomes: {otherwise: m}",
        "menu: {prompt: p, choices: {'1': m}, failed: g}\n  g:\n    goto: {flow: support}",
    ],
)
def test_not_trapped(menu: str) -> None:
    diagnostics = check(flow(f"  m:\n    {menu}\n", start="m"))
    assert not [m for m in messages(diagnostics) if "never leave" in m]


def test_one_trap_is_reported_once_where_callers_end_up() -> None:
    steps = ("  a:\n    play: p\n    next: b\n  b:\n    play: p\n    next: m\n"
             "  m:\n    menu: {prompt: p, choices: {'1': m}, failed: m}\n")
    assert [m for m in messages(check(flow(steps))) if "error" in m] == [
        "10:3: error: callers can never leave step 'm': no hangup, queue, transfer or other flow can be reached "
        "from here"
    ]


# -- loops without input ----------------------------------------------------------------------------------------


def test_loop_without_input() -> None:
    steps = ("  a:\n    set: {n: 0}\n    next: up\n  up:\n    set: {n: '{{ vars.n + 1 }}'}\n    next: test\n"
             "  test:\n    branch: [{if: 'vars.n > 3', then: end}]\n    else: up\n")
    diagnostics = check(flow(steps))
    assert messages(diagnostics) == ["7:3: error: steps loop without waiting for the caller: up -> test -> up"]
    assert hints(diagnostics) == ["put a menu or collect in the loop, or lead out of it"]


def test_a_step_that_goes_to_itself() -> None:
    assert messages(check(flow("  a:\n    goto: a\n"))) == [
        "4:3: error: steps loop without waiting for the caller: a -> a",
        "6:3: warning: step 'end' is never reached",
    ]


def test_the_shortest_cycle_is_named() -> None:
    steps = ("  a:\n    branch: [{if: 'true', then: b}]\n    else: c\n"
             "  b:\n    goto: a\n  c:\n    set: {x: 1}\n    next: b\n")
    assert messages(check(flow(steps)))[0] == "4:3: error: steps loop without waiting for the caller: a -> b -> a"


@pytest.mark.parametrize(
    "waiting",
    [
        "menu: {prompt: p, choices: {'1': a, '2': end}, failed: end}",
        "collect: {into: x, prompt: p, failed: end}\n    next: a",
    ],
)
def test_loops_through_a_menu_or_collect_are_fine(waiting: str) -> None:
    steps = f"  a:\n    play: p\n    next: w\n  w:\n    {waiting}\n"
    assert messages(check(flow(steps))) == []


def test_a_cancel_key_is_no_way_round_a_loop() -> None:
    steps = "  a:\n    play: p\n    next: b\n    cancel_to: end\n  b:\n    goto: a\n"
    assert messages(check(flow(steps))) == ["4:3: error: steps loop without waiting for the caller: a -> b -> a"]


def test_loop_in_a_hangup_handler() -> None:
    steps = "  a:\n    goto: end\n  h:\n    set: {x: 1}\n    next: h2\n  h2:\n    goto: h\n"
    assert messages(check(flow(steps, "on_hangup: h\n"))) == [
        "7:3: error: steps loop without waiting for the caller: h -> h2 -> h"
    ]


def test_a_queue_outcome_loop_takes_no_input() -> None:
    steps = "  a:\n    queue: support\n    outcomes: {joinempty: sorry}\n  sorry:\n    play: p\n    next: a\n"
    assert messages(check(flow(steps)))[0] == "4:3: error: steps loop without waiting for the caller: a -> sorry -> a"
