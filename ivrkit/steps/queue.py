"""``queue``: hand the caller to an Asterisk queue; the flow resumes with the queue's outcome.

Before the hand-off the step reads the queue (``World.queue``), checks the ``overflow`` rules in order (the
first match acts: go to a step, join another queue, or offer choices) and says the ``announce`` part
(position and estimated wait, :mod:`ivrkit.queueing`). Every join is reported to the world with its
estimate; when the dialplan gives the call back, or the caller hangs up in the queue, :meth:`Queue.returned`
reports the wait that followed, so the estimate log can say how accurate announcements are.

With ``callback_on_hangup`` a caller who hangs up while waiting (after ``min_wait``) is called back:
``automatic`` for any caller with a usable caller ID, ``opted_in`` only for callers who opted in earlier in the
call (a ``callback`` step with ``when: on_hangup``). The request is registered by :meth:`Queue.returned`, which
the compiled hang-up handler reaches on the dead channel; the caller's place is the time they joined.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ivrkit.callbacks.model import Origin
from ivrkit.callbacks.numbers import UnusableNumber, from_caller_id
from ivrkit.callbacks.settings import CallbackSettings
from ivrkit.engine.transitions import GoTo, HandOff, Transition
from ivrkit.engine.world import CallbackNotRegistered, CallbackRequest, QueueExit, QueueJoin, QueueStats
from ivrkit.flow.diagnostics import Location
from ivrkit.flow.fields import (
    Duration,
    Field,
    Integer,
    Key,
    MapOf,
    OneOfShape,
    Option,
    ParseContext,
    Record,
    StepRef,
    Text,
)
from ivrkit.flow.source import Node, Scalar
from ivrkit.queueing.announce import ANNOUNCE_FIELD, SAID_OFF, Announcement, AnnounceSpec, announcement
from ivrkit.queueing.estimator import Estimate
from ivrkit.queueing.overflow import OverflowRules, Problem, Rule, Situation, first_match, problems
from ivrkit.steps.handoff import HandOffStep
from ivrkit.steps.menu import MENU_OPTIONS, MenuSpec, ask

if TYPE_CHECKING:
    from ivrkit.engine.channel import Channel
    from ivrkit.engine.context import CallContext
    from ivrkit.flow.model import Flow

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
QUEUE_NAME_HINT = "a queue name has up to 63 letters, digits, '_', '.' and '-', and starts with a letter or digit"
# app_queue's QUEUESTATUS values, lower-cased, plus `otherwise` for anything not listed.
QUEUE_OUTCOMES = ("timeout", "full", "joinempty", "leaveempty", "joinunavail", "leaveunavail", "continue", "otherwise")
# The outcome an exit key (queues.conf `context=`) gives back, as the flow's `queues.<q>.exit_keys` names it.
OUTCOME_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
OUTCOME_HINT = "an outcome is a queue status or an exit-key outcome: lower-case letters, digits and '-', e.g. callback"
KEEP = "keep"  # an offer's choice that joins the queue after all
# the join of a step that neither announces nor has overflow rules: its figures are never read
UNREAD = Announcement(0, Estimate(None, "none", "figures not read: no announce, no overflow rules"), SAID_OFF)
ANSWERED, ABANDONED, HANGUP = "answered", "abandoned", "hangup"


AUTOMATIC, OPTED_IN = "automatic", "opted_in"


def callback_settings(flow: Flow, queue: str) -> CallbackSettings:
    """The queue's ``queues.<queue>.callback`` settings, else the defaults (as the dispatcher uses them)."""
    settings = flow.queues.get(queue)
    return settings.callback if settings is not None and settings.callback is not None else CallbackSettings()


@dataclass(frozen=True)
class HangupCallback:
    """``callback_on_hangup``: who is called back after hanging up while waiting."""

    when: str  # automatic | opted_in
    min_wait: float = 0.0


@dataclass(frozen=True)
class QueueSpec:
    name: str
    timeout: float | None = None
    priority: int = 0


def _spec(name: str) -> QueueSpec:
    return QueueSpec(name)


