"""The callback legs' extensions: which flows get them, for which queues, and that every value the dispatcher or
the server hands them is filtered, measured and compared with names known when compiling."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from ivrkit.compiler.dialplan import UnsafeValue
from ivrkit.compiler.plan import Plan, build_plan
from ivrkit.compiler.render import EXTENSIONS_FILE, QUEUES_FILE, render
from ivrkit.flow.checks import check_flows
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_text
from ivrkit.flow.model import Flow
from tests.compiler.helpers import AGI, messages
from tests.compiler.test_render import section

# A callback step for `later` (no queue step uses it), a queue step registering callbacks on hang-up that can
# overflow into `over`, a queue declared with a callback block, and `plain`, used without any callback.
CALLING = """
flow: calling
start: menu
queues:
  declared:
    ringing: true
    callback: {mode: agent-first}
steps:
  menu:
    menu: {prompt: main-menu, choices: {"1": ask, "2": hold, "3": declared_queue, "4": plain_queue}, failed: bye}
  ask:
    callback: later
    next: bye
  hold:
    queue: hold
    callback_on_hangup: {when: automatic}
    overflow:
      - when: {waiting_over: 5}
        queue: over
  declared_queue:
    queue: declared
  plain_queue:
    queue: plain
  bye:
    hangup: true
"""
PLAIN = """
flow: plain
start: q
steps:
  q:
    queue: plain
    outcomes: {otherwise: onwards}
  onwards:
    goto: {flow: calling}
