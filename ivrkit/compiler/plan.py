"""From loaded flows to what the templates render: contexts, queues, hang-up handlers, fallbacks.

This is also where everything that would reach a dialplan line is judged, with the flow file's position,
so ``ivrkit check`` shows it before anyone compiles: flow names that do not fit a context, two generated
contexts with the same name, queues that Asterisk would take for one another (its queue names ignore case)
or for ``queues.conf``'s ``[general]`` section, a queue declared differently in two flows, settings for a
queue nobody uses, the prompts the dialplan plays itself (fallback, maintenance) missing from the catalog,
and queue steps whose ``outcomes`` name an outcome their queue never gives (the exit keys' outcomes count).
A queue a ``callback`` step names is used like a queue step's: the callback leg joins it; so is a queue a
maintenance mode's ``then`` names, in the flow's own context.
Every name is then validated again by :mod:`ivrkit.compiler.dialplan`, so a flow built in code cannot slip
past the loader's patterns.

The plan is ordered by name throughout, so the output does not depend on the order files were listed in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ivrkit.compiler import dialplan
from ivrkit.flow.checks import Locator
from ivrkit.flow.diagnostics import Diagnostics, Location, did_you_mean
from ivrkit.flow.model import Flow
from ivrkit.flow.pbx import MAINTENANCE_MODES, QueueSettings
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.steps.base import Step
from ivrkit.steps.callback import Callback as CallbackStep
from ivrkit.steps.goto import FlowTarget, Goto
from ivrkit.steps.queue import QUEUE_OUTCOMES, Queue

CONTEXT_PREFIX = "ivrkit-"
HANGUP_SUFFIX = "-hangup"
EXIT_PREFIX = "ivrkit-exit-"  # the context a queue's exit keys lead to
MAINTENANCE_FAMILY = "ivrkit-maintenance"  # AstDB family of the maintenance flags
GLOBAL_KEY = "global"  # AstDB key of the flag that applies to every flow
MAX_FLOW_NAME = 64  # what the FastAGI server accepts in a URL path (ivrkit/agi/wire.py)
DEFAULT_AGI_URL = "agi://127.0.0.1:4573"
DEFAULT_SOUNDS = "ivrkit"
RESERVED_QUEUES = ("general",)  # queues.conf sections that are not queues
CALLBACK_EXTEN = "callback"  # the Originate's Exten, in the flow's context: the answered callback leg
CALLBACK_AGENT_EXTEN = "callback-agent"  # agent-first: Local/callback-agent@<context>/n waits for an agent
CALLBACK_ID_LENGTH = 32  # a callback id is uuid4().hex
CALLBACK_ON_HANGUP = "callback_on_hangup"  # the queue step option that registers them when a caller hangs up


@dataclass(frozen=True)
class QueuePlan:
    """One queue: its ``queues.conf`` section and its label in the dispatch of the contexts that use it."""

    name: str
    settings: QueueSettings
    flows: tuple[str, ...]  # flows whose steps or fallback use it
    declared_in: str | None  # the flow file its settings come from (None: defaults)
    periodic: tuple[str, ...] = ()  # the periodic prompts as sound files, in the declaring flow's language

    @property
    def label(self) -> str:
        return queue_label(self.name)

    @property
    def exit_context(self) -> str | None:
        """The queues.conf ``context`` of its exit keys (None: the queue has none)."""
        return exit_context_name(self.name) if self.settings.exit_keys else None

    @property
    def options(self) -> str:
        """The Queue() options argument."""
        return "r" if self.settings.ringing else ""


@dataclass(frozen=True)
class FallbackPlan:
    """The fallback path of one context: a prompt, then a queue, a dial string or nothing (hang up)."""

    sound: str
    queue: QueuePlan | None = None
    dial: str | None = None


@dataclass(frozen=True)
class FlowPlan:
    """One flow's entry context, and its hang-up handler context if a flow it can reach has ``on_hangup``."""

    flow: str
    file: str
    description: str | None
    context: str
    hangup_context: str | None
    queues: tuple[QueuePlan, ...]  # every queue a call entering here can be handed to (goto included)
    numbers_context: str
    fallback: FallbackPlan
    maintenance: tuple[tuple[str, str], ...]  # (mode, sound): what the fallback plays when the flag names the mode
    maintenance_key: str  # the AstDB key of this flow's flag (the server's mirror writes it)
    callbacks: tuple[QueuePlan, ...] = ()  # the queues this flow registers callbacks for: its callback legs'