QUEUE_BODY = OneOfShape(
    scalar=Text(QUEUE_NAME, what="queue name", hint=QUEUE_NAME_HINT),
    mapping=Record(
        {
            "name": Option(
                Text(QUEUE_NAME, what="queue name", hint=QUEUE_NAME_HINT),
                "The queue, as named in queues.conf.",
                required=True,
            ),
            "timeout": Option(Duration(), "Longest wait in the queue before the flow resumes with `timeout`."),
            "priority": Option(Integer(0, 100), "Queue priority (higher is answered first).", 0),
        },
        factory=QueueSpec,
        what="queue",
    ),
    what="queue name or {name, timeout, priority}",
)


class _StepOrKeep(Field[str]):
    """A step name, or ``keep``: join the queue after all."""

    type_name = "step name or keep"

    def parse(self, node: Node, ctx: ParseContext) -> str:
        if isinstance(node, Scalar) and node.value == KEEP:
            return KEEP
        return StepRef().parse(node, ctx)

    def json_schema(self) -> dict[str, Any]:
        return StepRef().json_schema()


OFFER: Record[MenuSpec] = Record(
    {
        **MENU_OPTIONS,
        "choices": Option(
            MapOf(Key(), _StepOrKeep(), "choices (key: step or keep)"),
            'Each key and the step it leads to; `keep` joins the queue after all. Quote "*" and "#".',
            required=True,
        ),
        "failed": Option(_StepOrKeep(), "Where to go when the caller used up the tries (default: `keep`).", KEEP),
    },
    factory=MenuSpec,
    what="offer",
)
OVERFLOW_ACTIONS = {
    "goto": Option(StepRef(), "Go to this step instead of queueing (act without asking)."),
    "queue": Option(QUEUE_BODY, "Join this queue instead (a bare name keeps the step's timeout and priority)."),
    "offer": Option(OFFER, "Ask, as a menu does: each key leads to a step, `keep` joins the queue after all."),
}


class _Outcome(Text):
    """A queue outcome: a QUEUESTATUS value, ``otherwise``, or an outcome the queue's exit keys give."""

    def __init__(self) -> None:
        super().__init__(OUTCOME_NAME, what="queue outcome", hint=OUTCOME_HINT)


CALLBACK_ON_HANGUP = Option(
    Record(
        {
            "when": Option(
                Text(choices=(AUTOMATIC, OPTED_IN), what="when"),
                "`automatic`: every caller with a usable caller ID. `opted_in`: only callers who opted in "
                "earlier in the call (a `callback` step with `when: on_hangup` for this queue), on the number "
                "they gave.",
                required=True,
            ),
            "min_wait": Option(Duration(), "Callers who hung up sooner are not called back.", 0.0),
        },
        factory=HangupCallback,
        what="callback on hang-up",
    ),
    "Call back callers who hang up while waiting in the queue; they keep their place (the time they joined). "
    "The number is normalised with `queues.<queue>.callback.country`; anonymous callers are never called back.",
)


