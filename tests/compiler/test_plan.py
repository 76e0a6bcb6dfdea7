"""From flows to the render model: what each context dispatches to, and every refusal at its YAML position."""

from __future__ import annotations

from pathlib import Path

from ivrkit.compiler.plan import build_plan
from ivrkit.flow.diagnostics import Diagnostics, Location
from ivrkit.flow.model import Flow
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.steps.queue import Queue, QueueSpec
from tests.compiler.helpers import AGI, ROOT, catalog, load, messages, plan

QUEUE = """\
flow: {name}
start: q
steps:
  q:
    queue: {queue}
"""


def test_the_example_flows_plan() -> None:
    flows, diagnostics = load(*(path.read_text() for path in sorted((ROOT / "flows").glob("*.yaml"))),
                              names=["billing.yaml", "support.yaml"])  # fmt: skip
    result = build_plan(flows, diagnostics, catalog(), AGI)
    assert result is not None and not diagnostics.items, diagnostics.render()
    billing, support = result.flows
    assert [q.name for q in billing.queues] == ["billing", "support", "vip"]  # billing's goto reaches support
    assert [q.name for q in support.queues] == ["billing", "support", "vip"]
    assert billing.hangup_context == "ivrkit-billing-hangup"  # support, which billing can go on to, has on_hangup
    assert support.fallback.queue is not None and support.fallback.queue.name == "support"
    assert billing.fallback.queue is not None and billing.fallback.queue.name == "billing"  # its first queue
    assert support.fallback.sound == "en/ivrkit/technical-difficulties"
    assert dict(support.maintenance)["closed"] == "en/ivrkit/lines-closed"  # its `maintenance: closed`'s first prompt
    assert dict(billing.maintenance)["closed"] == "en/ivrkit/maintenance-closed"  # no `maintenance:`: the default
    queues = {queue.name: queue for queue in result.queues}
    assert queues["billing"].flows == ("billing", "support") and queues["billing"].declared_in == "billing.yaml"
    assert queues["vip"].settings.ring_timeout == 20 and queues["vip"].settings.join_empty == (
        "paused", "unavailable", "invalid")  # fmt: skip
    assert result.contexts == ["ivrkit-billing", "ivrkit-billing-hangup", "ivrkit-support", "ivrkit-support-hangup",
                               "ivrkit-exit-billing", "ivrkit-exit-support"]  # fmt: skip
    assert queues["billing"].exit_context == "ivrkit-exit-billing"
    assert queues["support"].exit_context == "ivrkit-exit-support"
    assert queues["billing"].periodic == ("en/ivrkit/pay-online-while-waiting",)
    exit_billing, exit_support = result.exits
    assert exit_billing.keys == (("2", "pay-online"),)
    assert [flow.flow for flow in exit_billing.flows] == ["billing", "support"]  # both queue callers there
    assert exit_support.keys == (("1", "callback"),)
    # support registers callbacks for its queue (callback steps, callback_on_hangup, its callback: block); billing
    # only reaches support's steps with goto, and a callback belongs to the flow whose step registered it
    assert [queue.name for queue in support.callbacks] == ["support"] and billing.callbacks == ()
    assert [flow.flow for flow in exit_support.callbacks] == ["support"] and exit_billing.callbacks == ()
    assert result.sources == ("billing.yaml", "support.yaml")


def test_fallback_routes() -> None:
    transfer = QUEUE.format(name="a", queue="qa") + "dialplan:\n  fallback: {transfer: '+4930123456'}\n"
    hangup = QUEUE.format(name="b", queue="qb") + "dialplan:\n  fallback: {hangup: true, prompt: goodbye}\n"
    endpoint = QUEUE.format(name="c", queue="qc") + (
        "dialplan:\n  fallback: {transfer: PJSIP/operator}\n  numbers_context: outbound\n")
    result, diagnostics = plan(transfer, hangup, endpoint)
    assert result is not None, diagnostics.render()
    a, b, c = result.flows
    assert (a.fallback.queue, a.fallback.dial) == (None, "Local/+4930123456@ivrkit-outbound")
    assert (b.fallback.queue, b.fallback.dial, b.fallback.sound) == (None, None, "en/ivrkit/goodbye")
    assert c.fallback.dial == "PJSIP/operator"


