"""``ivrkit graph``: formats, output file, the Graphviz fallback, and exit statuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ivrkit.cli import main

Capture = pytest.CaptureFixture[str]


def test_dot_by_default(flows_dir: Path, capsys: Capture) -> None:
    assert main(["graph", "demo", "--flows", str(flows_dir)]) == 0
    assert capsys.readouterr().out.startswith('digraph "demo" {')


def test_mermaid(flows_dir: Path, capsys: Capture) -> None:
    assert main(["graph", "demo", "--flows", str(flows_dir), "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD\n")


def test_flows_directory_from_the_environment(
    flows_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setenv("IVRKIT_FLOWS", str(flows_dir))
    assert main(["graph", "demo"]) == 0
    assert capsys.readouterr().out.startswith("digraph")


def test_a_flow_file_by_path(flows_dir: Path, capsys: Capture) -> None:
    assert main(["graph", str(flows_dir / "demo.yaml"), "--format", "mermaid"]) == 0
    assert "flowchart TD" in capsys.readouterr().out


def test_out_writes_a_file(flows_dir: Path, tmp_path: Path, capsys: Capture) -> None:
    out = tmp_path / "graphs" / "demo.dot"
    assert main(["graph", "demo", "--flows", str(flows_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"wrote {out}" in captured.err
    assert out.read_text(encoding="utf-8").startswith('digraph "demo"')


def test_unknown_flow(flows_dir: Path, capsys: Capture) -> None:
    assert main(["graph", "demoo", "--flows", str(flows_dir)]) == 2
    err = capsys.readouterr().err
    assert f"no flow named 'demoo' in {flows_dir}/; did you mean 'demo'? (flows: demo)" in err


def test_missing_file(tmp_path: Path, capsys: Capture) -> None:
    assert main(["graph", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_flow_with_errors(flows_dir: Path, capsys: Capture) -> None:
    (flows_dir / "broken.yaml").write_text("flow: broken\nstart: a\nsteps:\n  a: {paly: hello}\n", encoding="utf-8")
    assert main(["graph", "broken", "--flows", str(flows_dir)]) == 1
    err = capsys.readouterr().err
    assert "unknown step kind 'paly'" in err
    assert "no flow named 'broken'" in err
    assert main(["graph", str(flows_dir / "broken.yaml")]) == 1
    assert "has errors" in capsys.readouterr().err
    assert main(["graph", "demo", "--flows", str(flows_dir)]) == 0  # another file's errors do not matter


def test_unknown_format() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["graph", "demo", "--format", "png"])
    assert exit_info.value.code == 2


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")
def test_svg(flows_dir: Path, tmp_path: Path, capsys: Capture) -> None:
    out = tmp_path / "demo.svg"
    assert main(["graph", "demo", "--flows", str(flows_dir), "--format", "svg", "--out", str(out)]) == 0
    assert "<svg" in out.read_text(encoding="utf-8")


def test_svg_without_graphviz_prints_mermaid(flows_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    monkeypatch.setattr("ivrkit.cli.graph.graphviz", lambda: None)
    assert main(["graph", "demo", "--flows", str(flows_dir), "--format", "svg"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("flowchart TD\n")
    assert "Graphviz is not installed" in captured.err


def test_svg_without_graphviz_does_not_write_the_file(
    flows_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setattr("ivrkit.cli.graph.graphviz", lambda: None)
    out = tmp_path / "demo.svg"
    assert main(["graph", "demo", "--flows", str(flows_dir), "--format", "svg", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("flowchart TD\n")
    assert f"{out} was not written" in captured.err
    assert not out.exists()
