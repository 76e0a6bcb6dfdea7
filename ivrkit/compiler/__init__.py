"""The dialplan compiler: flows in, Asterisk configuration an admin can ``#include`` out.

The stages are the modules: :mod:`~ivrkit.compiler.dialplan` (what may reach a dialplan line, pure),
:mod:`~ivrkit.compiler.plan` (flows to a render model, with every problem at its YAML position),
:mod:`~ivrkit.compiler.render` (Jinja2 templates in ``templates/``, header and content hash),
:mod:`~ivrkit.compiler.output` (files on disk) and :mod:`~ivrkit.compiler.reload` (apply over AMI, verify).
"""

from __future__ import annotations

from collections.abc import Mapping

from ivrkit.compiler.dialplan import AgiUrl
from ivrkit.compiler.plan import DEFAULT_SOUNDS, build_plan
from ivrkit.compiler.render import render
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.model import Flow
from ivrkit.prompts.catalog import PromptCatalog


def compile_flows(
    flows: Mapping[str, Flow],
    diagnostics: Diagnostics,
    catalog: PromptCatalog | None,
    agi: AgiUrl,
    sounds: str = DEFAULT_SOUNDS,
) -> dict[str, str] | None:
    """File name → text of every output file, or None when ``diagnostics`` now holds errors."""
    plan = build_plan(flows, diagnostics, catalog, agi, sounds)
    if plan is None or diagnostics.errors:
        return None
    return render(plan)


__all__ = ["compile_flows"]
