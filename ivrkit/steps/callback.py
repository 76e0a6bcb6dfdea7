"""``callback``: the caller asks to be called back and keeps their place in line.

One conversation, each part optional by the options and the caller's situation:

1. A caller who already has an active callback for the queue hears ``existing`` (1 keeps it, 2 cancels it):
   outcome ``kept`` or ``cancelled``. Silence keeps it.
2. The number: the caller ID, confirmed (``number: confirm``: "we will call you back on 030123456; 1 to
   confirm, 2 for another number"), taken as it is (``caller``), or always typed (``ask``). Anonymous and
   unusable caller IDs are typed. Typed numbers are read back for confirmation and normalised to E.164 with the
   queue's ``callback.country`` (:mod:`ivrkit.callbacks.numbers`); an unusable one is re-asked, and after the
   tries the outcome is ``failed``.
3. An optional ``reason`` menu (a key per reason label).
4. ``when: now`` registers the callback (``World.request_callback``) and says the expected wait: outcome
   ``requested`` (``unavailable`` when the store fails). ``when: on_hangup`` only keeps the caller's opt-in in
   the call (``CallState.callback``): the queue step with ``callback_on_hangup: {when: opted_in}`` registers it
   if the caller hangs up waiting. Outcome ``opted-in``.

The caller keeps their place: the callback's ``joined_at`` is when the call first joined the queue (an exit key
brings callers here from the queue), else the time of the request. The flow's cancel key backs out at any point.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivrkit.callbacks.model import Origin
from ivrkit.callbacks.numbers import UnusableNumber, from_caller_id, from_keys, spoken_digits
from ivrkit.callbacks.settings import CallbackSettings
from ivrkit.engine.state import CallbackOptIn
from ivrkit.engine.transitions import Finish, GoTo, Transition
from ivrkit.engine.world import CallbackNotRegistered, CallbackRequest, PendingCallback
from ivrkit.flow.expressions import Template
from ivrkit.flow.fields import (
    DTMF_KEYS,
    INVALID,
    Duration,
    Field,
    Integer,
    Key,
    ListOf,
    MapOf,
    Option,
    ParseContext,
    Record,
    StepRef,
    Text,
)
from ivrkit.flow.segments import PromptName, PromptSegment, SaySegment, Segment, segments
from ivrkit.flow.source import Mapping, Node, Scalar
from ivrkit.queueing.announce import AnnounceSpec
from ivrkit.queueing.estimator import ESTIMATORS, estimate_wait
from ivrkit.queueing.wording import WORDINGS, prompts_for, wait_segments
from ivrkit.steps.base import Step
from ivrkit.steps.menu import MenuSpec, ask
from ivrkit.steps.queue import QUEUE_NAME, QUEUE_NAME_HINT, callback_settings
from ivrkit.steps.retries import Attempts, RetryPolicy

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext
    from ivrkit.flow.model import Flow

REQUESTED, OPTED_IN, KEPT, CANCELLED, FAILED, UNAVAILABLE = (
    "requested", "opted-in", "kept", "cancelled", "failed", "unavailable"
)  # fmt: skip
OUTCOMES = (REQUESTED, OPTED_IN, KEPT, CANCELLED, FAILED, UNAVAILABLE)
NOW, ON_HANGUP = "now", "on_hangup"
CONFIRM, ASK, CALLER = "confirm", "ask", "caller"
YES, OTHER = "1", "2"  # the number read back: 1 confirms, 2 gives another number
KEEP, CANCEL = "1", "2"  # an existing callback: 1 keeps it, 2 cancels it
NUMBER_TERMINATOR = "#"
MAX_NUMBER_DIGITS = 17  # 00 and the 15 digits of an E.164 number
PROMPTS = {
    "existing": "callback-existing",  # "You already asked us to call you back. To keep…, 1. To cancel…, 2."
    "kept": "callback-kept",
    "cancelled": "callback-cancelled",
    "confirm_number": "callback-confirm-number",  # "We will call you back on" + the number, digit by digit
    "confirm_or_change": "callback-confirm-or-change",  # "To confirm, press 1. For another number, press 2."
    "enter_number": "callback-enter-number",
    "invalid_number": "callback-invalid-number",
    "requested": "callback-requested",  # followed by the expected wait
    "opted_in": "callback-opted-in",
    "unavailable": "callback-unavailable",
}
_ONLY_WHEN = {"requested": NOW, "unavailable": NOW, "opted_in": ON_HANGUP}
REASON_LABEL = Text(
    re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}$"),
    what="reason label",
    hint="a reason has up to 40 letters, digits, spaces, '_', '.' and '-', e.g. billing",
)


@dataclass(frozen=True)
class WaitSpec:
    """How the expected wait is said after a request: the estimator and wording of a queue's ``announce``."""

    estimator: str = AnnounceSpec.estimator
    wording: str = AnnounceSpec.wording
    min_answered: int = AnnounceSpec.min_answered


