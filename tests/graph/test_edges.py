"""``edges(flow)``: every way out of every step kind, read from the parsed steps."""

from __future__ import annotations

from pathlib import Path

from ivrkit.flow.loader import load_directory
from ivrkit.flow.model import Flow
from ivrkit.graph import edges, nodes
from ivrkit.graph.edges import ENTRY, ON_ERROR, ON_HANGUP, Edge

ROOT = Path(__file__).resolve().parents[2]


def test_every_kind_of_edge(demo: Flow) -> None:
    found = edges(demo)
    expected = [
        Edge(ENTRY, "welcome", "start", "entry"),
        Edge(ON_HANGUP, "log", "caller hung up", "handler"),
        Edge(ON_ERROR, "sorry", "error", "handler"),
        Edge("welcome", "office", "next", "next"),
        Edge("office", "main", "open", "hours"),
        Edge("office", "closed", "closed", "hours"),
        Edge("office", "holiday", "holiday", "hours"),
        Edge("main", "entry", "1", "choice"),
        Edge("main", "operator", "#", "choice"),
        Edge("main", "operator", "no input", "failure"),  # its own `failed`
        Edge("main", "sorry", "invalid", "failure"),
        Edge("entry", "route", "next", "next"),
        Edge("entry", "sorry", "no input", "failure"),  # the step's `failed`
        Edge("entry", "sorry", "invalid", "failure"),
        Edge("entry", "main", "cancel *", "cancel"),
        Edge("route", "agents", "caller.name == 'say \"hi\" <b> | x'", "branch"),
        Edge("route", "billing", "else", "branch"),
        Edge("agents", "sorry", "timeout", "outcome"),
        Edge("agents", "closed", "joinempty", "outcome"),
        Edge("operator", "sorry", "busy", "outcome"),
        Edge("billing", "flow:billing/pay", "goto", "flow"),
        Edge("back", "main", "goto", "next"),
        Edge("lost", "nowhere", "next", "next"),
    ]
    for edge in expected:
        assert edge in found, edge
    assert not [edge for edge in found if edge.source in ("quiet", "sorry", "closed", "holiday", "log")]


def test_edges_keep_the_order_of_the_file(demo: Flow) -> None:
    sources = [edge.source for edge in edges(demo) if edge.source in demo.steps]
    order = list(demo.steps)
    assert sources == sorted(sources, key=order.index)


def test_cancel_edge_only_where_the_cancel_key_is_on(demo: Flow) -> None:
    cancels = [edge for edge in edges(demo) if edge.kind == "cancel"]
    assert cancels == [Edge("entry", "main", "cancel *", "cancel")]  # `quiet` turned its cancel key off


def test_nodes_stand_for_steps_other_flows_and_missing_steps(demo: Flow) -> None:
    graph_nodes = {node.id: node for node in nodes(demo, edges(demo))}
    assert graph_nodes["main"].lines == ("main", "menu: main-menu")
    assert graph_nodes["entry"].lines == ("entry", "collect: enter-account → vars.account")
    assert graph_nodes["agents"].lines == ("agents", "queue: support")
    assert graph_nodes["operator"].lines == ("operator", "transfer: PJSIP/operator")
    assert graph_nodes["welcome"].lines == ("welcome", "play: hello, number {{ vars.n }}")
    assert graph_nodes["route"].lines == ("route", "branch", 'note: Ask "ops" <team> | now')
    assert graph_nodes["flow:billing/pay"].kind == "flow"
    assert graph_nodes["nowhere"].kind == "missing"
    assert graph_nodes[ENTRY].kind == "entry"


def test_example_flows() -> None:
    flows = load_directory(ROOT / "flows").flows
    support = edges(flows["support"])
    assert Edge("main_menu", "billing_menu", "1", "choice") in support
    assert Edge("hours_check", "holiday_message", "holiday", "hours") in support
    assert Edge("operator", "operator_busy", "noanswer", "outcome") in support
    assert Edge("route_by_account", "vip_queue", "vars.account.startswith('9')", "branch") in support
    assert Edge("to_support", "flow:support/main_menu", "goto", "flow") in edges(flows["billing"])
    for flow in flows.values():  # every edge of a correct flow leads to a step or another flow
        for edge in edges(flow):
            assert edge.target in flow.steps or edge.target.startswith("flow:"), edge


def test_a_callback_step_leads_to_its_outcomes_and_next() -> None:
    support = load_directory(ROOT / "flows").flows["support"]
    offer = [edge for edge in edges(support) if edge.source == "offer_callback"]
    assert offer == [
        Edge("offer_callback", "tech_queue_join", "cancelled", "outcome"),
        Edge("offer_callback", "tech_queue_join", "failed", "outcome"),
        Edge("offer_callback", "tech_queue_join", "unavailable", "outcome"),
        Edge("offer_callback", "callback_goodbye", "next", "next"),
        Edge("offer_callback", "tech_queue_join", "cancel *", "cancel"),
    ]
    graph_nodes = {node.id: node for node in nodes(support, edges(support))}
    assert graph_nodes["keep_place"].lines == ("keep_place", "callback: support, if the caller hangs up waiting")
