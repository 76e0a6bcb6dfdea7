"""Whole-flow checks, run after loading by ``ivrkit check`` and before a server takes calls.

The loader reports what one option shows on its own (types, unknown keys, expression syntax). What is left
needs the whole flow, or all flows: names that must exist elsewhere, which steps a call can reach, whether a
caller can always leave, loops that would spin without waiting for the caller, keys that mean two things at
once, steps that cannot run after a hang-up, and values that can be judged before any call (digit counts,
constant transfer destinations). A caller meets each of these as dead air, a dropped call or an endless loop,
so they are found here, each at the YAML position that causes it. Prompts (missing, unused, badly built, not
deployed) are checked in :mod:`ivrkit.prompts.checks`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from ivrkit.flow.diagnostics import Diagnostics, Location, did_you_mean
from ivrkit.flow.maintenance import MODES
from ivrkit.flow.model import Flow
from ivrkit.flow.source import Mapping, Node
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.steps import STEP_KINDS, Step
from ivrkit.steps.callback import CANCEL, KEEP, NUMBER_TERMINATOR, ON_HANGUP, OTHER, YES, Callback
from ivrkit.steps.collect import Collect, CollectSpec
from ivrkit.steps.goto import FlowTarget, Goto
from ivrkit.steps.hours import Hours
from ivrkit.steps.menu import Menu, MenuSpec
from ivrkit.steps.queue import OPTED_IN, Queue
from ivrkit.steps.transfer import DESTINATION, Transfer

CANCEL_LABEL = "cancel_to"
_SAFE = sorted(kind for kind, cls in STEP_KINDS.items() if cls.dead_safe)
DEAD_SAFE_KINDS = f"{', '.join(_SAFE[:-1])} and {_SAFE[-1]}" if len(_SAFE) > 1 else "".join(_SAFE)


def check_flows(
    flows: dict[str, Flow],
    diagnostics: Diagnostics,
    catalog: PromptCatalog | None = None,
    unloaded: Collection[str] = (),
) -> None:
    """Report every whole-flow problem in ``flows`` into ``diagnostics``; with a catalog, also the prompts missing
    from it (:func:`ivrkit.prompts.checks.check_missing`), as a server checks before it takes calls.

    ``unloaded`` names flows whose files have errors of their own: references to them are not reported again.
    """
    entries: dict[str, set[str]] = {name: set() for name in flows}  # steps that other flows jump into
    for flow in flows.values():
        for step in flow.steps.values():
            target = step.value if isinstance(step, Goto) else None
            if isinstance(target, FlowTarget) and target.step and target.flow in flows:
                entries[target.flow].add(target.step)
    for flow in flows.values():
        FlowChecker(flow, flows, diagnostics, entries[flow.name], frozenset(unloaded)).run()
    if catalog is not None:
        from ivrkit.prompts.checks import check_missing  # it builds on this module (Locator, default_callbacks)

        check_missing(flows, catalog, diagnostics)


@dataclass(frozen=True)
class Edge:
    """A way from one step to another, where it is written, and whether only the cancel key takes it."""

    target: str
    location: Location
    cancel: bool


class Locator:
    """Finds where any option of a step is written.

    Steps keep values, not positions, and only references carry a location. Rather than thread positions
    through every value, a check that needs one walks the flow's source nodes (kept on the flow by the loader)
    to the option; a flow built without them falls back to the step's own location.
    """

    def __init__(self, flow: Flow):
        self.root = flow.node

    def find(self, step: Step | None, *path: str, key: bool = False) -> Location | None:
        """The value (or, with ``key``, the key) at ``path`` below a step, or below the flow when step is None."""
        node: Node | None = self.root
        if step is not None:
            steps = self.root.get("steps") if self.root else None
            node = steps.get(step.name) if isinstance(steps, Mapping) else None
        for index, part in enumerate(path):
            if not isinstance(node, Mapping) or part not in node:
                return None
            if key and index == len(path) - 1:
                return node.key_node(part).location
            node = node.get(part)
        return node.location if node is not None else None


class FlowChecker:
    """All checks of one flow; the step graph is built once and shared by them."""

    def __init__(
        self,
        flow: Flow,
        flows: dict[str, Flow],
        diagnostics: Diagnostics,
        entries: set[str],
        unloaded: frozenset[str] = frozenset(),
    ):
        self.flow, self.flows, self.out = flow, flows, diagnostics
        self.unloaded = unloaded
        self.locate = Locator(flow)
        self.edges: dict[str, list[Edge]] = {name: [] for name in flow.steps}
        self.dangling: set[str] = set()  # steps with a reference to a missing step (reported once, not again)
        for ref in flow.references:
            if ref.kind == "step" and ref.owner in self.edges:
                if ref.name in flow.steps:
                    self.edges[ref.owner].append(Edge(ref.name, ref.location, ref.label == CANCEL_LABEL))
                else:
                    self.dangling.add(ref.owner)
        # A call enters at `start`, at `on_error`, where another flow's goto lands, or where a maintenance mode's
        # goto sends it. The cancel key's default target (the previous menu) is always a menu the call has
        # already passed, so it adds nothing here.
        self.in_call = self.reach([flow.start, flow.on_error, *entries, *maintenance_steps(flow)], cancel=True)
        self.in_hangup = self.reach([flow.on_hangup], cancel=False)  # a dead channel has no keys
        self.hangup_only = self.in_hangup - self.in_call

    def successors(self, name: str, cancel: bool) -> list[str]:
        return [edge.target for edge in self.edges.get(name, []) if cancel or not edge.cancel]

    def reach(self, roots: Iterable[str | None], cancel: bool) -> set[str]:
        seen = {root for root in roots if root is not None and root in self.flow.steps}
        queue = deque(seen)
        while queue:
            for target in self.successors(queue.popleft(), cancel):
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
        return seen

    def order(self, names: Iterable[str]) -> list[str]:
        """Names in the order the steps are written, so messages are stable."""
        position = {name: index for index, name in enumerate(self.flow.steps)}
        return sorted(names, key=position.__getitem__)

    def at(self, step: Step | None, *path: str, key: bool = False) -> Location:
        found = self.locate.find(step, *path, key=key)
        return found or (step.location if step is not None else self.flow.location)

    def run(self) -> None:
        self.check_references()
        self.check_reachable()
        self.check_ways_out()
        looping = self.check_loops()
        self.check_traps(looping)
        self.check_hangup_handler()
        for step in self.flow.steps.values():
            self.check_keys(step)
            self.check_values(step)
        self.check_callbacks()
        self.check_maintenance()

    # -- names ------------------------------------------------------------------------------------------------

    def check_references(self) -> None:
        for ref in self.flow.references:
            if ref.kind == "step" and ref.name not in self.flow.steps:
                hint = did_you_mean(ref.name, self.flow.steps) or f"add a step '{ref.name}' under `steps:`"
                self.out.error(ref.location, f"unknown step '{ref.name}'", hint)
            elif ref.kind == "flow" and ref.name not in self.flows and ref.name not in self.unloaded:
                hint = did_you_mean(ref.name, self.flows) or f"the flows are: {', '.join(sorted(self.flows))}"
                self.out.error(ref.location, f"unknown flow '{ref.name}'", hint)
        for step in self.flow.steps.values():
            target = step.value if isinstance(step, Goto) else None
            if isinstance(target, FlowTarget) and target.step and target.flow in self.flows:
                other = self.flows[target.flow]
                if target.step not in other.steps:
                    self.out.error(self.at(step, "goto", "step"), f"flow '{other.name}' has no step '{target.step}'",
                                   did_you_mean(target.step, other.steps) or f"its steps are: {', '.join(other.steps)}")
            if isinstance(step, Hours) and isinstance(step.value, str) and step.value not in self.flow.schedules:
                hint = did_you_mean(step.value, self.flow.schedules) or "define it under `schedules:` in this flow"
                self.out.error(self.at(step, "hours"), f"unknown schedule '{step.value}'", hint)

    # -- the step graph ---------------------------------------------------------------------------------------

    def check_reachable(self) -> None:
        if any(ref.kind == "step" and ref.name not in self.flow.steps for ref in self.flow.references):
            return  # with a name misspelt, "never reached" would mostly list the steps it was meant to name
        for name in self.order(self.flow.steps.keys() - self.in_call - self.in_hangup):
            self.out.warning(self.flow.steps[name].location, f"step '{name}' is never reached",
                             "nothing leads to it from `start`, `on_error`, `on_hangup`, `maintenance` or another "
                             "step")

    def check_ways_out(self) -> None:
        """Steps that just stop: the caller hears silence and is cut off. A hang-up handler may just end."""
        for name, step in self.flow.steps.items():
            if isinstance(step, Callback):
                continue  # an outcome with no step (nor `next`) ends the call on purpose, with its own label
            if "next" in type(step).options and step.next is None and name not in self.hangup_only:
                self.out.error(step.location, f"step '{name}' has no way out: add `next: <step>`",
                               "after it the call would just end; end calls on purpose with a `hangup` step")

    def check_loops(self) -> set[str]:
        """Cycles of steps none of which waits for a key: the call would spin until the engine gives up."""
        passive = [name for name, step in self.flow.steps.items() if not step.takes_input]
        waits = {name for name, step in self.flow.steps.items() if step.takes_input}
        looping: set[str] = set()
        graph = {name: [t for t in self.successors(name, cancel=False) if t not in waits] for name in passive}
        for component in strongly_connected(passive, graph):
            first = self.order(component)[0]
            if len(component) == 1 and first not in graph[first]:
                continue
            cycle = cycle_through(first, set(component), graph)
            looping.update(component)
            self.out.error(self.flow.steps[first].location,
                           f"steps loop without waiting for the caller: {' -> '.join(cycle)}",
                           "put a menu or collect in the loop, or lead out of it")
        return looping

    def check_traps(self, looping: set[str]) -> None:
        """Steps from which no hangup, hand-off or other flow can be reached: only hanging up frees the caller."""
        exits = {name for name, step in self.flow.steps.items() if ends_by_itself(step) or name in self.dangling}
        predecessors: dict[str, list[str]] = {name: [] for name in self.flow.steps}
        for name in self.flow.steps:
            for target in self.successors(name, cancel=True):
                predecessors[target].append(name)
        free = set(exits)
        queue = deque(exits)
        while queue:
            for source in predecessors[queue.popleft()]:
                if source not in free:
                    free.add(source)
                    queue.append(source)
        trapped = self.order(self.flow.steps.keys() - free - self.hangup_only)
        graph = {name: [t for t in self.successors(name, cancel=True) if t in trapped] for name in trapped}
        for component in strongly_connected(trapped, graph):
            members = set(component)
            leaves = any(t not in members for name in component for t in graph[name])
            if leaves or members & looping:
                continue  # not where callers end up, or already reported as a loop
            names = ", ".join(f"'{name}'" for name in self.order(component))
            self.out.error(self.flow.steps[self.order(component)[0]].location,
                           f"callers can never leave {'steps' if len(component) > 1 else 'step'} {names}: "
                           "no hangup, queue, transfer or other flow can be reached from here",
                           "give callers a way to end the call, e.g. `failed: goodbye` with a hangup step")

    def check_hangup_handler(self) -> None:
        """After a hang-up there is no audio and there are no keys; the runner stops at the first such step."""
        start = next((ref for ref in self.flow.references if ref.owner is None and ref.label == "on_hangup"), None)
        if start is None or start.name not in self.flow.steps:
            return
        queue, expanded = deque([Edge(start.name, start.location, False)]), set()
        while queue:
            edge = queue.popleft()
            step = self.flow.steps[edge.target]
            if not step.dead_safe:
                self.out.error(edge.location,
                               f"the on_hangup handler leads to step '{step.name}', but a {step.kind} step cannot "
                               "run after the caller hung up",
                               f"after a hang-up only {DEAD_SAFE_KINDS} steps can run (no audio, no keys)")
            elif step.name not in expanded:
                expanded.add(step.name)
                queue.extend(next_edge for next_edge in self.edges[step.name] if not next_edge.cancel)

    # -- keys and values --------------------------------------------------------------------------------------

    def check_keys(self, step: Step) -> None:
        cancel = self.flow.cancel_key_for(step)
        if isinstance(step, Menu):
            spec: MenuSpec = step.value
            if cancel in spec.choices:
                self.out.error(self.at(step, "menu", "choices", cancel, key=True),
                               f"key '{cancel}' is the cancel key here, so this choice can never be made",
                               "use another key, or turn the cancel key off for this step with `cancel_key: none`")
            self.check_failure(step, spec, "menu")
        if isinstance(step, Collect):
            entry: CollectSpec = step.value
            if cancel and cancel == entry.terminator:
                where = self.locate.find(step, "collect", "terminator") or self.cancel_key_location(step)
                self.out.error(where, f"the terminator '{cancel}' is also the cancel key here: pressing it would "
                               "cancel the entry instead of ending it",
                               "set another `terminator`, or `cancel_key: none` on this step")
            if cancel.isdigit():
                self.out.error(self.cancel_key_location(step),
                               f"the cancel key '{cancel}' is a digit, so callers could not enter it in step "
                               f"'{step.name}'", 'use "*" as the cancel key, or `cancel_key: none` on this step')
            if entry.confirm is not None:
                confirm = entry.confirm
                if confirm.yes == confirm.no:
                    self.out.error(self.at(step, "collect", "confirm", "no"),
                                   f"the confirmation keys for yes and no are both '{confirm.yes}'",
                                   "use different keys, e.g. yes: 1 and no: 2")
                for answer in ("yes", "no"):
                    if cancel and getattr(confirm, answer) == cancel:
                        self.out.error(self.at(step, "collect", "confirm", answer),
                                       f"the confirmation key '{cancel}' is also the cancel key here",
                                       "use another key, or `cancel_key: none` on this step")
            self.check_failure(step, entry, "entry")

        if isinstance(step, Callback):
            self.check_callback_keys(step, cancel)

    def check_callback_keys(self, step: Callback, cancel: str) -> None:
        """The callback step answers with 1 and 2, ends a typed number with #, and has its reason keys."""
        if not cancel:
            return
        if cancel in {YES, OTHER, KEEP, CANCEL, NUMBER_TERMINATOR}:
            self.out.error(self.cancel_key_location(step),
                           f"the cancel key '{cancel}' is also a key of the callback step '{step.name}' (1 and 2 "
                           "answer its questions, # ends a typed number)",
                           'use "*" as the cancel key, or `cancel_key: none` on this step')
        reason = step.spec.reason
        if reason is not None and cancel in reason.choices:
            self.out.error(self.at(step, "callback", "reason", "choices", cancel, key=True),
                           f"key '{cancel}' is the cancel key here, so this reason can never be chosen",
                           "use another key, or turn the cancel key off for this step with `cancel_key: none`")

    def cancel_key_location(self, step: Step) -> Location:
        """Where the cancel key in force at ``step`` is set: on the step, else at the flow's top."""
        return self.locate.find(step, "cancel_key") or self.at(None, "cancel_key")

    def check_failure(self, step: Step, spec: MenuSpec | CollectSpec, what: str) -> None:
        missing = [kind for kind in ("no_input", "invalid") if getattr(spec, kind).failed is None]
        if spec.failed is None and missing:
            alternative = f" or `{missing[0]}: {{failed: <step>}}`" if len(missing) == 1 else ""
            self.out.warning(step.location, f"callers who fail this {what} are disconnected",
                             f"add `failed: <step>`{alternative}, for example a transfer to an operator")

    def check_values(self, step: Step) -> None:
        if isinstance(step, Queue):
            for problem in step.problems(self.flow):
                report = self.out.error if problem.error else self.out.warning
                report(problem.location, problem.message, problem.hint)
        if isinstance(step, Collect) and step.value.min_digits > step.value.max_digits:
            self.out.error(self.at(step, "collect", "min_digits"),
                           f"min_digits ({step.value.min_digits}) is more than max_digits ({step.value.max_digits})",
                           "no entry could ever be valid")
        if isinstance(step, Transfer) and step.spec.to.is_constant:
            self.check_destination(step.spec.to.source, step.spec.to.location or step.location)

    def check_callbacks(self) -> None:
        """Queues callers are called back from: their settings, and opt-ins that nothing (or nobody) uses."""
        for name, settings in self.flow.queues.items():
            hours = settings.callback.hours if settings.callback is not None else None
            if hours is not None and hours not in self.flow.schedules:
                hint = did_you_mean(hours, self.flow.schedules) or "define it under `schedules:` in this flow"
                self.out.error(self.at(None, "queues", name, "callback", "hours"), f"unknown schedule '{hours}'", hint)
        opt_ins = {step.spec.queue: step for step in self.flow.steps.values()
                   if isinstance(step, Callback) and step.spec.when == ON_HANGUP}
        registering: set[str] = set()
        for step in self.flow.steps.values():
            if isinstance(step, Queue) and step.settings.get("callback_on_hangup") is not None:
                queues = [step.spec.name, *(spec.name for spec, _ in step.overflow_queues())]
                registering.update(queues)
                if step.settings["callback_on_hangup"].when == OPTED_IN and not any(q in opt_ins for q in queues):
                    self.out.warning(self.at(step, "callback_on_hangup", "when"),
                                     f"no callback step lets callers opt in for queue '{step.spec.name}', so no "
                                     "one is called back", "add a `callback` step with `when: on_hangup` for "
                                     "this queue, or use `when: automatic`")
        for queue, step in opt_ins.items():
            if queue not in registering:
                self.out.warning(self.at(step, "callback", "when"),
                                 f"callers opt in to a callback from queue '{queue}', but no queue step of this flow "
                                 "registers it when they hang up",
                                 f"give the queue step for '{queue}' `callback_on_hangup: {{when: opted_in}}`")
        for queue, step, path in default_callbacks(self.flow):
            self.out.warning(self.at(step, *path),
                             f"queue '{queue}' has no `callback:` settings: its callbacks use the defaults "
                             "(customer-first, 3 attempts, at any hour, typed numbers only with their "
                             "country code)",
                             f"add `queues: {{{queue}: {{callback: {{country: DE, hours: <schedule>}}}}}}`")

    def check_maintenance(self) -> None:
        """What the loader cannot see in one option: windows of one mode that overlap, a constant transfer
        destination that is not one."""
        settings = self.flow.maintenance
        if settings is None:
            return
        for mode in MODES:
            action = settings.handling(mode).then
            if action.transfer is not None and action.transfer.to.is_constant:
                where = action.transfer.to.location or self.at(None, "maintenance", mode, "then")
                self.check_destination(action.transfer.to.source, where)
        windows = list(zip(settings.declared, settings.windows))  # as written, and in the flow's timezone
        for index, (first, one) in enumerate(windows):
            for second, other in windows[index + 1:]:
                if one.mode != other.mode or not (one.covers(other.starts_at) or other.covers(one.starts_at)):
                    continue
                line = f" at line {first.location.line}" if first.location is not None else ""
                self.out.warning(second.location or self.flow.location,
                                 f"this {other.mode} window overlaps the one{line} ("
                                 f"{first.starts_at.isoformat(' ', timespec='minutes')} to "
                                 f"{first.ends_at.isoformat(' ', timespec='minutes')})",
                                 "join them into one window: callers would hear the end of whichever started last")

    def check_destination(self, source: object, where: Location) -> None:
        """A transfer destination known before any call: an endpoint or a number."""
        destination = "" if source is None else str(source).strip()
        if not destination:
            self.out.error(where, "the transfer has no destination",
                           "write an endpoint such as PJSIP/operator or a number such as +4930123456")
        elif not DESTINATION.match(destination):
            self.out.error(where, f"'{destination}' is not an endpoint or a number",
                           "write an endpoint such as PJSIP/operator or a number such as +4930123456")


