"""``ivrkit compile`` as an admin and CI run it, and ``ivrkit check`` refusing what cannot reach a dialplan."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ivrkit.cli import main
from tests.compiler.helpers import ROOT

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example flows and prompts in a fresh working directory."""
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(ROOT / "prompts", tmp_path / "prompts")
    monkeypatch.chdir(tmp_path)
    for name in ("FLOWS", "PROMPTS", "AGI_URL", "SOUNDS", "AMI_USER", "AMI_SECRET"):
        monkeypatch.delenv(f"IVRKIT_{name}", raising=False)
    return tmp_path


@pytest.fixture
def ivrkit(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_compile_writes_both_files_and_rewrites_only_what_changed(project: Path, ivrkit: Run) -> None:
    status, out, err = ivrkit("compile", "--out", "asterisk")
    assert (status, out) == (0, "")
    assert err.splitlines() == ["written: asterisk/extensions-ivrkit.conf", "written: asterisk/queues-ivrkit.conf"]
    golden = ROOT / "tests" / "compiler" / "golden"
    for name in ("extensions-ivrkit.conf", "queues-ivrkit.conf"):
        assert (project / "asterisk" / name).read_text() == (golden / name).read_text()
    assert sorted(path.name for path in (project / "asterisk").iterdir()) == sorted(
        ["extensions-ivrkit.conf", "queues-ivrkit.conf"])  # fmt: skip  (no temporary files left)
    status, _, err = ivrkit("compile", "--out", "asterisk")
    assert status == 0 and err.splitlines()[0] == "unchanged: asterisk/extensions-ivrkit.conf"


def test_check_says_whether_the_files_on_disk_are_current(project: Path, ivrkit: Run) -> None:
    status, _, err = ivrkit("compile", "--out", "asterisk", "--check")
    assert status == 1
    assert "missing: asterisk/extensions-ivrkit.conf" in err.splitlines()
    assert not (project / "asterisk").exists()

    assert ivrkit("compile", "--out", "asterisk")[0] == 0
    status, out, err = ivrkit("compile", "--out", "asterisk", "--check")
    assert (status, out) == (0, "")
    assert err == "up to date: asterisk/extensions-ivrkit.conf, asterisk/queues-ivrkit.conf\n"

    flow = project / "flows" / "support.yaml"
    flow.write_text(flow.read_text().replace("{strategy: ringall, ring_timeout", "{strategy: linear, ring_timeout"))
    status, out, err = ivrkit("compile", "--out", "asterisk", "--check")
    assert status == 1
    assert "-strategy = ringall\n+strategy = linear\n" in out  # the diff, for the CI log
    assert err.splitlines()[:2] == [
        "out of date: asterisk/queues-ivrkit.conf",
        "ivrkit compile: 1 file(s) in asterisk do not match the flows: run `ivrkit compile --out asterisk`",
    ]

    assert ivrkit("compile", "--out", "asterisk")[0] == 0
    compiled = project / "asterisk" / "extensions-ivrkit.conf"
    compiled.write_text(compiled.read_text().replace("Queue(support,", "Queue(sales,"))
    status, _, err = ivrkit("compile", "--out", "asterisk", "--check")
    assert status == 1 and "edited by hand: asterisk/extensions-ivrkit.conf" in err.splitlines()


def test_show_prints_and_writes_nothing(project: Path, ivrkit: Run) -> None:
    status, out, err = ivrkit("compile", "--show", "--agi-url", "hagi://ivr.example.com")
    assert (status, err) == (0, "")
    assert out.startswith("==> extensions-ivrkit.conf <==\n; extensions-ivrkit.conf: written by `ivrkit compile`")
    assert "\n==> queues-ivrkit.conf <==\n" in out
    assert " same => n,AGI(hagi://ivr.example.com/support)\n" in out
    status, out, _ = ivrkit("compile", "--show", "--out", "asterisk")
    assert status == 0 and out.startswith("==> asterisk/extensions-ivrkit.conf <==")
    assert not (project / "asterisk").exists()


def test_the_agi_address_comes_from_the_environment(
    project: Path, ivrkit: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVRKIT_AGI_URL", "agi://10.0.0.5:4600")
    assert ivrkit("compile", "--out", "asterisk")[0] == 0
    assert "AGI(agi://10.0.0.5:4600/billing)" in (project / "asterisk" / "extensions-ivrkit.conf").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x", "--agi-url", "http://ivr"], "ivrkit compile: --agi-url: 'http://ivr' is not a FastAGI address"),
        (["--out", "x", "--sounds", "../etc"], "ivrkit compile: --sounds: '../etc' must be a folder name"),
        ([], "ivrkit compile: say where the files go with --out DIR (or print them with --show)"),
        (["--out", "x", "--reload"], "ivrkit compile: --reload needs --ami-user and --ami-secret"),
        (["--out", "x", "--flows", "nowhere"], "ivrkit compile: no flows to compile in nowhere"),
    ],
)
def test_usage_mistakes(project: Path, ivrkit: Run, args: list[str], message: str) -> None:
    status, out, err = ivrkit("compile", *args)
    assert (status, out) == (1, "")
    assert err.startswith(message)
    assert not (project / "x").exists()