@dataclass(frozen=True)
class CallbackSpec:
    queue: str
    when: str = NOW
    number: str = CONFIRM
    reason: MenuSpec | None = None
    wait: WaitSpec | None = field(default_factory=WaitSpec)  # None: the wait is not said
    priority: int = 0
    prompts: dict[str, str] = field(default_factory=dict)

    def prompt(self, role: str) -> list[Segment]:
        return [PromptSegment(self.prompts.get(role, PROMPTS[role]))]

    def roles(self) -> list[str]:
        """The prompt roles this step can play."""
        return [role for role in PROMPTS if _ONLY_WHEN.get(role, self.when) == self.when]


def flow_countries(flow: Flow) -> list[str | None]:
    """The countries the flow's callback settings read numbers with, each once (None: international only)."""
    countries = [s.callback.country for s in flow.queues.values() if s.callback is not None and s.callback.country]
    return [*dict.fromkeys(countries), None]


# -- the YAML ---------------------------------------------------------------------------------------------


def _retries(kind: str) -> Option:
    record: Record[RetryPolicy] = Record(
        {
            "retries": Option(Integer(0, 20), "How many times the caller is asked again (default: the flow's)."),
            "reprompt": Option(segments(), "What is played instead of the prompt on every retry."),
            "reprompts": Option(ListOf(segments(), single=False, min_items=1),
                                "Escalating re-prompts; the last one repeats."),
        },
        factory=RetryPolicy,
        what=f"{kind} handling",
    )
    return Option(record, f"What to do on {kind.replace('_', '-')}: retries and re-prompts.", RetryPolicy())


REASON: Record[MenuSpec] = Record(
    {
        "prompt": Option(segments(), "The question, e.g. 'for a billing question press 1'.", required=True),
        "choices": Option(MapOf(Key(), REASON_LABEL, "reasons (key: label)"),
                          'Each key and the reason it stands for; quote "*" and "#".', required=True),
        "timeout": Option(Duration(), "How long to wait for a key (default: the flow's `defaults.timeout`)."),
        "no_input": _retries("no_input"),
        "invalid": _retries("invalid"),
    },
    factory=MenuSpec,
    what="reason menu",
)
WAIT: Record[WaitSpec] = Record(
    {
        "estimator": Option(Text(choices=tuple(ESTIMATORS), what="estimator"),
                            "How the wait is estimated (as a queue step's `announce`).", WaitSpec.estimator),
        "wording": Option(Text(choices=WORDINGS, what="wording"), "How the wait is said: about, less_than, range.",
                          WaitSpec.wording),
        "min_answered": Option(Integer(0, 10000), "Recent answered calls a number needs; with fewer the caller "
                               "hears `wait-longer-than-usual`.", WaitSpec.min_answered),
    },
    factory=WaitSpec,
    what="wait announcement",
)


class _WaitField(Field[WaitSpec | None]):
    """``wait: false`` (say nothing), ``true`` (the defaults) or {estimator, wording, min_answered}."""

    type_name = "true, false or {estimator, wording, min_answered}"
    record = WAIT

    def parse(self, node: Node, ctx: ParseContext) -> WaitSpec | None:
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return WaitSpec() if node.value else None
        return WAIT.parse(node, ctx)

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "boolean"}, WAIT.json_schema()]}


def _spec(queue: str, when: str, number: str, reason: MenuSpec | None, wait: WaitSpec | None, priority: int,
          prompts: dict[str, str]) -> CallbackSpec:
    return CallbackSpec(queue, when, number, reason, wait, priority, prompts)


