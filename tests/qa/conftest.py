"""A small project (flow + prompt catalog) on disk, and helpers to run flow-test YAML against it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ivrkit.qa.format import load_suite_text, resolve
from ivrkit.qa.model import Suite
from ivrkit.qa.runner import CaseResult, Project, run_case

DEMO_FLOW = """\
flow: demo
languages: [en, de]
timezone: Europe/Berlin
start: hours_check
on_hangup: note_left
steps:
  hours_check:
    hours: {timezone: Europe/Berlin, open: {mon-fri: "08:00-20:00"}, holidays: [2026-12-25]}
    open: menu
    closed: closed
    holiday: closed
  menu:
    menu:
      prompt: demo-menu
      choices: {"1": thanks, "2": queue_it, "3": account, "4": busy_check}
      invalid: {reprompt: [demo-invalid, demo-menu]}
      failed: closed
  account:
    collect: {into: account, prompt: demo-account, min_digits: 4, max_digits: 6, failed: closed}
    next: thanks
  busy_check:
    branch:
      - {if: "maintenance == 'planned'", then: closed}
      - {if: "queues.demo.waiting > 5", then: closed}
    else: queue_it
  thanks:
    set: {choice: one, count: 3, who: "{{ caller.number }}/{{ caller.name }}", lang: "{{ call.language }}"}
    next: thanks_play
  thanks_play:
    hangup: {play: demo-thanks, outcome: done}
  queue_it:
    queue: {name: demo, timeout: 1m}
    outcomes: {timeout: thanks}
  closed:
    hangup: {play: demo-closed, outcome: closed}
  note_left:
    set: {left: "yes"}
"""
DEMO_PROMPTS = """\
demo-menu: "For thanks, press 1. For the queue, press 2. For your account, press 3."
demo-invalid: "That is not a choice."
demo-account: "Your account number, please."
demo-thanks: "Thank you."
demo-closed: "We are closed."
"""


def write_project(root: Path, flow: str = DEMO_FLOW, prompts: str = DEMO_PROMPTS) -> Path:
    (root / "flows").mkdir(parents=True, exist_ok=True)
    (root / "prompts" / "en").mkdir(parents=True, exist_ok=True)
    (root / "flows" / "demo.yaml").write_text(flow, encoding="utf-8")
    (root / "prompts" / "en" / "catalog.yaml").write_text(prompts, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = write_project(tmp_path_factory.mktemp("demo"))
    project = Project.load(root / "flows", root / "prompts")
    assert project.ok, project.diagnostics.render()
    return project


Load = Callable[[str], Suite]
Run = Callable[[str], dict[str, CaseResult]]


@pytest.fixture
def load(demo: Project) -> Load:
    """load(yaml) → the suite, read from ``demo.test.yaml`` and checked against the demo flow."""

    def run(text: str) -> Suite:
        suite = load_suite_text(textwrap.dedent(text), "demo.test.yaml")
        resolve(suite, demo.flows, demo.catalog)
        return suite

    return run


@pytest.fixture
def run(demo: Project, load: Load) -> Run:
    """run(yaml) → {case name: result}; the file itself must load."""

    def go(text: str) -> dict[str, CaseResult]:
        suite = load(text)
        assert not suite.broken, suite.diagnostics.render()
        return {case.name: run_case(demo, case) for case in suite.cases}

    return go
