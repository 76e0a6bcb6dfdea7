"""``ivrkit test``: one line per case, failures in full, ``N passed, M failed``, and the exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrkit.cli import main
from tests.qa.conftest import write_project

GOOD = """\
flow: demo
cases:
  thanks: {press: [1], expect: {outcome: done}}
  queue: {press: [2], expect: {outcome: "queue:demo"}}
"""
BAD = """\
flow: demo
cases:
  invalid key:
    press: [7, 1]
    expect:
      heard: [demo-menu, demo-thanks]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with flows/, prompts/ and flows/tests/, as the working directory."""
    write_project(tmp_path)
    (tmp_path / "flows" / "tests").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IVRKIT_FLOWS", raising=False)
    monkeypatch.delenv("IVRKIT_PROMPTS", raising=False)
    return tmp_path


def write(project: Path, name: str, text: str) -> Path:
    path = project / "flows" / "tests" / name
    path.write_text(text, encoding="utf-8")
    return path


def test_all_passed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "demo.test.yaml", GOOD)
    assert main(["test"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "PASS  flows/tests/demo.test.yaml::thanks",
        "PASS  flows/tests/demo.test.yaml::queue",
        "",
        "2 passed, 0 failed",
    ]


def test_a_failure_is_shown_in_full_and_exits_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "demo.test.yaml", GOOD)
    write(project, "bad.test.yaml", BAD)
    assert main(["test"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:3] == ["FAIL  flows/tests/bad.test.yaml::invalid key", "PASS  flows/tests/demo.test.yaml::thanks",
                         "PASS  flows/tests/demo.test.yaml::queue"]
    assert lines[-1] == "2 passed, 1 failed"
    assert "FAIL flows/tests/bad.test.yaml::invalid key (flows/tests/bad.test.yaml:3:3)" in out
    assert "flows/tests/bad.test.yaml:6:14: expect.heard: the prompts heard differ (- expected, + actual)" in out
    assert "\n      +demo-menu\n      +demo-invalid\n       demo-menu\n       demo-thanks\n" in out  # the diff
    assert 'prompt=demo-invalid language=en  "That is not a choice."' in out  # the transcript


def test_broken_files_and_cases_count_as_failed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "demo.test.yaml", GOOD.replace("outcome: done}", "outcom: done}"))
    write(project, "worse.test.yaml", "flow: demo\ncases:\n  a: {press: [*]}\n")
    assert main(["test"]) == 1
    out = capsys.readouterr().out
    assert "ERROR flows/tests/worse.test.yaml" in out.splitlines()
    assert "ERROR flows/tests/demo.test.yaml::thanks" in out.splitlines()
    assert "flows/tests/worse.test.yaml:3:16: error: invalid YAML" in out
    assert "flows/tests/demo.test.yaml:3:33: error: unknown option 'outcom' in expectations" in out
    assert out.splitlines()[-1] == "1 passed, 2 failed"


def test_keyword_selects_cases(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "demo.test.yaml", GOOD)
    assert main(["test", "-k", "QUEUE"]) == 0
    out = capsys.readouterr().out
    assert "PASS  flows/tests/demo.test.yaml::queue" in out and "thanks" not in out
    assert out.splitlines()[-1] == "1 passed, 0 failed"
    assert main(["test", "-k", "nothing like it"]) == 1
    assert "no flow test matches -k 'nothing like it' in flows/tests" in capsys.readouterr().out


def test_paths_files_and_directories(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "demo.test.yaml", GOOD)
    (project / "more" / "deeper").mkdir(parents=True)
    (project / "more" / "deeper" / "bad.test.yml").write_text(BAD, encoding="utf-8")
    (project / "more" / "notes.yaml").write_text("not: a test\n", encoding="utf-8")
    assert main(["test", "more", "flows/tests/demo.test.yaml"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "2 passed, 1 failed"


def test_nothing_to_run_is_not_a_success(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test"]) == 1
    assert "no flow test found in flows/tests" in capsys.readouterr().out


def test_missing_path_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "nowhere"]) == 2
    assert "ivrkit test: nowhere: no such file or directory" in capsys.readouterr().err


def test_flows_with_errors_stop_the_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "demo.test.yaml", GOOD)
    flow = project / "flows" / "demo.yaml"
    flow.write_text(flow.read_text().replace("failed: closed}", "failed: nowhere}"), encoding="utf-8")
    assert main(["test"]) == 1
    out = capsys.readouterr().out
    assert "unknown step 'nowhere'" in out
    assert "the flows in flows have errors: no flow test can run (see `ivrkit check`)" in out


def test_flows_and_prompts_options(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "demo.test.yaml", GOOD)
    (project / "flows").rename(project / "callflows")
    (project / "prompts").rename(project / "audio")
    args = ["test", "callflows/tests", "--flows", "callflows", "--prompts", "audio", "--verbose"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "PASS  callflows/tests/demo.test.yaml::thanks  (" in out  # --verbose: the time per case
    assert 'prompt=demo-thanks language=en  "Thank you."' in out  # --verbose: transcripts of passing cases
    assert out.splitlines()[-2].endswith(" ms") and out.splitlines()[-1] == "2 passed, 0 failed"


def test_coverage_table(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "demo.test.yaml", GOOD)
    assert main(["test", "--coverage"]) == 0
    out = capsys.readouterr().out
    assert "coverage over 2 simulated call(s)" in out
    assert "demo: menu choices never taken: menu 3→account, menu 4→busy_check" in out
    assert out.splitlines()[-1] == "2 passed, 0 failed"


def test_a_file_named_twice_runs_once(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "demo.test.yaml", GOOD)
    assert main(["test", "flows/tests", "./flows/tests/demo.test.yaml"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 passed, 0 failed"