def test_flows_with_errors_are_not_compiled(project: Path, ivrkit: Run) -> None:
    (project / "flows" / "global.yaml").write_text("flow: global\nstart: q\nsteps:\n  q:\n    queue: support\n")
    status, out, err = ivrkit("compile", "--out", "asterisk")
    assert (status, out) == (1, "")
    assert err.splitlines()[0] == "flows/global.yaml:1:7: error: a flow cannot be called 'global'"
    assert err.splitlines()[-1] == "ivrkit compile: 1 error: nothing written (`ivrkit check` shows the same)"
    assert not (project / "asterisk").exists()


HOSTILE = """\
flow: hostile
start: q
dialplan:
  fallback: {prompt: "sorry${SHELL(id)}", transfer: "PJSIP/a&Local/s@admin"}
  numbers_context: "out,going"
queues:
  "sup;port": {music: "default\\nexten => s,1,System(id)"}
steps:
  q:
    queue: "sup,port"
"""


def test_check_refuses_hostile_names_and_values_where_they_are_written(project: Path, ivrkit: Run) -> None:
    (project / "flows" / "hostile.yaml").write_text(HOSTILE)
    status, out, _ = ivrkit("check")
    assert status == 1
    reported = [line for line in out.splitlines() if line.startswith("flows/")]
    assert reported == [
        "flows/hostile.yaml:4:22: error: 'sorry${SHELL(id)}' is not a valid prompt id",
        "flows/hostile.yaml:4:53: error: 'PJSIP/a&Local/s@admin' is not a valid fallback destination",
        "flows/hostile.yaml:5:20: error: 'out,going' is not a valid context name",
        "flows/hostile.yaml:7:3: error: 'sup;port' is not a valid queue name",
        "flows/hostile.yaml:7:23: error: 'default\\nexten => s,1,System(id)' is not a valid music class",
        "flows/hostile.yaml:10:12: error: 'sup,port' is not a valid queue name",
    ]
    hint = "a queue name has up to 63 letters, digits, '_', '.' and '-', and starts with a letter or digit"
    assert f"    hint: {hint}" in out


def test_check_reports_what_only_the_dialplan_cares_about(project: Path, ivrkit: Run) -> None:
    text = textwrap.dedent("""\
        flow: sales
        start: q
        queues:
          Support: {strategy: rrmemory}
        steps:
          q:
            queue: general
        """)
    (project / "flows" / "sales.yaml").write_text(text)
    status, out, _ = ivrkit("check")
    assert status == 1
    fallback = "  fallback: {prompt: technical-difficulties, queue: support}"  # support's first use of its queue
    line = (ROOT / "flows" / "support.yaml").read_text().splitlines().index(fallback) + 1
    assert [line for line in out.splitlines() if line.startswith("flows/")] == [
        f"flows/sales.yaml:4:3: error: queue 'Support' is queue 'support' (flows/support.yaml:{line}:53) to "
        "Asterisk, whose queue names ignore case",
        "flows/sales.yaml:7:12: error: a queue cannot be called 'general'",
    ]
    assert out.splitlines()[-1] == "2 errors, 0 warnings in 3 flows"


def test_check_shows_queue_outcomes_the_exit_keys_do_not_give(project: Path, ivrkit: Run) -> None:
    text = textwrap.dedent("""\
        flow: sales
        start: q
        queues:
          sales: {exit_keys: {"1": callback}}
        steps:
          q:
            queue: sales
            outcomes: {calback: bye}
          bye:
            hangup: true
        """)
    (project / "flows" / "sales.yaml").write_text(text)
    status, out, _ = ivrkit("check")
    assert status == 1
    assert out.splitlines()[:4] == [
        "flows/sales.yaml:8:5: warning: exit key '1' of queue 'sales' gives outcome 'callback', which step 'q' does "
        "not map",
        "        outcomes: {calback: bye}",
        "        ^",
        "    hint: add `callback: <step>` to its `outcomes`, or a caller who presses 1 in the queue ends the call "
        "with outcome queue-callback",
    ]
    assert "flows/sales.yaml:8:16: error: queue 'sales' never gives outcome 'calback': its exit keys give callback" in (
        out.splitlines())
    assert "    hint: did you mean 'callback'?" in out.splitlines()
