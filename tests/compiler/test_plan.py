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
    assert dict(support.maintenance)["closed"] == "en/ivrkit/maintenance-closed"
    queues = {queue.name: queue for queue in result.queues}
    assert queues["billing"].flows == ("billing", "support") and queues["billing"].declared_in == "billing.yaml"
    assert queues["vip"].settings.ring_timeout == 20 and queues["vip"].settings.join_empty == (
        "paused", "unavailable", "invalid")  # fmt: skip
    assert result.contexts == ["ivrkit-billing", "ivrkit-billing-hangup", "ivrkit-support", "ivrkit-support-hangup"]
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
