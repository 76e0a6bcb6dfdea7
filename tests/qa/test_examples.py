"""The example flows' suites (flows/tests): they pass, and they catch deliberate regressions in the flows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ivrkit.cli import main
from ivrkit.qa.runner import Project, discover, run_suites

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "flows" / "tests"


def failing_cases(flows_dir: Path) -> set[str]:
    project = Project.load(flows_dir, ROOT / "prompts")
    assert project.ok, project.diagnostics.render()
    files, _ = discover([SUITES])
    suites = [project.suite(path) for path in files]
    assert not any(suite.broken for suite in suites)
    return {result.case.name for result in run_suites(project, suites) if not result.passed}


def test_every_example_suite_passes_with_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["test", str(SUITES), "--flows", str(ROOT / "flows"), "--prompts", str(ROOT / "prompts"), "--coverage"]
    assert main(args) == 0
    out = capsys.readouterr().out
    files, _ = discover([SUITES])
    assert {path.name for path in files} >= {"support.test.yaml", "billing.test.yaml"}
    passed = [line for line in out.splitlines() if line.startswith("PASS  ")]
    assert len(passed) >= 40
    assert out.splitlines()[-1] == f"{len(passed)} passed, 0 failed"
    support_row = next(line for line in out.splitlines() if line.startswith("support "))
    # the callback steps (returning callers, the exit key, the long-wait opt-in) added 6 steps and 11 prompts;
    # maintenance (the emergency offer, the modes' prompts, the spoken end's words) 3 steps, 1 choice, 11 prompts;
    # the language menu (9 in the main menu) 1 step, 1 choice, 1 prompt
    assert support_row.split()[1:] == ["34/34", "100.0%", "10/10", "100.0%", "51/51", "100.0%"]


MUTATIONS = [
    ("support.yaml", "startswith('9')", "startswith('8')",
     {"VIP account goes to the VIP queue", "account not starting with 9 is not VIP"}),
    ("support.yaml", "2026-12-25, ", "", {"Christmas Day"}),
    ("support.yaml", "mon-fri: \"08:00-20:00\"", "mon-fri: \"08:00-21:00\"",
     {"closed in the evening", "the flow's timezone decides, not UTC"}),
    ("support.yaml", "reprompts: [[please-choose, main-menu], [main-menu-slow]]",
     "reprompts: [[main-menu-slow], [please-choose, main-menu]]",
     {"silence escalates the re-prompts, then the operator takes over", "one silence, then a choice"}),
    ("support.yaml", "      failed: operator\n\n  billing_menu:", "      failed: goodbye\n\n  billing_menu:",
     {"three invalid keys send the caller to the operator"}),
    ("support.yaml", 'cancel_key: "*"', "cancel_key: none",
     {"cancel during the account number goes back to the billing menu"}),
    ("support.yaml", 'abandoned_in: "{{ vars.department }}"', "abandoned_in: unknown",
     {"hang-up in the main menu is recorded as abandoned", "hang-up while still waiting for technical support"}),
    ("support.yaml", "outcomes: {busy: operator_busy, noanswer: operator_busy, otherwise: operator_busy}",
     "outcomes: {otherwise: goodbye}", {"operator busy, back to the main menu"}),
    ("billing.yaml", "waiting >= 10", "waiting > 10", {"long queue, caller prefers to pay online"}),
    ("billing.yaml", "pattern: \"^[1-9][0-9]+$\"", "pattern: \"^[0-9]+$\"",
     {"an account number starting with 0 is re-prompted with more and more help"}),
    ("support.yaml", "estimate_over: 20m", "estimate_over: 90m",
     {"a wait over 20 minutes is offered help online", "a wait over 20 minutes, the caller keeps waiting"}),
    ("support.yaml", "wording: about, min_answered: 5", "wording: about, min_answered: 3",
     {"too few answered calls give the safe phrase instead of a number"}),
    ("support.yaml", "callback_on_hangup: {when: automatic, min_wait: 1m}",
     "callback_on_hangup: {when: automatic, min_wait: 2m}",
     {"a caller who waited over a minute and hung up is called back automatically"}),
    ("support.yaml", "callback_on_hangup: {when: opted_in}", "callback_on_hangup: {when: automatic, min_wait: 10m}",
     {"a long wait, the caller opts in to a callback and hangs up later"}),
    ("support.yaml", "caller.callback.queue == 'support'", "caller.callback.queue == 'billing'",
     {"a returning caller keeps the callback they asked for",
      "a returning caller cancels the callback and carries on"}),
    ("support.yaml", "country: DE", "country: AT",
     {"exit key 1 in the queue, the caller confirms their number and gives a reason",
      "the caller gives another number for the callback"}),
    ("support.yaml", "outcomes: {cancelled: tech_queue_join, failed: tech_queue_join, unavailable: tech_queue_join}",
     "outcomes: {cancelled: tech_queue_join, failed: tech_queue_join}",
     {"the callback store fails, the caller is told and goes back to the queue"}),
    ("support.yaml", 'until: "2026-12-02T02:00"', 'until: "2026-12-02T03:00"',
     {"the declared window is met during the upgrade, and its end is spoken"}),
    ("support.yaml", "then: {goto: emergency_offer}", "then: hangup",
     {"an emergency with an expected end, a mobile caller gets the web chat link by text",
      "an emergency, a landline caller is not offered a text"}),
    ("support.yaml", "reopening: service-back, ", "",
     {"an emergency with an expected end, a mobile caller gets the web chat link by text"}),
    ("support.yaml", "to: PJSIP/standby", "to: PJSIP/operator",
     {"closed until tomorrow morning, the caller stays on for the standby team"}),
]


IDS = ["vip rule", "holiday", "opening hours", "re-prompt order", "menu failure", "cancel key", "hang-up handler",
       "operator busy", "queue threshold", "account pattern", "overflow threshold", "minimum data",
       "callback minimum wait", "callback opt-in", "returning caller", "callback country", "callback store down",
       "maintenance window end", "emergency action", "emergency reopening prompt", "closed transfer"]


@pytest.mark.parametrize("file, old, new, expected", MUTATIONS, ids=IDS)
def test_a_regression_in_the_flow_fails_the_cases_about_it(tmp_path: Path, file: str, old: str, new: str,
                                                           expected: set[str]) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows, ignore=shutil.ignore_patterns("tests"))
    text = (flows / file).read_text(encoding="utf-8")
    assert old in text, f"the example flow changed: update this mutation ({old!r})"
    (flows / file).write_text(text.replace(old, new), encoding="utf-8")
    assert expected <= failing_cases(flows)


def test_the_unchanged_copy_passes(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("tests"))
    assert failing_cases(tmp_path / "flows") == set()
