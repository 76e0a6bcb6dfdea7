"""A session handler serving flows written by the test, and the fake PBX to call it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.library import FlowLibrary
from ivrkit.server.session import SessionHandler, SessionSettings

DESK = """
flow: desk
language: en
timezone: Europe/Berlin
cancel_key: "*"
start: greeting
variables: {department: none}
on_hangup: note
steps:
  greeting:
    play: welcome
    next: main
  main:
    menu:
      prompt: main-menu
      choices: {"1": sales, "2": account}
      invalid: {reprompt: [invalid-choice, main-menu]}
      failed: goodbye
  account:
    collect: {into: account, prompt: enter-account, min_digits: 3, max_digits: 3, failed: goodbye}
    next: read_back
  read_back:
    play: [you-entered, {digits: "{{ vars.account }}"}, {number: "{{ vars.account | int * 2 }}"}]
    next: main
  sales:
    set: {department: sales}
    next: sales_queue
  sales_queue:
    queue: {name: sales, timeout: 5m}
    outcomes: {timeout: still_busy}
  still_busy:
    hangup: {play: still-busy, outcome: timed-out}
  goodbye:
    hangup: {play: goodbye, outcome: gave-up}
  note:
    set: {abandoned_in: "{{ vars.department }}"}
"""


def write_flows(directory: Path, **flows: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in flows.items():
        (directory / f"{name}.yaml").write_text(textwrap.dedent(text))
    return directory


@pytest.fixture
def library(tmp_path: Path) -> FlowLibrary:
    library = FlowLibrary(write_flows(tmp_path / "flows", desk=DESK))
    report = library.reload()
    assert report.ok, report.errors
    return library


@pytest.fixture
def handler(library: FlowLibrary) -> SessionHandler:
    return SessionHandler(library, ServerMetrics(), SessionSettings(command_seconds=2.0))
