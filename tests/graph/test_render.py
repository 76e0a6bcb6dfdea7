"""DOT and Mermaid text, SVG through Graphviz, and label escaping."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from ivrkit.flow.model import Flow
from ivrkit.graph import GraphvizError, to_dot, to_mermaid, to_svg
from ivrkit.graph.render import dot_string, mermaid_string

needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")


def test_dot(demo: Flow) -> None:
    dot = to_dot(demo)
    assert dot.startswith('digraph "demo" {\n')
    assert dot.endswith("}\n")
    for line in [
        '"(start)" -> "welcome" [label="start"];',
        '"main" [label="main\\nmenu: main-menu", shape=hexagon];',
        '"agents" [label="agents\\nqueue: support", shape=cylinder];',
        '"main" -> "entry" [label="1"];',
        '"main" -> "operator" [label="0, #"];',  # keys to the same step share an edge
        '"main" -> "operator" [label="no input", color=firebrick, fontcolor=firebrick];',
        '"office" -> "holiday" [label="holiday"];',
        '"entry" -> "main" [label="cancel *", style="dotted", color=gray40, fontcolor=gray40];',
        '"agents" -> "closed" [label="joinempty"];',
        '"billing" -> "flow:billing/pay" [label="goto", style="dashed"];',
        '"flow:billing/pay" [label="flow billing\\nat pay", shape=box, style="dashed,bold"];',
        '"nowhere" [label="nowhere\\n(no such step)", shape=box, style="dashed", color=red, fontcolor=red];',
    ]:
        assert f"  {line}\n" in dot, line


def test_dot_escapes_hostile_labels(demo: Flow) -> None:
    dot = to_dot(demo)
    assert '"route" -> "agents" [label="caller.name == \'say \\"hi\\" <b> | x\'"];' in dot
    assert 'label="route\\nbranch\\nnote: Ask \\"ops\\" <team> | now"' in dot
    assert 'graph [label="demo: Demo \\"quoted\\" <flow> | test"' in dot
    assert dot_string('a\\nb "c"\nd') == '"a\\\\nb \\"c\\"\\nd"'  # a typed backslash stays a backslash


def test_mermaid(demo: Flow) -> None:
    mermaid = to_mermaid(demo)
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart TD"
    node_lines = [re.match(r'  (n\d+)[^" ]+"([^<"]*)', line) for line in lines]
    ids = {match.group(2): match.group(1) for match in node_lines if match}  # first label line -> node id
    main, entry, operator, agents = ids["main"], ids["entry"], ids["operator"], ids["agents"]
    assert f'  {main}{{{{"main<br>menu: main-menu"}}}}' in lines
    assert f'  {agents}[("agents<br>queue: support")]' in lines
    assert f'  {main} -->|"1"| {entry}' in lines
    assert f'  {main} -->|"0, #35;"| {operator}' in lines
    assert f'  {entry} -.->|"cancel *"| {main}' in lines
    assert f'  {ids["billing"]} -.->|"goto"| {ids["flow billing"]}' in lines
    assert any(line.startswith("  linkStyle ") for line in lines)  # failures in red


def test_mermaid_escapes_hostile_labels(demo: Flow) -> None:
    mermaid = to_mermaid(demo)
    assert "#quot;hi#quot; #lt;b#gt; #124; x" in mermaid
    assert "note: Ask #quot;ops#quot; #lt;team#gt; #124; now" in mermaid
    for label in re.findall(r'"([^"]*)"', mermaid):
        assert not re.search(r"[<>|]", label.replace("<br>", "")), label
    assert mermaid_string('a "b"\n<c> | #d') == '"a #quot;b#quot;<br>#lt;c#gt; #124; #35;d"'


@needs_graphviz
def test_svg_with_graphviz(demo: Flow) -> None:
    svg = to_svg(demo)
    assert "<svg" in svg
    assert "note: Ask &quot;ops&quot; &lt;team&gt; | now" in svg


@needs_graphviz
def test_dot_output_parses_without_warnings(demo: Flow) -> None:
    done = subprocess.run(["dot", "-Tcanon"], input=to_dot(demo), capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_svg_reports_a_failing_graphviz(demo: Flow) -> None:
    false = shutil.which("false")
    if false is None:
        pytest.skip("no `false` program")
    with pytest.raises(GraphvizError, match="failed"):
        to_svg(demo, false)


def test_svg_without_graphviz(demo: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ivrkit.graph.render.shutil.which", lambda name: None)
    with pytest.raises(GraphvizError, match="not installed"):
        to_svg(demo)
