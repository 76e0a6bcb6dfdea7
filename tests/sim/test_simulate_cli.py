"""``ivrkit simulate``: script mode prints a transcript; interactive mode takes keys typed at the terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ivrkit.cli import main

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ["--flows", str(ROOT / "flows"), "--prompts", str(ROOT / "prompts")]


def test_script_mode_prints_transcript_with_prompt_texts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "support", "--keys", "2", *PROJECT]) == 0
    out = capsys.readouterr().out
    assert '"Welcome to Example Telecom."' in out
    assert "choice     support.main_menu            key=2 then=tech_queue" in out
    assert out.strip().splitlines()[-1].startswith("outcome: queue:support")


def test_json_output_and_handoff_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "support", "--keys", "2 2", "--handoff", "timeout", "--json", *PROJECT]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "gave-up"
    assert [e["result"] for e in data["journal"] if e["kind"] == "dialplan"] == ["timeout"]


def test_closed_hours_with_now(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "support", "--keys", "", "--now", "2026-11-22T12:00:00+01:00", *PROJECT]) == 0
    assert "outcome: closed" in capsys.readouterr().out


def test_interactive_mode_reads_keys(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    typed = iter(["?", "1", "x", "", "*", "h"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    assert main(["simulate", "support", *PROJECT]) == 0
    out = capsys.readouterr().out
    assert "♪ main-menu: For billing, press 1." in out
    assert "→ support.billing_menu (menu)" in out
    assert "'x' is not keys" in out
    assert "(silence for 5s)" in out
    assert "[cancel] to=main_menu" in out
    assert "outcome: caller-hangup" in out


def test_end_of_input_hangs_up(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["simulate", "support", *PROJECT]) == 0
    assert "outcome: caller-hangup" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [(["nosuch"], "no flow named 'nosuch'"), (["support", "--keys", "1z"], "'1z' is not keys")],
)
def test_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", *args, *PROJECT]) == 2
    assert message in capsys.readouterr().err
