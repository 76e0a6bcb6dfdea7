"""The ``sms`` step on simulated calls: flow tests in YAML (with ``texts:``) and what it asks of the world."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from ivrkit.engine.world import QueueStats, SentText, StaticWorld, TextNotQueued, TextRequest
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_text
from ivrkit.graph.edges import Edge, step_edges
from ivrkit.qa.format import load_suite_text, resolve
from ivrkit.qa.runner import CaseResult, Project, failure_report, run_case
from ivrkit.sim.script import parse_keys
from ivrkit.sim.session import SimulationResult, simulate
from tests.calls import build

SHOP = r"""
flow: shop
start: menu
sms: {mobile: ['^\+491[5-7][0-9]{7,10}$']}
steps:
  menu:
    menu:
      prompt: shop-menu
      choices: {"1": send_link, "2": bye}
  send_link:
    sms:
      text: "Hello {{ caller.number }}, continue here: {{ link }}"
      link: https://example.com/continue
      confirm: text-sent
      unavailable: no_text
      queue: support
    next: bye
  no_text:
    hangup: {play: no-text, outcome: no-text}
  bye:
    hangup: {play: bye, outcome: done}
"""
PROMPTS = """\
shop-menu: "For a link to our web shop, press 1. To leave, press 2."
text-sent: "We have sent you a text message with a link. You can hang up now and continue on the web."
no-text: "Sorry, we cannot send a text message to your number."
bye: "Goodbye."
"""
MOBILE = "+4915112345678"
LINK = "https://example.com/continue?t=SIMULATED"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("shop")
    (root / "flows").mkdir()
    (root / "prompts" / "en").mkdir(parents=True)
    (root / "flows" / "shop.yaml").write_text(SHOP)
    (root / "prompts" / "en" / "catalog.yaml").write_text(PROMPTS)
    project = Project.load(root / "flows", root / "prompts")
    assert project.ok, project.diagnostics.render()
    return project


def run(project: Project, text: str) -> dict[str, CaseResult]:
    suite = load_suite_text(textwrap.dedent(text), "shop.test.yaml")
    resolve(suite, project.flows, project.catalog)
    assert not suite.broken, suite.diagnostics.render()
    for case in suite.cases:
        assert not case.broken, case.problems.render()
    return {case.name: run_case(project, case) for case in suite.cases}


def test_flow_tests_cover_sent_anonymous_not_mobile_and_the_cancel_key(shop: Project) -> None:
    results = run(shop, f"""
        flow: shop
        defaults: {{caller: {{number: "{MOBILE}"}}}}
        cases:
          a mobile caller gets the link and hears the confirmation:
            press: [1]
            expect:
              texts: [{{to: "{MOBILE}", text: "Hello {MOBILE}, continue here: {LINK}"}}]
              heard: [shop-menu, text-sent, bye]
              outcome: done
          an anonymous caller is not texted:
            caller: {{number: anonymous}}
            press: [1]
            expect: {{texts: [], steps: [menu, send_link, no_text], outcome: no-text}}
          a landline is not texted:
            caller: {{number: "+4930123456"}}
            press: [1]
            expect: {{texts: [], heard: [shop-menu, no-text]}}
          the cancel key during the confirmation goes back, and coming back texts no second time:
            script: [1, {{press: "*", during: text-sent}}, 1]
            expect:
              texts: ["{LINK}"]
              steps: [menu, send_link, menu, send_link, bye]
              heard: [shop-menu, text-sent, shop-menu, text-sent, bye]
    """)
    for result in results.values():
        assert result.passed, failure_report(result)


def test_a_wrong_texts_expectation_says_what_was_queued(shop: Project) -> None:
    results = run(shop, f"""
        flow: shop
        cases:
          wrong number:
            caller: {{number: "{MOBILE}"}}
            press: [1]
            expect: {{texts: [{{to: "+4915100000000", contains: "example.com"}}]}}
          none expected:
            caller: {{number: "{MOBILE}"}}
            press: [1]
            expect:
              texts: []
    """)
    [wrong] = results["wrong number"].failures
    assert wrong.render() == (
        "shop.test.yaml:7:22: expect.texts[1]: text 1 went to +4915112345678, not +4915100000000\n"
        f"    actual:   to {MOBILE}: 'Hello {MOBILE}, continue here: {LINK}'"
    )
    [none] = results["none expected"].failures
    assert (none.message, none.location.line) == ("0 text(s) expected, 1 queued", 12)


class Recording(StaticWorld):
    """A static world that keeps every request, to look at what the step asked for."""

    def __init__(self, **queues: QueueStats):
        super().__init__(dict(queues), {})
        self.requests: list[TextRequest] = []

    def send_text(self, request: TextRequest) -> SentText:
        self.requests.append(request)
        return super().send_text(request)


def call(flow: str, world: StaticWorld, number: str = MOBILE, keys: str = "1") -> SimulationResult:
    flows = build(flow)
    return simulate(flows, next(iter(flows)), parse_keys(keys), caller_number=number, world=world)


def test_the_request_carries_the_key_and_the_call_context_for_the_link() -> None:
    world = Recording(support=QueueStats(waiting=6, position=7))
    result = call(SHOP, world)
    [request] = world.requests
    assert (request.to, request.key, request.link) == (MOBILE, "sim-1/shop/send_link", "https://example.com/continue")
    assert dict(request.context) == {"caller": MOBILE, "flow": "shop", "queue": "support", "position": 7}
    [entered] = [event for event in result.journal.of_kind("step") if event.step == "send_link"]
    assert request.at == result.journal.started + dt.timedelta(seconds=entered.at)  # the call's time, for the token
    assert request.render("L") == f"Hello {MOBILE}, continue here: L"
    [queued] = result.journal.of_kind("text_queued")
    assert queued.detail == {"to": MOBILE, "text": f"Hello {MOBILE}, continue here: {LINK}", "link": LINK, "new": True}
    assert world.texts == [SentText(MOBILE, f"Hello {MOBILE}, continue here: {LINK}", LINK, "sim-1/shop/send_link")]


def test_a_step_pattern_wins_over_the_flow_default_and_without_any_a_landline_counts() -> None:
    own = SHOP.replace("      queue: support\n", "      queue: support\n      mobile: ['^\\+4930[0-9]+$']\n")
    assert call(own, StaticWorld({}, {}), "+4930123456").outcome == "done"
    assert call(own, StaticWorld({}, {}), MOBILE).outcome == "no-text"
    no_patterns = SHOP.replace("sms: {mobile: ['^\\+491[5-7][0-9]{7,10}$']}\n", "")
    assert call(no_patterns, StaticWorld({}, {}), "+4930123456").outcome == "done"
    assert call(no_patterns, StaticWorld({}, {}), "Restricted").outcome == "no-text"


class Broken(StaticWorld):
    def send_text(self, request: TextRequest) -> SentText:
        raise TextNotQueued("the outbox is not writable: disk I/O error")


def test_a_text_the_world_cannot_queue_sends_the_caller_to_unavailable() -> None:
    result = call(SHOP, Broken({}, {}))
    assert result.outcome == "no-text"
    [unavailable] = result.journal.of_kind("text_unavailable")
    assert unavailable.detail == {"reason": "not-queued"}
    assert "text-sent" not in result.heard


def test_the_graph_shows_where_unavailable_callers_go() -> None:
    step = build(SHOP)["shop"].steps["send_link"]
    assert step_edges(step) == [
        Edge("send_link", "no_text", "unavailable", "outcome"),
        Edge("send_link", "bye", "next", "next"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{text: hi, unavailable: bye, link: example.com/x}",
         "flow.yaml:4:47: error: 'example.com/x' is not a valid http(s) URL"),
        ("{text: hi, unavailable: bye, mobile: ['^+49(']}",
         "flow.yaml:4:50: error: invalid pattern: nothing to repeat at position 1"),
        ("{text: hi}", "flow.yaml:4:12: error: sms needs 'unavailable': Where callers go who cannot receive a text."),
        ("{text: 'Go to {{ link }', unavailable: bye}", "flow.yaml:4:19: error: template syntax error: unexpected '}'"),
    ],
)
def test_mistakes_are_reported_at_their_line(body: str, message: str) -> None:
    diagnostics = Diagnostics()
    text = f"flow: f\nstart: s\nsteps:\n  s: {{sms: {body}, next: bye}}\n  bye: {{hangup: true}}\n"
    assert load_text(text, "flow.yaml", diagnostics) is None
    assert [error.render().splitlines()[0] for error in diagnostics.errors] == [message]