class Queue(HandOffStep):
    kind = "queue"
    summary = (
        "Ends the IVR session and puts the caller in an Asterisk queue. Before that it can check `overflow` "
        "rules (the first that matches goes elsewhere, joins another queue or offers choices) and `announce` the "
        "caller's position and estimated wait. When the queue gives the call back (timeout, full, empty, an exit "
        "key…) the flow resumes at the step named in `outcomes`; without one the call ends with outcome "
        "`queue-<status>`. An answered call ends the flow."
    )
    body = QUEUE_BODY
    options = {
        "announce": Option(
            ANNOUNCE_FIELD,
            "Said just before the caller joins: position and estimated wait (see docs/estimator.md). Nothing is "
            "said to a caller who is next, and a position is never announced higher than one the caller heard.",
        ),
        "overflow": Option(
            OverflowRules(OVERFLOW_ACTIONS),
            "Rules checked in order before joining; the first whose conditions all hold acts. Conditions under "
            "`when`: position_over, estimate_over, waiting_over, logged_in_below, ready_below, full, closed "
            "(a schedule); `if`: a flow expression. Actions: goto, queue, offer.",
            [],
        ),
        "outcomes": Option(
            MapOf(_Outcome(), StepRef(), "queue outcomes"),
            f"Where the flow resumes for each queue outcome ({', '.join(QUEUE_OUTCOMES)}) or exit-key outcome "
            "(from the flow's `queues.<queue>.exit_keys`).",
            {},
        ),
        "callback_on_hangup": CALLBACK_ON_HANGUP,
    }
    example = """\
support_queue:
  queue: {name: support, timeout: 10m}
  announce: {position: true, wait: true, estimator: position, wording: about, min_answered: 5}
  overflow:
    - when: {ready_below: 1, logged_in_below: 1}
      goto: closed_message
    - when: {estimate_over: 15m}
      offer: {prompt: long-wait-options, choices: {"1": keep, "2": goodbye}}
  outcomes: {timeout: offer_callback, joinempty: closed_message, callback: offer_callback}
  callback_on_hangup: {when: automatic, min_wait: 2m}
"""

    @property
    def spec(self) -> QueueSpec:
        return self.value if isinstance(self.value, QueueSpec) else _spec(self.value)

    @property
    def rules(self) -> list[Rule]:
        rules: list[Rule] = self.settings.get("overflow") or []
        return rules

    def overflow_queues(self) -> list[tuple[QueueSpec, Location]]:
        """The queues overflow rules send callers to, with where each rule is written (for the compiler)."""
        return [(self._queue_of(rule.value), rule.location) for rule in self.rules if rule.action == "queue"]

    def problems(self, flow: Flow) -> list[Problem]:
        """What ``ivrkit check`` can tell about the rules before any call."""
        settings = flow.queues.get(self.spec.name)
        return problems(self.rules, flow.schedules, settings.max_callers if settings else 0, self.spec.name)

    # -- on a call ------------------------------------------------------------------------------------------

    def run(self, call: CallContext) -> Transition:
        """Announce and check the overflow rules, then hand off; resumed, map the outcome (the base class)."""
        if call.resumed_outcome is not None:
            return super().run(call)
        spec = self.spec
        if not self.rules and self.settings.get("announce") is None:
            # nothing to say, nothing to decide: the figures are not read (a round trip to Asterisk saved per
            # call); the join is still logged, so this queue's answered waits teach the estimator
            return self._join(call, spec, UNREAD)
        stats = call.world.queue(spec.name, call.channel)
        plan = self._plan(call, spec, stats)
        rule = self._overflow(call, stats, plan)
        if rule is None:
            return self._join(call, spec, plan)
        call.log("overflow", rule=rule.describe(), action=rule.action)
        if rule.action == "goto":
            return GoTo(rule.value)
        if rule.action == "queue":
            other = self._queue_of(rule.value)
            return self._join(call, other, self._plan(call, other, call.world.queue(other.name, call.channel)))
        self._say(call, plan)  # the offer comes after the caller heard the wait
        choice = ask(call, rule.value)
        if isinstance(choice, GoTo) and choice.step == KEEP:
            return self._join(call, spec, plan, announced=True)
        return choice

    def _queue_of(self, value: Any) -> QueueSpec:
        """An overflow `queue:` value: a bare name keeps this step's timeout and priority."""
        return value if isinstance(value, QueueSpec) else replace(self.spec, name=value)

    def _plan(self, call: CallContext, spec: QueueSpec, stats: QueueStats) -> Announcement:
        settings = call.flow.queues.get(spec.name)
        announce: AnnounceSpec | None = self.settings.get("announce")
        plan = announcement(
            announce, stats, heard_position=call.state.position, wrapup=settings.wrapup if settings else 0.0
        )
        estimate = plan.estimate
        call.log("estimate", queue=spec.name, position=plan.position, seconds=estimate.seconds,
                 method=estimate.method, said=plan.said, why=estimate.reason or None)
        return plan

    def _overflow(self, call: CallContext, stats: QueueStats, plan: Announcement) -> Rule | None:
        if not self.rules:
            return None
        settings = call.flow.queues.get(self.spec.name)
        situation = Situation(
            stats, plan.position, plan.estimate, call.now(), settings.max_callers if settings else 0,
            call.flow.schedules,
        )
        return first_match(self.rules, situation, call.scope)

    def _say(self, call: CallContext, plan: Announcement) -> None:
        if plan.said_position:
            call.state.position = plan.position
        call.play(plan.segments)

    def _join(self, call: CallContext, spec: QueueSpec, plan: Announcement, announced: bool = False) -> HandOff:
        if not announced:
            self._say(call, plan)
        now = call.now()
        call.world.queue_joined(
            QueueJoin(call.channel.info.uniqueid, call.flow.name, spec.name, plan.position, plan.estimate.seconds,
                      plan.said, plan.estimate.method, now)
        )
        call.state.queue, call.state.queued_at = spec.name, now.timestamp()
        call.state.joined.setdefault(spec.name, now.timestamp())  # a callback keeps the first place in the line
        return self.hand_off_to(spec)

    @staticmethod
    def hand_off_to(spec: QueueSpec) -> HandOff:
        """The dialplan's instructions for a queue."""
        params = {"priority": str(spec.priority)}
        if spec.timeout is not None:
            params["timeout"] = str(int(spec.timeout))
        return HandOff("queue", spec.name, params)

    def returned(self, call: CallContext, outcome: str) -> None:
        """Report the wait: Asterisk's ``QUEUEWAIT`` (else the time since the hand-off), and how it ended."""
        state = call.state
        if state.queue is None:
            return
        channel = call.channel
        now = call.now()
        wait = _duration(channel, "QUEUEWAIT")
        if wait is None:
            wait = max(0.0, now.timestamp() - (state.queued_at or now.timestamp()))
        talk = None
        result = outcome
        if outcome == HANGUP:  # answered, or hung up waiting: Queue() sets ANSWEREDTIME to 0 when unanswered
            talk = _duration(channel, "ANSWEREDTIME") or None
            result = ABANDONED if talk is None else ANSWERED
        call.log("queue-left", queue=state.queue, wait=round(wait, 3), result=result, talk=talk)
        call.world.queue_left(QueueExit(channel.info.uniqueid, call.flow.name, state.queue, wait, result, talk, now))
        if result == ABANDONED and self.settings.get("callback_on_hangup") is not None:
            self._callback_on_hangup(call, state.queue, wait, now)
        state.queue = state.queued_at = None

    def _callback_on_hangup(self, call: CallContext, queue: str, wait: float, now: dt.datetime) -> None:
        """Register the callback of a caller who hung up waiting, as ``callback_on_hangup`` says. The channel is
        dead: nothing is said, and whatever stops it is logged (``callback-skipped``)."""
        rule: HangupCallback = self.settings["callback_on_hangup"]
        state = call.state
        if wait < rule.min_wait:
            call.log("callback-skipped", queue=queue, why=f"waited {wait:.0f}s, less than {rule.min_wait:g}s")
            return
        opt_in = state.callback if state.callback is not None and state.callback.queue == queue else None
        if opt_in is not None:
            number, reason, origin = opt_in.number, opt_in.reason, Origin.OPT_IN
        elif rule.when == OPTED_IN:
            call.log("callback-skipped", queue=queue, why="the caller did not opt in")
            return
        else:
            try:
                number = from_caller_id(call.channel.info.caller_number, callback_settings(call.flow, queue).country)
            except UnusableNumber as error:
                call.log("callback-skipped", queue=queue, why=str(error))
                return
            reason, origin = None, Origin.AUTOMATIC
        joined = state.joined.get(queue, state.queued_at)
        request = CallbackRequest(
            number, queue, call.flow.name, origin, call.channel.info.uniqueid,
            dt.datetime.fromtimestamp(joined, dt.UTC) if joined is not None else now, now, reason, call.language,
            self._priority(queue),
        )  # fmt: skip
        try:
            pending = call.world.request_callback(request)
        except CallbackNotRegistered as error:
            call.log("callback-unavailable", queue=queue, message=str(error))
            return
        state.callback = None
        call.log("callback-requested", id=pending.id, number=number, queue=queue, origin=str(origin), reason=reason,
                 new=pending.new)

    def _priority(self, queue: str) -> int:
        """The priority the caller waited with in ``queue`` (this step's, or an overflow rule's queue)."""
        specs = [self.spec, *(spec for spec, _ in self.overflow_queues())]
        return next((spec.priority for spec in specs if spec.name == queue), self.spec.priority)


def _duration(channel: Channel, name: str) -> float | None:
    """Seconds Asterisk left in ``<name>_MS`` (milliseconds) or ``<name>``; None when unset or not a number."""
    for variable, per_second in ((f"{name}_MS", 1000.0), (name, 1.0)):
        text = channel.get_variable(variable)
        try:
            value = float(text) / per_second if text else None
        except ValueError:
            continue
        if value is not None and math.isfinite(value) and value >= 0:
            return value
    return None