def test_a_flow_with_no_queue_hangs_up_after_the_fallback_prompt() -> None:
    result, diagnostics = plan("flow: a\nstart: bye\nsteps:\n  bye:\n    hangup: true\n")
    assert result is not None, diagnostics.render()
    assert result.flows[0].queues == () and result.flows[0].fallback.queue is None and result.queues == ()
    assert result.flows[0].hangup_context is None


def test_flow_names_that_do_not_fit_the_dialplan() -> None:
    on_hangup = "flow: a\nstart: q\non_hangup: note\nsteps:\n  q:\n    queue: qa\n  note:\n    set: {x: 1}\n"
    long_name = "f" * 65
    _, diagnostics = plan(
        on_hangup,
        QUEUE.format(name="a-hangup", queue="qb"),
        QUEUE.format(name="global", queue="qc"),
        QUEUE.format(name=long_name, queue="qd"),
    )
    assert messages(diagnostics) == [
        "flow1.yaml:1:7: error: flow 'a-hangup' would compile to context 'ivrkit-a-hangup', which is already the "
        "hang-up handler context of flow 'a'",
        "flow2.yaml:1:7: error: a flow cannot be called 'global'",
        f"flow3.yaml:1:7: error: flow name '{'f' * 20}…' is 65 characters long",
    ]


def test_queue_names_asterisk_would_confuse() -> None:
    _, diagnostics = plan(
        QUEUE.format(name="a", queue="General"),
        QUEUE.format(name="b", queue="Support"),
        QUEUE.format(name="c", queue="support"),
    )
    assert messages(diagnostics) == [
        "flow0.yaml:5:12: error: a queue cannot be called 'General'",
        "flow2.yaml:5:12: error: queue 'support' is queue 'Support' (flow1.yaml:5:12) to Asterisk, whose queue names "
        "ignore case",
    ]


def test_a_queue_is_declared_once_or_the_same_everywhere() -> None:
    same = QUEUE.format(name="a", queue="support") + "queues:\n  support: {strategy: rrmemory}\n"
    again = QUEUE.format(name="b", queue="support") + "queues:\n  support: {strategy: rrmemory}\n"
    other = QUEUE.format(name="c", queue="support") + "queues:\n  support: {strategy: ringall, max_callers: 5}\n"
    result, diagnostics = plan(same, again)
    assert result is not None and not diagnostics.items
    assert result.queues[0].settings.strategy == "rrmemory" and result.queues[0].declared_in == "flow0.yaml"
    _, diagnostics = plan(same, again, other)
    assert messages(diagnostics) == [
        "flow2.yaml:7:3: error: queue 'support' is declared differently in flow0.yaml:7:3",
    ]


def test_settings_for_a_queue_nobody_uses_are_a_warning_with_a_guess() -> None:
    text = QUEUE.format(name="a", queue="support") + "queues:\n  suport: {strategy: rrmemory}\n"
    result, diagnostics = plan(text)
    assert messages(diagnostics) == [
        "flow0.yaml:7:3: warning: queue 'suport' has settings but no queue step or fallback uses it"
    ]
    assert [d.hint for d in diagnostics] == ["did you mean 'support'?"]
    assert result is not None and [queue.name for queue in result.queues] == ["suport", "support"]  # still written