def _refer_prompts(spec: CallbackSpec, node: Node, ctx: ParseContext) -> CallbackSpec:
    """Record the default prompts the step may play (the ones named in `prompts:` are recorded as parsed)."""
    for role in spec.roles():
        if role not in spec.prompts:
            ctx.refer("prompt", PROMPTS[role], node.location)
    if spec.when == NOW and spec.wait is not None:
        for prompt in prompts_for(spec.wait.wording):
            ctx.refer("prompt", prompt, node.location)
    return spec


QUEUE_TEXT = Text(QUEUE_NAME, what="queue name", hint=QUEUE_NAME_HINT)
BODY: Record[CallbackSpec] = Record(
    {
        "queue": Option(QUEUE_TEXT, "The queue whose agents call back (its `queues.<queue>.callback` settings apply).",
                        required=True),
        "when": Option(
            Text(choices=(NOW, ON_HANGUP), what="when"),
            "`now`: register the callback now; the caller may hang up and keeps their place. `on_hangup`: the "
            "caller opts in; the queue step (`callback_on_hangup: {when: opted_in}`) registers it if they hang up "
            "while waiting.",
            NOW,
        ),
        "number": Option(
            Text(choices=(CONFIRM, ASK, CALLER), what="number mode"),
            "`confirm`: read the caller ID back, 1 confirms, 2 gives another number. `ask`: always type one. "
            "`caller`: take the caller ID. Anonymous or unusable caller IDs are always typed.",
            CONFIRM,
        ),
        "reason": Option(REASON, "A menu of reasons (key: label) asked before the callback is registered."),
        "wait": Option(_WaitField(), "How the expected wait is said after a request (`false`: not at all).",
                       WaitSpec()),
        "priority": Option(Integer(0, 100), "Order among the queue's callbacks (higher first), like a queue step's "
                           "priority.", 0),
        "prompts": Option(
            MapOf(Text(choices=tuple(PROMPTS), what="prompt role"), PromptName(), "prompts by role"),
            "Other prompts instead of the defaults, by role: "
            + ", ".join(f"`{role}` (`{prompt}`)" for role, prompt in PROMPTS.items()) + ".",
            {},
        ),
    },
    factory=_spec,
    what="callback",
    check=_refer_prompts,
)


class _Body(Field[CallbackSpec]):
    """A queue name, or the mapping."""

    type_name = "queue name or mapping"
    record = BODY

    def parse(self, node: Node, ctx: ParseContext) -> CallbackSpec:
        if isinstance(node, Mapping):
            return BODY.parse(node, ctx)
        queue: Any = QUEUE_TEXT.parse(node, ctx)
        return INVALID if queue is INVALID else _refer_prompts(CallbackSpec(queue), node, ctx)

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [QUEUE_TEXT.json_schema(), BODY.json_schema()]}


# -- the step ---------------------------------------------------------------------------------------------