def default_callbacks(flow: Flow) -> list[tuple[str, Step, tuple[str, ...]]]:
    """Queues that callers are called back from with no `callback:` settings of their own, each with the first
    step (and its option) that calls back from it: their callbacks use the defaults, default prompts included."""
    found: dict[str, tuple[Step, tuple[str, ...]]] = {}
    for step in flow.steps.values():
        if isinstance(step, Callback):
            found.setdefault(step.spec.queue, (step, ("callback",)))
        elif isinstance(step, Queue) and step.settings.get("callback_on_hangup") is not None:
            for queue in [step.spec.name, *(spec.name for spec, _ in step.overflow_queues())]:
                found.setdefault(queue, (step, ("callback_on_hangup",)))
    return [(queue, step, path) for queue, (step, path) in found.items()
            if (declared := flow.queues.get(queue)) is None or declared.callback is None]


def maintenance_steps(flow: Flow) -> list[str]:
    """The steps a maintenance mode's ``goto`` sends calls to."""
    if flow.maintenance is None:
        return []
    return [step for mode in MODES if (step := flow.maintenance.handling(mode).then.step) is not None]


def ends_by_itself(step: Step) -> bool:
    """True when the call can end at this step: a hangup or hand-off, or a path with nowhere to go next."""
    if step.ends_call:
        return True
    if "next" in type(step).options and step.next is None:
        return True  # reported as "no way out" unless it ends a hang-up handler
    spec = step.value
    if isinstance(spec, (MenuSpec, CollectSpec)):
        return spec.failed is None and (spec.no_input.failed is None or spec.invalid.failed is None)
    return False


def strongly_connected(nodes: list[str], graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, without recursion (flows can be long chains of steps)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            target = next(successors, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(graph[target])))
            elif target in on_stack:
                low[node] = min(low[node], index[target])
    return components


def cycle_through(first: str, members: set[str], graph: dict[str, list[str]]) -> list[str]:
    """The shortest cycle from ``first`` back to itself inside one component, for naming it in a message."""
    parents: dict[str, str] = {}
    queue = deque([first])
    while queue:
        node = queue.popleft()
        for target in graph[node]:
            if target == first:
                path = [node]
                while path[-1] != first:
                    path.append(parents[path[-1]])
                return [*reversed(path), first]
            if target in members and target not in parents:
                parents[target] = node
                queue.append(target)
    return [first, first]