@dataclass(frozen=True)
class ExitPlan:
    """The context of one queue's exit keys: each key sets its outcome, and the flow whose entry context put the
    call in the queue (``IVRKIT_DP_FLOW``) resumes with it; the dialplan never jumps to a variable's value."""

    queue: str
    context: str
    keys: tuple[tuple[str, str], ...]  # (DTMF key, outcome)
    flows: tuple[FlowPlan, ...]  # the flows whose entry context can queue a call here
    callbacks: tuple[FlowPlan, ...] = ()  # the flows whose callback legs wait here: an exit key sends them back

    @property
    def label(self) -> str:
        """The queue's label in the callback extension, where a callback leg rejoins it."""
        return queue_label(self.queue)


@dataclass(frozen=True)
class Plan:
    agi: dialplan.AgiUrl
    flows: tuple[FlowPlan, ...]
    queues: tuple[QueuePlan, ...]
    sources: tuple[str, ...]  # flow file names, sorted
    exits: tuple[ExitPlan, ...] = ()

    @property
    def contexts(self) -> list[str]:
        """Every context the extensions file defines, in file order."""
        names = []
        for flow in self.flows:
            names.append(flow.context)
            if flow.hangup_context:
                names.append(flow.hangup_context)
        return names + [queue_exit.context for queue_exit in self.exits]


@dataclass
class _QueueUse:
    name: str
    location: Location
    flow: str
    declared: QueueSettings | None = None  # set for a `queues:` declaration


@dataclass
class _Builder:
    flows: Mapping[str, Flow]
    out: Diagnostics
    catalog: PromptCatalog | None
    sounds: str
    uses: list[_QueueUse] = field(default_factory=list)
    declarations: list[_QueueUse] = field(default_factory=list)
    failed: bool = False

    def error(self, location: Location, message: str, hint: str | None = None) -> None:
        self.out.error(location, message, hint)
        self.failed = True


def queue_label(queue: str) -> str:
    return f"queue-{queue}"


def context_name(flow: str) -> str:
    return f"{CONTEXT_PREFIX}{flow}"


def hangup_context_name(flow: str) -> str:
    return f"{CONTEXT_PREFIX}{flow}{HANGUP_SUFFIX}"


def exit_context_name(queue: str) -> str:
    return f"{EXIT_PREFIX}{queue}"


def check_dialplan(flows: Mapping[str, Flow], diagnostics: Diagnostics, catalog: PromptCatalog | None) -> None:
    """What ``ivrkit check`` adds for the Asterisk side: every problem :func:`build_plan` would report."""
    build_plan(flows, diagnostics, catalog, dialplan.parse_agi_url(DEFAULT_AGI_URL))


def build_plan(
    flows: Mapping[str, Flow],
    diagnostics: Diagnostics,
    catalog: PromptCatalog | None,
    agi: dialplan.AgiUrl,
    sounds: str = DEFAULT_SOUNDS,
) -> Plan | None:
    """The render model of ``flows``, or None when a problem was reported into ``diagnostics``."""
    builder = _Builder(flows, diagnostics, catalog, sounds)
    ordered = [flows[name] for name in sorted(flows)]
    _check_flow_names(builder, ordered)
    for flow in ordered:
        _collect_queues(builder, flow)
        _check_dialplan_prompts(builder, flow)
    queues = _queues(builder)
    _check_outcomes(builder, ordered, queues)
    plans = [plan for plan in (_flow_plan(builder, flow, queues) for flow in ordered) if plan is not None]
    exits = _exits(builder, plans, queues)
    if builder.failed:
        return None
    sources = tuple(sorted(Path(flow.file).name for flow in ordered))
    return Plan(agi, tuple(plans), tuple(queues.values()), sources, exits)


