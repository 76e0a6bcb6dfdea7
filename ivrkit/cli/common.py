"""Options and loading shared by the sub-commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_directory
from ivrkit.flow.model import Flow
from ivrkit.prompts.catalog import PromptCatalog


def add_project_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flows",
        type=Path,
        default=Path(os.environ.get("IVRKIT_FLOWS", "flows")),
        help="directory of flow files (default: flows/, or $IVRKIT_FLOWS)",
    )
    parser.add_argument(
        "--prompts",
        type=Path,
        default=Path(os.environ.get("IVRKIT_PROMPTS", "prompts")),
        help="prompt catalog directory (default: prompts/, or $IVRKIT_PROMPTS)",
    )


def load_project(args: argparse.Namespace) -> tuple[dict[str, Flow], PromptCatalog, Diagnostics]:
    """Flows (checked) and the prompt catalog; the diagnostics say what is wrong, if anything."""
    from ivrkit.flow.checks import check_flows

    result = load_directory(args.flows)
    catalog = PromptCatalog.load(args.prompts)
    check_flows(result.flows, result.diagnostics, catalog if args.prompts.is_dir() else None, result.unloaded)
    return result.flows, catalog, result.diagnostics
