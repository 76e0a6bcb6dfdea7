"""Load flows from inline YAML and run the static checks on them, for the flow-language tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from ivrkit.flow.checks import check_flows
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_text
from ivrkit.flow.model import Flow
from ivrkit.prompts.catalog import PromptCatalog

CheckRun = Callable[..., tuple[int, str]]  # the ivrkit_check fixture: (*args) -> (exit status, stdout)
END = "  end:\n    hangup: true\n"


def flow(steps: str, top: str = "", name: str = "support", start: str = "a") -> str:
    """A flow file: ``top`` options after `start`, then ``steps`` (already indented) and a hangup step ``end``."""
    return f"flow: {name}\nstart: {start}\n{top}steps:\n{steps}{END}"


def load(text: str, file: str = "flow.yaml") -> tuple[Flow | None, Diagnostics]:
    """One flow file's text (dedented), loaded without the whole-flow checks."""
    diagnostics = Diagnostics()
    return load_text(textwrap.dedent(text), file, diagnostics), diagnostics


def check(*texts: str, catalog: PromptCatalog | None = None) -> Diagnostics:
    """Load each text as its own file (flow0.yaml, flow1.yaml, …) and run every check on the flows together."""
    diagnostics = Diagnostics()
    flows: dict[str, Flow] = {}
    for index, text in enumerate(texts):
        flow = load_text(textwrap.dedent(text), f"flow{index}.yaml", diagnostics)
        if flow is not None:
            flows[flow.name] = flow
    check_flows(flows, diagnostics, catalog)
    return diagnostics


def messages(diagnostics: Diagnostics) -> list[str]:
    """Each diagnostic as ``line:col: severity: message``, in file order (one file) for exact comparisons."""
    return [f"{d.location.line}:{d.location.column}: {d.severity.value}: {d.message}" for d in diagnostics]


def hints(diagnostics: Diagnostics) -> list[str | None]:
    return [d.hint for d in diagnostics]
