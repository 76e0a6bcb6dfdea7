"""A flow graph as Graphviz DOT, Mermaid ``flowchart`` text, or SVG (DOT laid out by Graphviz's ``dot``).

Labels come from flow files, so they may hold anything: quotes, ``<``, ``|``, line breaks. Each format has
its own escaping, applied in exactly one place (:func:`dot_string`, :func:`mermaid_string`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from ivrkit.flow.model import Flow
from ivrkit.graph.edges import Edge, EdgeKind, edges
from ivrkit.graph.nodes import GraphNode, nodes, shorten

# Shape per node kind: DOT attributes, and Mermaid's opening and closing brackets.
DOT_SHAPES = {
    "play": 'shape=box, style="rounded"',
    "say": 'shape=box, style="rounded"',
    "menu": "shape=hexagon",
    "collect": "shape=parallelogram",
    "set": "shape=box",
    "branch": "shape=diamond",
    "hours": "shape=diamond",
    "goto": "shape=cds",
    "queue": "shape=cylinder",
    "transfer": "shape=trapezium",
    "hangup": "shape=octagon",
    "entry": "shape=circle",
    "handler": 'shape=ellipse, style="dashed"',
    "flow": 'shape=box, style="dashed,bold"',
    "missing": 'shape=box, style="dashed", color=red, fontcolor=red',
}
MERMAID_SHAPES = {
    "play": ("(", ")"),
    "say": ("(", ")"),
    "menu": ("{{", "}}"),
    "collect": ("[/", "/]"),
    "set": ("[", "]"),
    "branch": ("{", "}"),
    "hours": ("{", "}"),
    "goto": (">", "]"),
    "queue": ("[(", ")]"),
    "transfer": ("[/", "\\]"),
    "hangup": ("([", "])"),
    "entry": ("((", "))"),
    "handler": ("((", "))"),
    "flow": ("[[", "]]"),
    "missing": ("[", "]"),
}
DOT_EDGES = {
    "failure": "color=firebrick, fontcolor=firebrick",
    "cancel": 'style="dotted", color=gray40, fontcolor=gray40',
    "handler": 'style="dashed"',
    "flow": 'style="dashed"',
}
MERMAID_ARROWS = {"cancel": "-.->", "handler": "-.->", "flow": "-.->"}


class GraphvizError(RuntimeError):
    """Graphviz's ``dot`` failed (or is missing)."""


def dot_string(text: str) -> str:
    """A DOT quoted string; line breaks become centred ``\\n`` breaks, backslashes lose their escape meaning."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
    return '"' + escaped.replace("\n", "\\n") + '"'


_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "|": "#124;",
    "&": "#amp;",
    "`": "#96;",
    "%": "#37;",
    "\r": "",
}


def mermaid_string(text: str) -> str:
    """A Mermaid quoted label; special characters as Mermaid entity codes, line breaks as ``<br>``."""
    lines = ("".join(_MERMAID_ENTITIES.get(char, char) for char in line) for line in text.split("\n"))
    return '"' + "<br>".join(lines) + '"'


def merged(flow_edges: Sequence[Edge]) -> list[Edge]:
    """Parallel edges of one kind joined into one, labels listed: menu keys ``1, 2`` to the same step."""
    groups: dict[tuple[str, str, EdgeKind], list[str]] = {}
    for edge in flow_edges:
        labels = groups.setdefault((edge.source, edge.target, edge.kind), [])
        if edge.label not in labels:
            labels.append(edge.label)
    return [Edge(source, target, shorten(", ".join(labels)), kind) for (source, target, kind), labels in groups.items()]


def to_dot(flow: Flow) -> str:
    flow_edges = edges(flow)
    title = flow.name + (f": {flow.description}" if flow.description else "")
    lines = [
        f"digraph {dot_string(flow.name)} {{",
        f'  graph [label={dot_string(title)}, labelloc=t, fontname="Helvetica", rankdir=TB];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node in nodes(flow, flow_edges):
        lines.append(
            f"  {dot_string(node.id)} [label={dot_string(node.label)}, {DOT_SHAPES.get(node.kind, 'shape=box')}];"
        )
    for edge in merged(flow_edges):
        style = DOT_EDGES.get(edge.kind)
        attributes = f"label={dot_string(edge.label)}" + (f", {style}" if style else "")
        lines.append(f"  {dot_string(edge.source)} -> {dot_string(edge.target)} [{attributes}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(flow: Flow) -> str:
    flow_edges = edges(flow)
    graph_nodes = nodes(flow, flow_edges)
    ids = {node.id: f"n{index}" for index, node in enumerate(graph_nodes)}  # step names may be Mermaid keywords
    lines = ["flowchart TD", f"  %% flow {_comment(flow.name)} ({_comment(flow.file)})"]
    for node in graph_nodes:
        lines.append(f"  {ids[node.id]}{_mermaid_node(node)}")
    failures = []
    for index, edge in enumerate(merged(flow_edges)):
        arrow = MERMAID_ARROWS.get(edge.kind, "-->")
        lines.append(f"  {ids[edge.source]} {arrow}|{mermaid_string(edge.label)}| {ids[edge.target]}")
        if edge.kind == "failure":
            failures.append(str(index))
    if failures:
        lines.append(f"  linkStyle {','.join(failures)} stroke:#b22222,color:#b22222")
    missing = [ids[node.id] for node in graph_nodes if node.kind == "missing"]
    if missing:
        lines.append("  classDef missing stroke:#d00,color:#d00,stroke-dasharray:4")
        lines.append(f"  class {','.join(missing)} missing")
    return "\n".join(lines) + "\n"


def _mermaid_node(node: GraphNode) -> str:
    opening, closing = MERMAID_SHAPES.get(node.kind, ("[", "]"))
    return f"{opening}{mermaid_string(node.label)}{closing}"


def _comment(text: str) -> str:
    return " ".join(text.split())


def graphviz() -> str | None:
    """The path of Graphviz's ``dot`` program, or None when Graphviz is not installed."""
    return shutil.which("dot")


def to_svg(flow: Flow, program: str | None = None) -> str:
    """The flow laid out by Graphviz as SVG text; :class:`GraphvizError` when ``dot`` is missing or fails."""
    program = program or graphviz()
    if program is None:
        raise GraphvizError("Graphviz is not installed: no `dot` program on PATH")
    try:
        done = subprocess.run(
            [program, "-Tsvg"],
            input=to_dot(flow),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphvizError(f"cannot run {program}: {exc}") from exc
    if done.returncode != 0:
        raise GraphvizError(f"{program} failed: {done.stderr.strip() or f'exit status {done.returncode}'}")
    return done.stdout
