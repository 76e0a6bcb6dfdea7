"""Rendering: the same flows give the same bytes, the header's hash covers the body, templates are strict."""

from __future__ import annotations

import dataclasses
import random

import pytest
from jinja2 import UndefinedError

from ivrkit.compiler import compile_flows
from ivrkit.compiler.dialplan import UnsafeValue, parse_agi_url
from ivrkit.compiler.plan import QueuePlan
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
    assert len(agi_lines) == 6  # start and resume per flow, and each flow's hang-up handler
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