# -- flows ----------------------------------------------------------------------------------------------------


def _name_location(flow: Flow) -> Location:
    return Locator(flow).find(None, "flow") or flow.location


def _check_flow_names(builder: _Builder, flows: list[Flow]) -> None:
    contexts: dict[str, str] = {}  # context → the flow it belongs to, with what it is
    for flow in flows:
        where = _name_location(flow)
        try:
            dialplan.name(flow.name, "flow name", limit=1000)
        except dialplan.UnsafeValue as error:
            builder.error(where, f"{error}: it names the flow's context and its FastAGI address")
            continue
        if len(flow.name) > MAX_FLOW_NAME:
            builder.error(where, f"flow name '{flow.name[:20]}…' is {len(flow.name)} characters long",
                          f"the FastAGI server takes flow names of up to {MAX_FLOW_NAME} characters")
            continue
        if flow.name == GLOBAL_KEY:
            builder.error(where, f"a flow cannot be called '{GLOBAL_KEY}'",
                          f"AstDB key {MAINTENANCE_FAMILY}/{GLOBAL_KEY} is the maintenance flag of every flow")
            continue
        for context, role in ((context_name(flow.name), "entry context"),
                              (hangup_context_name(flow.name), "hang-up handler context")):
            owner = contexts.get(context)
            if owner is not None:
                builder.error(where, f"flow '{flow.name}' would compile to context '{context}', which is already "
                              f"the {owner}", "rename the flow")
            contexts[context] = f"{role} of flow '{flow.name}'"


def _reachable(flows: Mapping[str, Flow], start: str) -> list[str]:
    """``start`` and every flow a call can go on to with `goto`, sorted."""
    seen = {start}
    todo = [start]
    while todo:
        flow = flows.get(todo.pop())
        if flow is None:
            continue
        for step in flow.steps.values():
            target = step.value if isinstance(step, Goto) else None
            if isinstance(target, FlowTarget) and target.flow not in seen and target.flow in flows:
                seen.add(target.flow)
                todo.append(target.flow)
    return sorted(seen)


def _queues_of(step: Queue, locate: Locator) -> list[tuple[str, Location]]:
    """The queues a queue step can hand a call to: its own, then those of its overflow rules."""
    own = locate.find(step, "queue", "name") or locate.find(step, "queue") or step.location
    return [(step.spec.name, own), *((spec.name, where) for spec, where in step.overflow_queues())]


def _callback_step_use(step: Step, locate: Locator) -> tuple[str, Location] | None:
    """A ``callback`` step's queue, where the flow names it; None for any other step."""
    if not isinstance(step, CallbackStep):
        return None
    kind = CallbackStep.kind
    return step.spec.queue, locate.find(step, kind, "queue") or locate.find(step, kind) or step.location


def _callback_uses(flow: Flow, locate: Locator) -> list[tuple[str, Location]]:
    """The queues the flow's own steps register callbacks for: a ``callback`` step's queue, and every queue a
    queue step with ``callback_on_hangup`` can hand a call to. A callback's flow is the flow of the step that
    registered it, so other flows reached with ``goto`` do not count."""
    uses: list[tuple[str, Location]] = []
    for step in flow.steps.values():
        use = _callback_step_use(step, locate)
        if use is not None:
            uses.append(use)
        elif isinstance(step, Queue) and step.settings.get(CALLBACK_ON_HANGUP):
            uses.extend(_queues_of(step, locate))
    return uses


def _callback_queues(flow: Flow, queues: Mapping[str, QueuePlan]) -> tuple[QueuePlan, ...]:
    """The queues whose callback legs the flow's context takes (the dispatcher originates into the context of
    the callback's flow): those its steps register callbacks for, and those its own queue steps use or it
    declares with a ``callback:`` block. Ordered by name, like the context's other queues."""
    locate = Locator(flow)
    names = {name.lower() for name, _ in _callback_uses(flow, locate)}
    own = {name.lower() for step in flow.steps.values() if isinstance(step, Queue)
           for name, _ in _queues_of(step, locate)}
    own |= {name.lower() for name in flow.queues}
    names |= {name for name in own if name in queues and queues[name].settings.callback is not None}
    return tuple(queues[name] for name in sorted(names) if name in queues)


