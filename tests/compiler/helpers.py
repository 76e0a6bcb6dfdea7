"""Compile flows given as YAML text, for the compiler tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ivrkit.compiler.dialplan import AgiUrl, parse_agi_url
from ivrkit.compiler.plan import Plan, build_plan
from ivrkit.flow.checks import check_flows
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_text
from ivrkit.flow.model import Flow
from ivrkit.prompts.catalog import PromptCatalog

ROOT = Path(__file__).resolve().parents[2]
AGI = parse_agi_url("agi://127.0.0.1:4573")


def catalog() -> PromptCatalog:
    return PromptCatalog.load(ROOT / "prompts")


def load(
    *texts: str, names: list[str] | None = None, prompts: PromptCatalog | None = None
) -> tuple[dict[str, Flow], Diagnostics]:
    """Each text as its own file (``<flow>.yaml`` unless ``names`` says), loaded and checked."""
    diagnostics = Diagnostics()
    flows: dict[str, Flow] = {}
    for index, text in enumerate(texts):
        text = textwrap.dedent(text)
        file = names[index] if names else f"flow{index}.yaml"
        diagnostics.remember_source(file, text)
        flow = load_text(text, file, diagnostics)
        if flow is not None:
            flows[flow.name] = flow
    check_flows(flows, diagnostics, prompts or catalog())
    return flows, diagnostics


def plan(*texts: str, agi: AgiUrl = AGI) -> tuple[Plan | None, Diagnostics]:
    flows, diagnostics = load(*texts)
    return build_plan(flows, diagnostics, catalog(), agi), diagnostics


def messages(diagnostics: Diagnostics) -> list[str]:
    """Each diagnostic as ``file:line:col: severity: message``, in order."""
    return [f"{d.location}: {d.severity.value}: {d.message}" for d in diagnostics]
