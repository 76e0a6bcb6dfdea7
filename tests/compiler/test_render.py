"""Rendering: the same flows give the same bytes, the header's hash covers the body, templates are strict."""

from __future__ import annotations

import dataclasses
import random

import pytest
from jinja2 import UndefinedError

from ivrkit.compiler import compile_flows
from ivrkit.compiler.dialplan import UnsafeValue, parse_agi_url
from ivrkit.compiler.plan import Plan, QueuePlan, build_plan
from ivrkit.compiler.render import (
    EXTENSIONS_FILE,
    HASH_PREFIX,
    QUEUES_FILE,
    body_hash,
    edited_by_hand,
    environment,
    render,
    split_header,
)
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.model import Flow
from ivrkit.flow.pbx import QueueSettings
from tests.compiler.helpers import AGI, ROOT, catalog, load, plan

EXAMPLES = [path.read_text() for path in sorted((ROOT / "flows").glob("*.yaml"))]
NAMES = [path.name for path in sorted((ROOT / "flows").glob("*.yaml"))]


def compiled(order: list[int]) -> dict[str, str]:
    flows, diagnostics = load(*(EXAMPLES[i] for i in order), names=[NAMES[i] for i in order])
    files = compile_flows(flows, diagnostics, catalog(), AGI)
    assert files is not None, diagnostics.render()
    return files


def test_the_same_flows_give_the_same_bytes_whatever_their_order() -> None:
    first = compiled([0, 1])
    assert compiled([0, 1]) == first
    assert compiled([1, 0]) == first
    assert list(first) == [EXTENSIONS_FILE, QUEUES_FILE]


def test_the_header_names_the_sources_and_hashes_the_body() -> None:
    text = compiled([0, 1])[EXTENSIONS_FILE]
    lines = text.splitlines()
    assert lines[0] == "; extensions-ivrkit.conf: written by `ivrkit compile` from billing.yaml, support.yaml."
    assert lines[2] == "; FastAGI server: agi://127.0.0.1:4573"
    recorded, body = split_header(text)
    assert lines[3] == f"{HASH_PREFIX}{recorded}" and recorded == body_hash(body)
    assert not edited_by_hand(text)
    assert edited_by_hand(text.replace("Queue(support", "Queue(sales"))
    assert edited_by_hand("[a]\nexten => s,1,NoOp()\n")  # no header at all


def test_the_agi_address_reaches_every_agi_line() -> None:
    flows, diagnostics = load(*EXAMPLES, names=NAMES)
    files = compile_flows(flows, diagnostics, catalog(), parse_agi_url("hagi://ivr.example.com"))
    assert files is not None
    agi_lines = [line for line in files[EXTENSIONS_FILE].splitlines() if ",AGI(" in line]
    assert len(agi_lines) == 7  # start and resume per flow, each flow's hang-up handler, support's callback leg
    assert all("AGI(hagi://ivr.example.com/" in line for line in agi_lines)


def test_templates_are_strict_about_undefined_names() -> None:
    with pytest.raises(UndefinedError):
        environment().from_string("{{ flow.contxt }}").render(flow=object())


def test_a_hostile_value_that_reached_the_plan_stops_the_rendering() -> None:
    """Defence in depth: the templates validate every name again, whatever the plan let through."""
    result, _ = plan("flow: a\nstart: q\nsteps:\n  q:\n    queue: support\n")
    assert result is not None
    hostile = QueuePlan("support,r", QueueSettings(), ("a",), None)
    flows = tuple(dataclasses.replace(flow, queues=(hostile,)) for flow in result.flows)
    with pytest.raises(UnsafeValue, match="support,r"):
        render(dataclasses.replace(result, flows=flows))


def test_a_flow_description_stays_a_comment() -> None:
    description = 'description: "Sales;\\n[evil]\\nexten => s,1,System(id)"\n'
    text = f"flow: a\n{description}start: bye\nsteps:\n  bye:\n    hangup: true\n"
    flows, diagnostics = load(text)
    files = compile_flows(flows, diagnostics, catalog(), AGI)
    assert files is not None, diagnostics.render()
    assert "; flow a (flow0.yaml): Sales; [evil] exten => s,1,System(id)\n" in files[EXTENSIONS_FILE]
    assert "\n[evil]" not in files[EXTENSIONS_FILE]


def test_random_flow_orders_compile_alike() -> None:
    texts = [f"flow: f{i}\nstart: q\nsteps:\n  q:\n    queue: q{i % 3}\n" for i in range(8)]
    reference = None
    rng = random.Random(4)
    for _ in range(5):
        order = list(range(8))
        rng.shuffle(order)
        flows, diagnostics = load(*(texts[i] for i in order), names=[f"f{i}.yaml" for i in order])
        files = compile_flows(flows, Diagnostics(), catalog(), AGI)
        assert files is not None, diagnostics.render()
        reference = reference or files
        assert files == reference