"""


def compile_texts(*texts: str) -> tuple[Plan | None, Diagnostics]:
    """Load and plan without the prompt catalog: these tests are about the dialplan, not the prompts."""
    diagnostics = Diagnostics()
    flows: dict[str, Flow] = {}
    for index, text in enumerate(texts):
        text = textwrap.dedent(text)
        file = f"flow{index}.yaml"
        diagnostics.remember_source(file, text)
        flow = load_text(text, file, diagnostics)
        if flow is not None:
            flows[flow.name] = flow
    check_flows(flows, diagnostics, None)
    return build_plan(flows, diagnostics, None, AGI), diagnostics


def extension(text: str, context: str, exten: str) -> list[str]:
    """The lines of one extension in a context, without comments: ``exten => <exten>,1`` and its ``same``s."""
    lines = [line for line in section(text, context) if not line.startswith(";")]
    start = lines.index(next(line for line in lines if line.startswith(f"exten => {exten},1,")))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("exten => ")), len(lines))
    return lines[start:end]


def test_the_queues_a_flows_callback_legs_may_join() -> None:
    plan, diagnostics = compile_texts(CALLING, PLAIN)
    assert plan is not None, diagnostics.render()
    flows = {flow.flow: flow for flow in plan.flows}
    assert [queue.name for queue in flows["calling"].callbacks] == ["declared", "hold", "later", "over"]
    assert flows["plain"].callbacks == ()  # it reaches `calling` with goto, but registers no callback itself
    assert "later" in [queue.name for queue in plan.queues]  # the callback step's queue gets its queues.conf section
    assert "later" not in [queue.name for queue in flows["calling"].queues]  # no queue step hands calls to it
    assert not [m for m in messages(diagnostics) if "no queue step" in m]  # a callback step uses its queue


def test_only_flows_with_callbacks_get_the_two_extensions() -> None:
    plan, diagnostics = compile_texts(CALLING, PLAIN)
    assert plan is not None, diagnostics.render()
    text = render(plan)[EXTENSIONS_FILE]
    calling = section(text, "ivrkit-calling")
    assert [line for line in calling if line.startswith("exten => ")] == [
        "exten => s,1,NoOp(ivrkit flow calling)",
        "exten => callback,1,NoOp(ivrkit callback)",
        "exten => callback-agent,1,NoOp(ivrkit callback waiting for an agent)",
    ]
    assert not [line for line in section(text, "ivrkit-plain") if "callback" in line]
    assert "[later]" in render(plan)[QUEUES_FILE].splitlines()


def test_the_answered_leg_filters_measures_and_compares_every_value() -> None:
    plan, _ = compile_texts(CALLING)
    assert plan is not None
    lines = extension(render(plan)[EXTENSIONS_FILE], "ivrkit-calling", "callback")
    assert lines[:11] == [
        "exten => callback,1,NoOp(ivrkit callback)",
        " same => n,Answer()",
        " same => n,Set(IVRKIT_DP_FLOW=calling)",
        # the callback id from the Originate: hex only, exactly 32 of them, nothing dropped by FILTER
        " same => n,Set(IVRKIT_DP_CALLBACK=${FILTER(0-9a-f,${IVRKIT_CALLBACK})})",
        " same => n,GotoIf($[${LEN(${IVRKIT_DP_CALLBACK})} != 32 | ${LEN(${IVRKIT_DP_CALLBACK})} != "
        "${LEN(${IVRKIT_CALLBACK})}]?cb-hangup)",
        " same => n,Set(AMDSTATUS=)",
        ' same => n,ExecIf($["${FILTER(0-9,${IVRKIT_CB_AMD})}" = "1"]?AMD())',
        " same => n,Set(IVRKIT_DP_STATUS=${FILTER(A-Z,${AMDSTATUS})})",
        " same => n,MSet(IVRKIT_RESULT=,IVRKIT_OUTCOME=,IVRKIT_TARGET=,IVRKIT_TIMEOUT=,IVRKIT_PRIORITY=)",
        " same => n,AGI(agi://127.0.0.1:4573/calling/callback?id=${IVRKIT_DP_CALLBACK}&amd=${IVRKIT_DP_STATUS})",
        " same => n,Set(IVRKIT_DP_RESULT=${FILTER(-a-z,${IVRKIT_RESULT})})",
    ]
    rest = lines[11:]
    assert rest[:3] == [
        ' same => n,GotoIf($["${IVRKIT_DP_RESULT}" = "queue"]?cb-queue)',
        ' same => n,GotoIf($["${IVRKIT_DP_RESULT}" = "dial"]?cb-dial)',
        " same => n,Goto(cb-hangup)",  # anything else, an empty result included (the server is down)
    ]
    queue = rest[rest.index(" same => n(cb-queue),Set(IVRKIT_DP_TARGET=${FILTER(-.0-9A-Z_a-z,${IVRKIT_TARGET})})"):]
    assert queue[1:4] == [
        " same => n,GotoIf($[${LEN(${IVRKIT_DP_TARGET})} != ${LEN(${IVRKIT_TARGET})}]?cb-hangup)",
        " same => n,Set(IVRKIT_DP_TIMEOUT=${FILTER(0-9,${IVRKIT_TIMEOUT})})",
        " same => n,Set(QUEUE_PRIO=${FILTER(0-9,0${IVRKIT_PRIORITY})})",
    ]
    compared = [line for line in queue if 'GotoIf($["${IVRKIT_DP_TARGET}" = ' in line]
    assert compared == [f' same => n,GotoIf($["${{IVRKIT_DP_TARGET}}" = "{q}"]?queue-{q})'
                        for q in ("declared", "hold", "later", "over")]  # fmt: skip
    assert " same => n(queue-declared),Queue(declared,r,,,${IVRKIT_DP_TIMEOUT})" in queue  # the queue's options
    assert not [line for line in lines if "plain" in line]
    dial = rest[rest.index(" same => n(cb-dial),Set(IVRKIT_DP_TARGET=${FILTER(+0-9,${IVRKIT_TARGET})})"):]
    assert dial[1:] == [
        " same => n,GotoIf($[${LEN(${IVRKIT_DP_TARGET})} = 0 | ${LEN(${IVRKIT_DP_TARGET})} != "
        "${LEN(${IVRKIT_TARGET})}]?cb-hangup)",
        ' same => n,GotoIf($["${IVRKIT_DP_TARGET}" =~ "^[+]?[0-9]+$"]?cb-number:cb-hangup)',  # + first only
        " same => n(cb-number),Set(IVRKIT_DP_TIMEOUT=${FILTER(0-9,${IVRKIT_TIMEOUT})})",
        " same => n,Dial(Local/${IVRKIT_DP_TARGET}@ivrkit-outbound,${IVRKIT_DP_TIMEOUT})",
        " same => n(cb-hangup),Hangup()",
    ]


def test_the_agent_first_leg_waits_only_in_a_queue_known_when_compiling() -> None:
    plan, _ = compile_texts(CALLING)
    assert plan is not None
    lines = extension(render(plan)[EXTENSIONS_FILE], "ivrkit-calling", "callback-agent")
    assert lines[1:5] == [
        " same => n,Set(IVRKIT_DP_TARGET=${FILTER(-.0-9A-Z_a-z,${IVRKIT_CB_QUEUE})})",
        " same => n,GotoIf($[${LEN(${IVRKIT_DP_TARGET})} != ${LEN(${IVRKIT_CB_QUEUE})}]?hangup)",
        " same => n,Set(IVRKIT_DP_TIMEOUT=${FILTER(0-9,${IVRKIT_CB_WAIT})})",
        " same => n,Set(QUEUE_PRIO=${FILTER(0-9,0${IVRKIT_CB_PRIORITY})})",
    ]
    assert [line for line in lines if ",Queue(" in line] == [
        " same => n(queue-declared),Queue(declared,r,,,${IVRKIT_DP_TIMEOUT})",
        " same => n(queue-hold),Queue(hold,,,,${IVRKIT_DP_TIMEOUT})",
        " same => n(queue-later),Queue(later,,,,${IVRKIT_DP_TIMEOUT})",
        " same => n(queue-over),Queue(over,,,,${IVRKIT_DP_TIMEOUT})",
    ]
    assert lines[-1] == " same => n(hangup),Hangup()" and lines[-6] == " same => n,Goto(hangup)"  # unknown queue


EXITING = """
flow: exiting
start: q
queues:
  support:
    exit_keys: {"1": callback}
    callback: {}