def _maintenance_queues(flow: Flow, locate: Locator) -> list[tuple[str, Location]]:
    """The queues the flow's maintenance modes hand calls to (met only in the flow a call enters)."""
    if flow.maintenance is None:
        return []
    uses = []
    for mode in MAINTENANCE_MODES:
        queue = flow.maintenance.handling(mode).then.queue
        if queue is not None:
            where = locate.find(None, "maintenance", mode, "then", "queue") or flow.location
            uses.append((queue.name, where))
    return uses


def _first_queue(flow: Flow) -> str | None:
    for step in flow.steps.values():
        if isinstance(step, Queue):
            return step.spec.name
    return None


def _flow_plan(builder: _Builder, flow: Flow, queues: Mapping[str, QueuePlan]) -> FlowPlan | None:
    reachable = _reachable(builder.flows, flow.name)
    queue_steps = [(name, step) for name in reachable for step in builder.flows[name].steps.values()
                   if isinstance(step, Queue)]
    locate = Locator(flow)
    used = sorted({queue for name, step in queue_steps
                   for queue, _ in _queues_of(step, Locator(builder.flows[name]))}
                  | {queue for queue, _ in _maintenance_queues(flow, locate)})
    settings = flow.dialplan
    fallback_queue = settings.fallback.queue
    if not settings.fallback.routed:
        fallback_queue = _first_queue(flow)
    dial = None
    if settings.fallback.transfer is not None:
        destination = settings.fallback.transfer
        dial = f"Local/{destination}@{settings.numbers_context}" if dialplan.is_number(destination) else destination
        try:
            dialplan.arg(dial)
        except dialplan.UnsafeValue as error:
            where = locate.find(None, "dialplan", "fallback", "transfer") or flow.location
            builder.error(where, f"the fallback destination cannot be dialled: {error}")
    try:
        dialplan.name(settings.numbers_context, "numbers context")
    except dialplan.UnsafeValue as error:
        builder.error(locate.find(None, "dialplan", "numbers_context") or flow.location, str(error))
    if builder.failed:
        return None
    # the hang-up handler also tells the server how a queue wait ended (answered or abandoned), for the estimates
    has_hangup = bool(queue_steps) or any(builder.flows[name].on_hangup for name in reachable)
    return FlowPlan(
        flow=flow.name,
        file=Path(flow.file).name,
        description=flow.description,
        context=context_name(flow.name),
        hangup_context=hangup_context_name(flow.name) if has_hangup else None,
        queues=tuple(queues[name.lower()] for name in used if name.lower() in queues),
        numbers_context=settings.numbers_context,
        fallback=FallbackPlan(
            sound=_sound(builder, flow, settings.fallback.prompt),
            queue=queues.get(fallback_queue.lower()) if fallback_queue else None,
            dial=dial,
        ),
        maintenance=tuple(
            (mode, _sound(builder, flow, settings.maintenance.prompt(mode))) for mode in MAINTENANCE_MODES
        ),
        maintenance_key=flow.name,
        callbacks=_callback_queues(flow, queues),
    )


def _sound(builder: _Builder, flow: Flow, prompt: str) -> str:
    """What Playback() plays: ``<language>/<sounds>/<prompt>``, as the FastAGI server plays prompts."""
    return f"{flow.language}/{builder.sounds}/{prompt}"


