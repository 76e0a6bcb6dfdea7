"""A small flow with every step kind, every kind of edge and labels that try to break the output formats."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_text
from ivrkit.flow.model import Flow

DEMO = textwrap.dedent(
    """\
    flow: demo
    description: 'Demo "quoted" <flow> | test'
    start: welcome
    on_hangup: log
    on_error: sorry
    steps:
      welcome:
        play: [hello, {number: "{{ vars.n }}"}]
        next: office
      office:
        hours: {timezone: Europe/Berlin, open: {mon-fri: "08:00-18:00"}}
        open: main
        closed: closed
        holiday: holiday
      main:
        menu:
          prompt: main-menu
          choices: {"1": entry, "2": agents, "0": operator, "#": operator}
          no_input: {failed: operator}
          invalid: {failed: sorry}
      entry:
        collect: {into: account, prompt: enter-account, failed: sorry}
        next: route
        cancel_to: main
      quiet:
        play: hello
        cancel_key: none
        cancel_to: main
      route:
        branch:
          - if: "caller.name == 'say \\"hi\\" <b> | x'"
            then: agents
        else: billing
        note: 'Ask "ops" <team> | now'
      agents:
        queue: {name: support, timeout: 10m}
        outcomes: {timeout: sorry, joinempty: closed}
      operator:
        transfer: PJSIP/operator
        outcomes: {busy: sorry}
      billing:
        goto: {flow: billing, step: pay}
      back:
        goto: main
      lost:
        play: hello
        next: nowhere
      log:
        set: {abandoned: "yes"}
      sorry:
        hangup: {play: sorry, outcome: failed}
      closed:
        hangup: true
      holiday:
        hangup: {play: holiday-closed, outcome: holiday}
    """
)


@pytest.fixture
def demo() -> Flow:
    diagnostics = Diagnostics()
    flow = load_text(DEMO, "demo.yaml", diagnostics)
    assert flow is not None and not diagnostics.errors, diagnostics.render()
    return flow


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "flows"
    directory.mkdir()
    (directory / "demo.yaml").write_text(DEMO, encoding="utf-8")
    return directory