class Callback(Step):
    kind = "callback"
    summary = (
        "Arranges a callback from `queue`'s agents; the caller keeps their place in line. A caller who already "
        "has one hears it and keeps (1) or cancels (2) it. The number is the caller ID, confirmed (`number: "
        "confirm`), or typed (`ask`, and always for anonymous callers), validated and normalised to E.164 with "
        "`queues.<queue>.callback.country`. `when: now` registers it and says the expected wait; `when: "
        "on_hangup` only notes the opt-in, and the queue step registers it if the caller hangs up waiting. "
        "Outcomes: requested, opted-in, kept, cancelled, failed (no usable number), unavailable (the callback "
        "store failed); each goes to its step in `outcomes`, else to `next`, else the call ends with outcome "
        "`callback-<outcome>`."
    )
    body = _Body()
    options = {
        "outcomes": Option(
            MapOf(Text(choices=OUTCOMES, what="callback outcome"), StepRef(), "callback outcomes"),
            f"Where the call goes for each outcome ({', '.join(OUTCOMES)}).",
            {},
        ),
        "next": Option(StepRef(), "Where the call goes for an outcome not in `outcomes`."),
    }
    example = """\
offer_callback:
  callback:
    queue: support
    number: confirm
    reason: {prompt: callback-reason, choices: {"1": billing, "2": technical}}
    wait: {wording: about}
  outcomes: {cancelled: main_menu, failed: operator, unavailable: support_queue}
  next: callback_goodbye
"""

    @property
    def spec(self) -> CallbackSpec:
        spec: CallbackSpec = self.value
        return spec

    @property
    def possible_outcomes(self) -> tuple[str, ...]:
        spec = self.spec
        return tuple(o for o in OUTCOMES if o not in ((OPTED_IN,) if spec.when == NOW else (REQUESTED, UNAVAILABLE)))

    @property
    def ends_call(self) -> bool:  # type: ignore[override]
        """True when an outcome that can happen has no step: the call then ends there."""
        mapped = self.settings.get("outcomes") or {}
        return self.next is None and any(outcome not in mapped for outcome in self.possible_outcomes)

    @property
    def takes_input(self) -> bool:  # type: ignore[override]
        """Confirming a number or choosing a reason waits for a key; `number: caller` may run through."""
        return self.spec.number != CALLER or self.spec.reason is not None

    def run(self, call: CallContext) -> Transition:
        outcome = self._converse(call, self.spec)
        call.log("callback", outcome=outcome)
        target = (self.settings.get("outcomes") or {}).get(outcome) or self.next
        return GoTo(target) if target else Finish(f"callback-{outcome}")

    # -- the conversation -----------------------------------------------------------------------------------

    def _converse(self, call: CallContext, spec: CallbackSpec) -> str:
        settings = callback_settings(call.flow, spec.queue)
        own = self._caller_number(call, settings.country)
        if own is not None and spec.number != ASK:
            existing = call.world.pending_callback(own, spec.queue)
            if existing is not None:
                return self._existing(call, spec, existing)
        number = self._number(call, spec, own, settings.country)
        if number is None:
            return FAILED
        if number != own or spec.number == ASK:
            existing = call.world.pending_callback(number, spec.queue)
            if existing is not None:
                return self._existing(call, spec, existing)
        reason = self._reason(call, spec.reason) if spec.reason is not None else None
        if spec.when == ON_HANGUP:
            call.state.callback = CallbackOptIn(spec.queue, number, reason)
            call.log("callback-opted-in", number=number, queue=spec.queue, reason=reason)
            call.play(spec.prompt("opted_in"))
            return OPTED_IN
        return self._request(call, spec, number, reason, settings)

    @staticmethod
    def _caller_number(call: CallContext, country: str | None) -> str | None:
        try:
            return from_caller_id(call.channel.info.caller_number, country)
        except UnusableNumber as error:
            call.log("callback-caller-id", usable=False, why=error.reason)
            return None

    def _existing(self, call: CallContext, spec: CallbackSpec, existing: PendingCallback) -> str:
        call.log("callback-existing", id=existing.id, queue=existing.queue, state=existing.state)
        if self._keys(call, spec.prompt("existing"), KEEP + CANCEL) == CANCEL:
            cancelled = call.world.cancel_callback(existing.id, "caller")
            call.log("callback-cancelled", id=existing.id, number=existing.number, queue=existing.queue,
                     cancelled=cancelled)
            call.forget_callback()
            call.play(spec.prompt("cancelled"))
            return CANCELLED
        call.log("callback-kept", id=existing.id)
        call.play(spec.prompt("kept"))
        return KEPT

    def _number(self, call: CallContext, spec: CallbackSpec, own: str | None, country: str | None) -> str | None:
        """The number to call back, confirmed by the caller; None when the tries are used up."""
        if own is not None and spec.number == CALLER:
            return own
        candidate = own if spec.number == CONFIRM else None
        changes = 0
        while True:
            if candidate is None:
                candidate = self._typed(call, spec, country)
                if candidate is None:
                    return None
            readback = [*spec.prompt("confirm_number"), _digits(spoken_digits(candidate, country)),
                        *spec.prompt("confirm_or_change")]
            answer = self._keys(call, readback, YES + OTHER)
            if answer == YES:
                call.log("callback-number", number=candidate, caller_id=candidate == own)
                return candidate
            if answer is None:
                return None
            changes += 1
            if changes > call.defaults.retries + 1:
                call.log("callback-number", number=None, why="the caller changed the number too often")
                return None
            candidate = None

    def _typed(self, call: CallContext, spec: CallbackSpec, country: str | None) -> str | None:
        """A number typed by the caller, valid and in E.164; None when the tries are used up."""
        enter = spec.prompt("enter_number")
        attempts = Attempts(RetryPolicy(), RetryPolicy(reprompt=[*spec.prompt("invalid_number"), *enter]),
                            call.defaults.retries)
        while True:
            digits = self._entry(call, attempts.next_prompt(enter))
            if digits is None:
                problem, why = "no_input", None
            else:
                try:
                    return from_keys(digits, country)
                except UnusableNumber as error:
                    problem, why = "invalid", error.reason
            call.log(problem, digits=digits or "", tries=attempts.counts[problem] + 1, why=why)
            if attempts.fail(problem):
                return None

    @staticmethod
    def _entry(call: CallContext, prompt: list[Segment]) -> str | None:
        """Digits up to ``#``, a pause or the longest number; None when the caller typed nothing."""
        digits = ""
        key = call.play(prompt, escape=DTMF_KEYS)
        while True:
            if key is None:
                key = call.wait_for_key(call.defaults.inter_digit_timeout if digits else call.defaults.timeout)
            if key is None or key == NUMBER_TERMINATOR:
                return digits or None
            digits += key
            if len(digits) >= MAX_NUMBER_DIGITS:
                return digits
            key = None

    @staticmethod
    def _keys(call: CallContext, prompt: list[Segment], keys: str) -> str | None:
        """Ask for one of ``keys`` with the flow's retries; None when the caller never gave one."""
        attempts = Attempts(RetryPolicy(), RetryPolicy(), call.defaults.retries)
        while True:
            key = call.play(prompt, escape=DTMF_KEYS)
            if key is None:
                key = call.wait_for_key(call.defaults.timeout)
            if key is not None and key in keys:
                call.log("choice", key=key)
                return key
            kind = "no_input" if key is None else "invalid"
            call.log(kind, key=key, tries=attempts.counts[kind] + 1)
            if attempts.fail(kind):
                return None

    @staticmethod
    def _reason(call: CallContext, menu: MenuSpec) -> str | None:
        chosen = ask(call, menu)  # the menu's loop: a choice is a GoTo to its label, no choice a Finish
        reason = chosen.step if isinstance(chosen, GoTo) else None
        call.log("callback-reason", reason=reason)
        return reason

    def _request(self, call: CallContext, spec: CallbackSpec, number: str, reason: str | None,
                 settings: CallbackSettings) -> str:
        now = call.now()
        joined = call.state.joined.get(spec.queue)
        request = CallbackRequest(
            number, spec.queue, call.flow.name, Origin.REQUEST, call.channel.info.uniqueid,
            dt.datetime.fromtimestamp(joined, dt.UTC) if joined is not None else now, now, reason, call.language,
            spec.priority,
        )  # fmt: skip
        try:
            pending = call.world.request_callback(request)
        except CallbackNotRegistered as error:
            call.log("callback-unavailable", message=str(error))
            call.play(spec.prompt("unavailable"))
            return UNAVAILABLE
        call.forget_callback()
        call.log("callback-requested", id=pending.id, number=number, queue=spec.queue, origin=str(Origin.REQUEST),
                 reason=reason, new=pending.new)
        if not pending.new:  # registered a moment ago (another call of the same caller): that one stays
            call.play(spec.prompt("kept"))
            return KEPT
        call.play([*spec.prompt("requested"), *self._wait(call, spec)])
        return REQUESTED

    @staticmethod
    def _wait(call: CallContext, spec: CallbackSpec) -> list[Segment]:
        """The expected wait for the queue as it is now, worded like a queue announcement."""
        if spec.wait is None:
            return []
        stats = call.world.queue(spec.queue, call.channel)
        settings = call.flow.queues.get(spec.queue)
        estimate = estimate_wait(stats, spec.wait.estimator, wrapup=settings.wrapup if settings else 0.0,
                                 min_answered=spec.wait.min_answered)
        call.log("estimate", queue=spec.queue, seconds=estimate.seconds, method=estimate.method,
                 why=estimate.reason or None)
        return wait_segments(estimate.seconds, spec.wait.wording)


def _digits(text: str) -> SaySegment:
    return SaySegment("digits", Template.compile(text))