def test_the_dialplans_own_prompts_must_be_in_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "catalog.yaml").write_text("maintenance-planned: x\n")
    text = QUEUE.format(name="a", queue="qa") + "dialplan:\n  fallback: {prompt: sorry}\n"
    prompts = PromptCatalog.load(tmp_path)
    flows, diagnostics = load(text, prompts=prompts)
    build_plan(flows, diagnostics, prompts, AGI)
    assert messages(diagnostics) == [
        "flow0.yaml:1:7: error: prompt 'maintenance-emergency' is not in the 'en' catalog: it is the announcement of "
        "maintenance mode 'emergency'",
        "flow0.yaml:1:7: error: prompt 'maintenance-closed' is not in the 'en' catalog: it is the announcement of "
        "maintenance mode 'closed'",
        "flow0.yaml:7:22: error: prompt 'sorry' is not in the 'en' catalog",  # written: checked with the rest
    ]
    assert next(d.hint for d in diagnostics) == (
        f"add it to {tmp_path.as_posix()}/en/catalog.yaml, or name another with `dialplan: {{maintenance: "
        "{emergency: ...}}`"
    )


def test_a_hostile_name_from_code_is_refused_too() -> None:
    """The loader's patterns keep hostile names out of flow files; a flow built in code meets the same wall."""
    where = Location("code.py", 1, 1)
    step = Queue("q", where, QueueSpec("sup,port"), {"outcomes": {}})
    flow = Flow("a", "code.py", where, "q", {"q": step})
    diagnostics = Diagnostics()
    assert build_plan({"a": flow}, diagnostics, None, AGI) is None
    assert messages(diagnostics) == [
        "code.py:1:1: error: queue name 'sup,port' can only hold letters, digits, '_', '.' and '-'"
    ]


def test_the_plan_does_not_depend_on_the_order_flows_come_in() -> None:
    texts = [QUEUE.format(name=name, queue=f"q{name}") for name in ("c", "a", "b")]
    forward, _ = plan(*texts)
    backward, _ = plan(*reversed(texts))
    assert forward is not None and backward is not None
    assert [f.flow for f in forward.flows] == ["a", "b", "c"] == [f.flow for f in backward.flows]
    assert forward.queues == backward.queues


EXITS = """\
flow: {name}
start: q
queues:
  support:
    exit_keys: {{"1": callback, "#": text}}
steps:
  q:
    queue: support
    outcomes: {outcomes}
  a:
    hangup: true
"""


def test_exit_keys_lead_back_to_every_flow_whose_context_queues_a_call_there() -> None:
    declaring = EXITS.format(name="a", outcomes="{callback: a, text: a}")
    fallback = "flow: b\nstart: bye\ndialplan:\n  fallback: {queue: support}\nsteps:\n  bye:\n    hangup: true\n"
    elsewhere = QUEUE.format(name="c", queue="other")
    result, diagnostics = plan(declaring, fallback, elsewhere)
    assert result is not None and not diagnostics.items, diagnostics.render()
    (queue_exit,) = result.exits
    assert (queue_exit.queue, queue_exit.context, queue_exit.keys) == (
        "support", "ivrkit-exit-support", (("1", "callback"), ("#", "text")))  # fmt: skip
    assert [flow.flow for flow in queue_exit.flows] == ["a", "b"]  # b's fallback queues callers there too


def test_an_outcome_the_queue_never_gives_is_an_error_with_a_guess() -> None:
    result, diagnostics = plan(EXITS.format(name="a", outcomes="{callbak: a, text: a, timout: a}"))
    assert result is None
    assert messages(diagnostics) == [
        "flow0.yaml:9:5: warning: exit key '1' of queue 'support' gives outcome 'callback', which step 'q' does "
        "not map",
        "flow0.yaml:9:16: error: queue 'support' never gives outcome 'callbak': its exit keys give callback, text",
        "flow0.yaml:9:37: error: queue 'support' never gives outcome 'timout': its exit keys give callback, text",
    ]
    assert [d.hint for d in diagnostics][1:] == ["did you mean 'callback'?", "did you mean 'timeout'?"]
    text = QUEUE.format(name="b", queue="plain") + "    outcomes: {callback: bye}\n  bye:\n    hangup: true\n"
    _, diagnostics = plan(text)
    assert messages(diagnostics) == [
        "flow0.yaml:6:16: error: queue 'plain' never gives outcome 'callback': it has no exit keys",
    ]
    assert diagnostics.items[0].hint == (
        "declare a key for it in `queues: {plain: {exit_keys: ...}}`, or use one of timeout, full, joinempty, "
        "leaveempty, joinunavail, leaveunavail, continue, otherwise"
    )


