"""``ivrkit graph``: a flow drawn as a graph (DOT, Mermaid or SVG), so designers and reviewers see its shape.

:mod:`~ivrkit.graph.edges` knows where each step kind can lead, :mod:`~ivrkit.graph.nodes` how a step is
labelled, and :mod:`~ivrkit.graph.render` writes the formats.
"""

from __future__ import annotations

from ivrkit.graph.edges import Edge, edges
from ivrkit.graph.nodes import GraphNode, nodes
from ivrkit.graph.render import GraphvizError, graphviz, to_dot, to_mermaid, to_svg

__all__ = ["Edge", "GraphNode", "GraphvizError", "edges", "graphviz", "nodes", "to_dot", "to_mermaid", "to_svg"]