steps:
  q:
    queue: support
    outcomes: {callback: bye}
  bye:
    hangup: true
"""


def test_a_called_back_customer_who_presses_an_exit_key_goes_back_to_the_queue() -> None:
    plan, diagnostics = compile_texts(EXITING)
    assert plan is not None, diagnostics.render()
    back = extension(render(plan)[EXTENSIONS_FILE], "ivrkit-exit-support", "back")
    assert back[2:] == [
        ' same => n,GotoIf($["${IVRKIT_DP_CALLBACK}" != ""]?callback)',
        ' same => n,GotoIf($["${IVRKIT_DP_FROM}" = "exiting"]?ivrkit-exiting,s,resume)',
        " same => n(unknown),Hangup()",
        ' same => n(callback),GotoIf($["${IVRKIT_DP_FROM}" = "exiting"]?ivrkit-exiting,callback,queue-support)',
        " same => n,Hangup()",
    ]
    plan, _ = compile_texts(EXITING.replace("    callback: {}\n", ""))
    assert plan is not None
    assert "IVRKIT_DP_CALLBACK" not in render(plan)[EXTENSIONS_FILE]  # no callbacks, no callback path


def test_a_callback_queue_spelt_differently_is_the_same_queue_to_asterisk() -> None:
    text = CALLING.replace("callback: later", "callback: Hold")
    plan, diagnostics = compile_texts(text)
    assert plan is None
    assert any("queue 'hold' is queue 'Hold'" in m for m in messages(diagnostics)), messages(diagnostics)


def test_a_hostile_callback_queue_that_reached_the_plan_stops_the_rendering() -> None:
    plan, _ = compile_texts(CALLING)
    assert plan is not None
    hostile = dataclasses.replace(plan.flows[0].callbacks[0], name="support,r")
    flows = tuple(dataclasses.replace(flow, callbacks=(hostile,)) for flow in plan.flows)
    with pytest.raises(UnsafeValue, match="support,r"):
        render(dataclasses.replace(plan, flows=flows))
