"""``ivrkit check``: load every flow, run the static checks, and print what is wrong where.

Designers run it before committing and CI runs it on every change, so the output is made for both: text a
person can jump from (``file:line:col`` with the source line and a caret), JSON a tool can read, and an exit
status that fails the build on errors (and on warnings with ``--strict``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ivrkit.cli.common import add_project_options, load_project
from ivrkit.flow.diagnostics import Diagnostic, Diagnostics, Location, relative_name
from ivrkit.flow.loader import flow_files


def register(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "check",
        help="check flow files for mistakes before they reach a caller",
        description="Load every flow file, check references, reachability, loops, keys, hang-up handlers, "
        "prompts (missing in a language, unused, badly built, placeholders) and what the compiled dialplan needs, "
        "and print each problem as file:line:col. Exit status 1 when there are errors.",
    )
    add_project_options(parser)
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: %(default)s)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from ivrkit.compiler.plan import check_dialplan

    flows, catalog, diagnostics = load_project(args, prompts=True)
    check_dialplan(flows, diagnostics, catalog if args.prompts.is_dir() else None)
    files = len(flow_files(args.flows)) if args.flows.is_dir() else 0
    if args.flows.is_dir() and not files:
        diagnostics.error(
            Location(relative_name(args.flows), 1, 1),
            "no flow files in this directory",
            "flow files end in .yaml or .yml",
        )
    if args.format == "json":
        print(json.dumps([as_json(diagnostic) for diagnostic in diagnostics], indent=2))
    else:
        print(report(diagnostics, files))
    failed = bool(diagnostics.errors) or (args.strict and bool(diagnostics.warnings))
    return 1 if failed else 0


def report(diagnostics: Diagnostics, files: int, noun: str = "flow") -> str:
    """Every diagnostic, sorted by position, then one summary line."""
    if not diagnostics.items:
        return f"ok: {plural(files, noun)} checked"
    summary = (
        f"{plural(len(diagnostics.errors), 'error')}, {plural(len(diagnostics.warnings), 'warning')} "
        f"in {plural(files, noun)}"
    )
    return f"{diagnostics.render()}\n{summary}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def as_json(diagnostic: Diagnostic) -> dict[str, Any]:
    location = diagnostic.location
    return {
        "file": location.file,
        "line": location.line,
        "column": location.column,
        "severity": diagnostic.severity.value,
        "message": diagnostic.message,
        "hint": diagnostic.hint,
    }