def _check_dialplan_prompts(builder: _Builder, flow: Flow) -> None:
    """The prompts the dialplan plays must be recorded; those written in the flow are checked with the rest."""
    if builder.catalog is None:
        return
    written = {ref.name for ref in flow.references if ref.kind == "prompt"}
    settings = flow.dialplan
    needed = [(settings.fallback.prompt, "the fallback prompt, played when the FastAGI server cannot be reached",
               "fallback: {prompt: ...}")]
    needed += [(settings.maintenance.prompt(mode), f"the announcement of maintenance mode '{mode}'",
                f"maintenance: {{{mode}: ...}}") for mode in MAINTENANCE_MODES]
    folder = (builder.catalog.directory or Path("prompts")) / flow.language / "catalog.yaml"
    for prompt, role, option in needed:
        if prompt in written or builder.catalog.has(prompt, flow.language):
            continue
        builder.error(_name_location(flow), f"prompt '{prompt}' is not in the '{flow.language}' catalog: it is "
                      f"{role}", f"add it to {folder.as_posix()}, or name another with `dialplan: {{{option}}}`")


# -- queues ---------------------------------------------------------------------------------------------------


def _collect_queues(builder: _Builder, flow: Flow) -> None:
    locate = Locator(flow)
    for step in flow.steps.values():
        if isinstance(step, Queue):
            builder.uses.extend(_QueueUse(name, where, flow.name) for name, where in _queues_of(step, locate))
    for step in flow.steps.values():  # a callback leg joins the callback step's queue: it is used
        use = _callback_step_use(step, locate)
        if use is not None:
            builder.uses.append(_QueueUse(*use, flow.name))
    builder.uses.extend(_QueueUse(name, where, flow.name) for name, where in _maintenance_queues(flow, locate))
    fallback = flow.dialplan.fallback.queue
    if fallback is not None:
        where = locate.find(None, "dialplan", "fallback", "queue") or flow.location
        builder.uses.append(_QueueUse(fallback, where, flow.name))
    for name, settings in flow.queues.items():
        where = locate.find(None, "queues", name, key=True) or flow.location
        builder.declarations.append(_QueueUse(name, where, flow.name, settings))


def _queues(builder: _Builder) -> dict[str, QueuePlan]:
    """Every queue used or declared, keyed by lower-case name (Asterisk's queue names ignore case)."""
    everything = sorted([*builder.uses, *builder.declarations], key=lambda use: use.location)
    valid: list[_QueueUse] = []
    for use in everything:
        try:
            dialplan.name(use.name, "queue name", limit=63)
        except dialplan.UnsafeValue as error:
            builder.error(use.location, str(error))
            continue
        if use.name.lower() in RESERVED_QUEUES:
            builder.error(use.location, f"a queue cannot be called '{use.name}'",
                          "queues.conf keeps the [general] section for its own settings: choose another name")
            continue
        valid.append(use)
    spelled: dict[str, _QueueUse] = {}  # lower-case name → the first use of its most common spelling
    for use in valid:
        key = use.name.lower()
        counts = Counter(other.name for other in valid if other.name.lower() == key)
        spelling = max(counts, key=lambda name: counts[name])  # the first of equals: `valid` is in file order
        spelled.setdefault(key, next(other for other in valid if other.name == spelling))
    for use in valid:
        first = spelled[use.name.lower()]
        if first.name != use.name:
            builder.error(use.location, f"queue '{use.name}' is queue '{first.name}' ({first.location}) to "
                          "Asterisk, whose queue names ignore case", "spell the queue's name the same everywhere")
    declared: dict[str, _QueueUse] = {}
    for declaration in sorted(builder.declarations, key=lambda u: u.location):
        key = declaration.name.lower()
        if key not in spelled or spelled[key].name != declaration.name:
            continue  # reported above
        earlier = declared.setdefault(key, declaration)
        if earlier is not declaration and earlier.declared != declaration.declared:
            builder.error(declaration.location, f"queue '{declaration.name}' is declared differently in "
                          f"{earlier.location}", "declare each queue's settings once, or the same in every flow")
    used = {use.name.lower() for use in builder.uses}
    for declaration in builder.declarations:
        if declaration.name.lower() not in used:
            builder.out.warning(declaration.location,
                                f"queue '{declaration.name}' has settings but no queue step or fallback uses it",
                                did_you_mean(declaration.name, {use.name for use in builder.uses})
                                or "it is still written to the queues file")
    plans: dict[str, QueuePlan] = {}
    for key in sorted(spelled):
        users = sorted({use.flow for use in builder.uses if use.name.lower() == key})
        source = declared.get(key)
        settings = source.declared if source and source.declared else QueueSettings()
        periodic: tuple[str, ...] = ()
        if source is not None and settings.periodic is not None:  # in the language of the flow declaring them
            periodic = tuple(_sound(builder, builder.flows[source.flow], p) for p in settings.periodic.prompts)
        plans[key] = QueuePlan(
            name=spelled[key].name,
            settings=settings,
            flows=tuple(users),
            declared_in=Path(source.location.file).name if source else None,
            periodic=periodic,
        )
    return plans