ANNOUNCING = """\
flow: a
start: q
queues:
  support:
    announce: {every: 45s, min_gap: 20s, position: limit, position_limit: 3, hold_time: once, round_seconds: 15}
    periodic: {prompts: [goodbye, still-busy], every: 30s, start_delay: 10s, random: true}
    exit_keys: {"#": text, "1": callback}
steps:
  q:
    queue: support
    outcomes: {callback: bye, text: bye}
  bye:
    hangup: true
"""


def section(text: str, header: str) -> list[str]:
    """The lines of one ``[header]`` section, comments included, up to the next section."""
    lines = text.splitlines()
    start = lines.index(f"[{header}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    return [line for line in lines[start + 1 : end] if line]


def test_the_queue_section_carries_the_announcements_periodic_prompts_and_exit_context() -> None:
    flows, diagnostics = load(ANNOUNCING)
    files = compile_flows(flows, diagnostics, catalog(), AGI)
    assert files is not None, diagnostics.render()
    assert section(files[QUEUES_FILE], "support")[7:] == [
        "; the live statistics the FastAGI server reads (QUEUE_VARIABLES) need this",
        "setqueuevar = yes",
        "; announcements while callers wait",
        "announce-frequency = 45",
        "min-announce-frequency = 20",
        "announce-position = limit",
        "announce-position-limit = 3",
        "announce-position-only-up = yes",
        "announce-holdtime = once",
        "announce-round-seconds = 15",
        "announce-to-first-user = no",
        "periodic-announce = en/ivrkit/goodbye,en/ivrkit/still-busy",
        "periodic-announce-frequency = 30",
        "periodic-announce-startdelay = 10",
        "random-periodic-announce = yes",
        "; exit keys 1, # take callers back into the flow that queued them",
        "context = ivrkit-exit-support",
    ]
    assert section(files[EXTENSIONS_FILE], "ivrkit-exit-support")[2:] == [
        "exten => 1,1,Set(IVRKIT_DP_STATUS=callback)",
        " same => n,Goto(back,1)",
        "exten => #,1,Set(IVRKIT_DP_STATUS=text)",
        " same => n,Goto(back,1)",
        "exten => back,1,Set(IVRKIT_DP_FROM=${FILTER(-0-9A-Z_a-z,${IVRKIT_DP_FLOW})})",
        " same => n,GotoIf($[${LEN(${IVRKIT_DP_FROM})} != ${LEN(${IVRKIT_DP_FLOW})}]?unknown)",
        ' same => n,GotoIf($["${IVRKIT_DP_FROM}" = "a"]?ivrkit-a,s,resume)',
        " same => n(unknown),Hangup()",
    ]
    entry = section(files[EXTENSIONS_FILE], "ivrkit-a")
    assert entry[1:3] == ["exten => s,1,NoOp(ivrkit flow a)", " same => n,Set(IVRKIT_DP_FLOW=a)"]
    assert " same => n,AGI(agi://127.0.0.1:4573/a/resume?outcome=${FILTER(-0-9A-Za-z,${IVRKIT_DP_STATUS})})" in entry


def test_a_queue_without_announcements_says_so_and_never_plays_periodic_prompts() -> None:
    result, diagnostics = plan("flow: a\nstart: q\nsteps:\n  q:\n    queue: support\n")
    assert result is not None, diagnostics.render()
    lines = section(render(result)[QUEUES_FILE], "support")
    assert "; announcements while callers wait (announce-frequency 0: none)" in lines
    assert "announce-frequency = 0" in lines and "periodic-announce-frequency = 0" in lines
    assert not [line for line in lines if line.startswith(("periodic-announce =", "context"))]


def test_hostile_exit_keys_and_sounds_that_reached_the_plan_stop_the_rendering() -> None:
    flows, _ = load(ANNOUNCING)
    result = plan_of(flows)
    queue = result.queues[0]
    for hostile, match in (
        (dataclasses.replace(queue, periodic=("en/ivrkit/a,en/ivrkit/b",)), "can only hold"),
        (dataclasses.replace(queue, periodic=("../../../etc/x",)), "can only hold"),
    ):
        with pytest.raises(UnsafeValue, match=match):
            render(dataclasses.replace(result, queues=(hostile,)))
    (queue_exit,) = result.exits
    for keys in ((("1,2", "callback"),), (("1", "call;back"),)):
        with pytest.raises(UnsafeValue):
            render(dataclasses.replace(result, exits=(dataclasses.replace(queue_exit, keys=keys),)))


def plan_of(flows: dict[str, Flow]) -> Plan:
    result = build_plan(flows, Diagnostics(), catalog(), AGI)
    assert result is not None
    return result
