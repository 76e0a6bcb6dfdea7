"""Build flows from inline YAML and run simulated calls on them (the `call` fixture)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_text
from ivrkit.flow.model import Flow
from ivrkit.sim.script import action_from, parse_keys
from ivrkit.sim.session import SimulationResult, simulate


def build(*texts: str) -> dict[str, Flow]:
    flows: dict[str, Flow] = {}
    for index, text in enumerate(texts):
        diagnostics = Diagnostics()
        flow = load_text(textwrap.dedent(text), f"flow{index}.yaml", diagnostics)
        assert flow is not None and not diagnostics.errors, diagnostics.render()
        flows[flow.name] = flow
    return flows


Call = Callable[..., SimulationResult]


@pytest.fixture
def call() -> Call:
    """call(flow_yaml_or_flows, keys="1 2" | script=[...], **simulate options)"""

    def run(
        flows: str | dict[str, Flow], keys: str = "", script: list[Any] | None = None, **options: Any
    ) -> SimulationResult:
        flow_set = build(flows) if isinstance(flows, str) else flows
        caller = parse_keys(keys)
        if script is not None:
            caller.actions = [action_from(item) for item in script]
        name = options.pop("flow", next(iter(flow_set)))
        return simulate(flow_set, name, caller, **options)

    return run


def of_kind(result: SimulationResult, kind: str) -> list[dict[str, Any]]:
    return [event.detail for event in result.events if event.kind == kind]