# -- exit keys ------------------------------------------------------------------------------------------------


def _check_outcomes(builder: _Builder, flows: list[Flow], queues: Mapping[str, QueuePlan]) -> None:
    """Every outcome a queue step maps must be one its queue gives, and every exit key's outcome should be mapped.

    A misspelt outcome would never be taken, so it is an error. An exit key whose outcome a step maps neither
    by name nor with ``otherwise`` ends that step's calls with outcome ``queue-<outcome>``: a warning.
    """
    for flow in flows:
        locate = Locator(flow)
        for step in flow.steps.values():
            if not isinstance(step, Queue):
                continue
            names = [name for name, _ in _queues_of(step, locate)]
            plans = [queues[name.lower()] for name in names if name.lower() in queues]
            exits = [outcome for plan in plans for outcome in plan.settings.exit_outcomes]
            known = [*QUEUE_OUTCOMES, *exits]
            outcomes: Mapping[str, str] = step.settings.get("outcomes") or {}
            for outcome in outcomes:
                if outcome in known:
                    continue
                its, has = ("its", "it has") if len(plans) <= 1 else ("their", "they have")
                gives = f"{its} exit keys give {', '.join(exits)}" if exits else f"{has} no exit keys"
                builder.error(locate.find(step, "outcomes", outcome, key=True) or step.location,
                              f"queue {_names(names)} never gives outcome '{outcome}': {gives}",
                              did_you_mean(outcome, known) or f"declare a key for it in `queues: {{{step.spec.name}: "
                              f"{{exit_keys: ...}}}}`, or use one of {', '.join(QUEUE_OUTCOMES)}")
            for plan in plans:
                for digit, outcome in plan.settings.exit_keys:
                    if outcome in outcomes or "otherwise" in outcomes:
                        continue
                    where = locate.find(step, "outcomes", key=True) or locate.find(step, "queue") or step.location
                    builder.out.warning(where, f"exit key '{digit}' of queue '{plan.name}' gives outcome "
                                        f"'{outcome}', which step '{step.name}' does not map",
                                        f"add `{outcome}: <step>` to its `outcomes`, or a caller who presses "
                                        f"{digit} in the queue ends the call with outcome queue-{outcome}")


def _names(names: list[str]) -> str:
    """``'support'`` or ``'support' (or its overflow 'vip')`` for messages about a step's queues."""
    first = f"'{names[0]}'"
    rest = [name for name in dict.fromkeys(names[1:]) if name != names[0]]
    return first if not rest else f"{first} (or its overflow {', '.join(repr(n) for n in rest)})"


def _exits(builder: _Builder, flows: list[FlowPlan], queues: Mapping[str, QueuePlan]) -> tuple[ExitPlan, ...]:
    """The exit-key contexts; a context name another generated context already has is an error at the queue."""
    contexts = {name for flow in flows for name in (flow.context, flow.hangup_context) if name}
    exits = []
    for queue in queues.values():
        context = queue.exit_context
        if context is None:
            continue
        if context in contexts:
            where = min(use.location for use in builder.declarations if use.name == queue.name)
            builder.error(where, f"the exit keys of queue '{queue.name}' would compile to context '{context}', "
                          "which is already a flow's context", "rename the queue or the flow")
            continue
        users = tuple(flow for flow in flows if queue in flow.queues or flow.fallback.queue == queue)
        callbacks = tuple(flow for flow in flows if queue in flow.callbacks)
        exits.append(ExitPlan(queue.name, context, queue.settings.exit_keys, users, callbacks))
    return tuple(exits)