def test_an_exit_key_a_queue_step_does_not_map_is_a_warning_unless_it_has_otherwise() -> None:
    _, diagnostics = plan(EXITS.format(name="a", outcomes="{callback: a}"))
    assert messages(diagnostics) == [
        "flow0.yaml:9:5: warning: exit key '#' of queue 'support' gives outcome 'text', which step 'q' does not map",
    ]
    assert diagnostics.items[0].hint == (
        "add `text: <step>` to its `outcomes`, or a caller who presses # in the queue ends the call with outcome "
        "queue-text"
    )
    result, diagnostics = plan(EXITS.format(name="a", outcomes="{otherwise: a}"))
    assert result is not None and not diagnostics.items, diagnostics.render()


def test_exit_keys_whose_context_a_flow_already_has_are_refused() -> None:
    declaring = EXITS.format(name="a", outcomes="{callback: a, text: a}")
    _, diagnostics = plan(declaring, QUEUE.format(name="exit-support", queue="other"))
    assert messages(diagnostics) == [
        "flow0.yaml:4:3: error: the exit keys of queue 'support' would compile to context 'ivrkit-exit-support', "
        "which is already a flow's context",
    ]


OVERFLOW = """\
flow: a
start: q
queues:
  spare: {{exit_keys: {{"3": text}}}}
steps:
  q:
    queue: main
    overflow:
      - when: {{position_over: 5}}
        queue: spare
    outcomes: {outcomes}
  bye:
    hangup: true
"""


def test_an_overflow_queue_is_compiled_and_its_exit_keys_are_outcomes_of_the_step() -> None:
    result, diagnostics = plan(OVERFLOW.format(outcomes="{text: bye, timeout: bye}"))
    assert result is not None and not diagnostics.items, diagnostics.render()
    (flow,) = result.flows
    assert [queue.name for queue in flow.queues] == ["main", "spare"]  # the dialplan may queue callers in both
    assert [queue.name for queue in result.queues] == ["main", "spare"]
    (spare_exit,) = result.exits
    assert [f.flow for f in spare_exit.flows] == ["a"]
    _, diagnostics = plan(OVERFLOW.format(outcomes="{txt: bye}"))
    assert messages(diagnostics)[-1] == (
        "flow0.yaml:11:16: error: queue 'main' (or its overflow 'spare') never gives outcome 'txt': their exit keys "
        "give text"
    )


def test_a_flow_that_queues_calls_has_a_hang_up_handler_even_without_on_hangup() -> None:
    # the handler's session tells the server how the wait ended (answered or abandoned) for the wait estimates
    result, diagnostics = plan(QUEUE.format(name="a", queue="main"), "flow: b\nstart: bye\nsteps:\n  bye:\n"
                               "    hangup: true\n")  # fmt: skip
    assert result is not None, diagnostics.render()
    queueing, not_queueing = result.flows
    assert queueing.hangup_context == "ivrkit-a-hangup"
    assert not_queueing.hangup_context is None


def test_a_queue_a_maintenance_mode_hands_calls_to_is_dispatched_by_the_flows_context() -> None:
    result, diagnostics = plan("""\
        flow: line
        start: q
        maintenance:
          closed: {prompt: maintenance-closed, reopening: none, then: {queue: {name: backup, priority: 2}}}
        steps:
          q:
            queue: support
        """)
    assert result is not None, diagnostics.render()
    (line,) = result.flows
    assert [queue.name for queue in line.queues] == ["backup", "support"]
    assert [queue.name for queue in result.queues] == ["backup", "support"]  # backup gets a queues.conf section
