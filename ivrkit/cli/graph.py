"""``ivrkit graph FLOW``: draw a flow as Graphviz DOT, Mermaid, or SVG (when Graphviz is installed)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ivrkit.flow.diagnostics import Diagnostics, did_you_mean
from ivrkit.flow.loader import load_directory, load_file
from ivrkit.flow.model import Flow
from ivrkit.graph import GraphvizError, graphviz, to_dot, to_mermaid, to_svg

FORMATS = ("dot", "mermaid", "svg")
NO_GRAPHVIZ = (
    "ivrkit graph: Graphviz is not installed (no `dot` program on PATH), so there is no SVG. Install it "
    "(apt-get install graphviz, brew install graphviz) or use --format dot or mermaid. "
    "Printing Mermaid instead: paste it into a ```mermaid block in Markdown or into mermaid.live."
)


def register(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "graph",
        help="draw a flow (DOT, Mermaid or SVG)",
        description="Draw a flow: a node per step, an edge per way out (next, menu keys, failures, opening "
        "hours, conditions, queue and transfer outcomes, cancel key). DOT text by default; --format svg needs "
        "Graphviz and prints Mermaid (exit status 1 with --out) when it is missing.",
    )
    parser.add_argument("flow", help="flow name (the `flow:` in the file), or the path of a .yaml file")
    parser.add_argument(
        "--flows",
        type=Path,
        metavar="DIR",
        default=Path(os.environ.get("IVRKIT_FLOWS", "flows")),
        help="directory of flow files (default: flows/, or $IVRKIT_FLOWS)",
    )
    parser.add_argument("--format", choices=FORMATS, default="dot", help="output format (default: dot)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    return parser


def run(args: argparse.Namespace) -> int:
    flow, status = _load(args.flow, args.flows)
    if flow is None:
        return status
    if args.format == "dot":
        text = to_dot(flow)
    elif args.format == "mermaid":
        text = to_mermaid(flow)
    else:
        program = graphviz()
        if program is None:
            print(NO_GRAPHVIZ + (f" {args.out} was not written." if args.out else ""), file=sys.stderr)
            sys.stdout.write(to_mermaid(flow))
            return 1 if args.out else 0
        try:
            text = to_svg(flow, program)
        except GraphvizError as exc:
            print(f"ivrkit graph: {exc}", file=sys.stderr)
            return 1
    return _write(text, args.out)


def _load(name: str, directory: Path) -> tuple[Flow | None, int]:
    """The flow to draw, or None and the exit status (1: it has errors, 2: there is no such flow)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            print(f"ivrkit graph: no such file: {path}", file=sys.stderr)
            return None, 2
        diagnostics = Diagnostics()
        flow = load_file(path, diagnostics)
        if flow is None or diagnostics.errors:
            return _failed(diagnostics, f"{path} has errors; fix them first (ivrkit check)")
        return flow, 0
    result = load_directory(directory)
    if name in result.flows:
        return result.flows[name], 0
    hint = did_you_mean(name, result.flows)
    message = f"no flow named '{name}' in {directory}/" + (f"; {hint}" if hint else "")
    message += f" (flows: {', '.join(sorted(result.flows)) or 'none'})"
    if result.diagnostics.errors:  # perhaps it is the flow whose file has errors
        return _failed(result.diagnostics, message + "; files with errors are not counted, see above")
    print(f"ivrkit graph: {message}", file=sys.stderr)
    return None, 2


def _failed(diagnostics: Diagnostics, message: str) -> tuple[None, int]:
    print(diagnostics.render(), file=sys.stderr)
    print(f"ivrkit graph: {message}", file=sys.stderr)
    return None, 1


def _write(text: str, out: Path | None) -> int:
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"ivrkit graph: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}", file=sys.stderr)
    return 0
