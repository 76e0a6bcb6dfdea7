"""The answered callback leg: a FastAGI session at ``<flow>/callback?id=<id>&amd=<AMDSTATUS>``.

The dispatcher's AMI Originate runs the ``callback`` extension of the callback's flow context once the leg is
answered (``ivrkit/compiler/templates/extensions.conf.j2``); the dialplan opens this session and acts on what
it sets: ``IVRKIT_RESULT=queue`` (the customer joins ``IVRKIT_TARGET`` at ``IVRKIT_PRIORITY``), ``dial``
(agent-first: the dialplan dials ``IVRKIT_TARGET`` for ``IVRKIT_TIMEOUT`` seconds) or anything else (hang up).

- customer-first: the customer answered. A machine (AMD) ends the attempt as ``machine``. Otherwise they hear
  who is calling and are asked for the confirmation key; the key connects them (the callback is *connected*
  before they join the queue), silence or a hang-up ends the attempt as ``unconfirmed``.
- agent-first: an agent took the leg waiting in the queue. They hear whom they are calling, digit by digit,
  and the dialplan dials the customer; the dispatcher follows that Dial over AMI.

A session is refused (hang up, nothing recorded) unless the callback exists, belongs to this flow, is
*dialing*, and this channel is its attempt in flight: the dispatcher presets the channel's uniqueid with the
Originate's ``ChannelId``, so a stray or replayed leg cannot touch another attempt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ivrkit.callbacks.model import Callback, Mode, Result, State
from ivrkit.callbacks.settings import CallbackSettings
from ivrkit.engine.channel import Channel
from ivrkit.engine.journal import Journal
from ivrkit.engine.runner import OUTCOME_VARIABLE, RESULT_VARIABLE, TARGET_VARIABLE, first_language
from ivrkit.engine.transitions import CallerHungUp
from ivrkit.flow.model import Flow
from ivrkit.prompts.languages import LANGUAGE_CODE, lookup_order
from ivrkit.steps.queue import callback_settings

log = logging.getLogger("ivrkit.callbacks")

CALLBACK_ID = re.compile(r"[0-9a-f]{32}")
DIGITS = re.compile(r"[0-9]{1,64}")  # what SAY DIGITS says of an E.164 number, after its +
STEP = "callback"  # the journal's step name for everything this session does
PRIORITY_VARIABLE = "IVRKIT_PRIORITY"
TIMEOUT_VARIABLE = "IVRKIT_TIMEOUT"
MACHINE = "MACHINE"  # AMDSTATUS of an answering machine
AMD_HANGUP = "HANGUP"  # AMDSTATUS when the customer hung up during detection

# Session outcomes (the session metrics' label and the dialplan's IVRKIT_OUTCOME): a small fixed set.
CONNECTED = "callback-connected"  # customer-first: confirmed, joins the queue
UNCONFIRMED = "callback-unconfirmed"  # customer-first: no confirmation key
BY_MACHINE = "callback-machine"  # customer-first: AMD heard a machine
DIALLING = "callback-dial"  # agent-first: the agent was told, the dialplan dials the customer
HUNG_UP = "callback-hangup"  # the leg hung up during the session
REFUSED = "callback-refused"  # not the attempt in flight (or no callback store): nothing recorded


@runtime_checkable
class CallbackWorld(Protocol):
    """What the answered leg needs from the world (``ivrkit/callbacks/live.py`` implements it on the store)."""

    def callback(self, callback_id: str) -> Callback | None:
        """The callback as stored now; None when there is no such callback."""
        ...

    def callback_connected(self, callback_id: str, channel_id: str) -> bool:
        """Mark the callback connected (dialing → connected); False when ``channel_id`` is no longer its attempt
        in flight (cancelled meanwhile, or the dispatcher ended the attempt)."""
        ...

    def callback_attempt_ended(self, callback_id: str, channel_id: str, result: Result) -> bool:
        """End the attempt in flight with ``result`` (the world decides on a retry); False when ``channel_id``
        is no longer its attempt in flight."""
        ...


@dataclass(frozen=True)
class Answered:
    """How the session on a callback leg ended."""

    outcome: str  # one of the session outcomes above
    callback: Callback | None = None  # as read at the start (None: refused before it was found)
    ended: Result | None = None  # the result this session ended the attempt with (None: it did not)


def answer_callback(
    channel: Channel,
    flow: Flow,
    callback_id: str,
    amd: str,
    world: object,
    *,
    journal: Journal | None = None,
    prompt_language: Callable[[str, Sequence[str]], str] = first_language,
) -> Answered:
    """Run the session on an answered callback leg and leave the dialplan's instructions on the channel.

    ``world`` must be a :class:`CallbackWorld` (a server without a callback store refuses every leg). The
    queue's settings are read from ``flow`` (``queues.<queue>.callback``, else the defaults), exactly as the
    dispatcher read them to originate this leg, so the mode here is the mode it dialled in.
    """
    leg = _Leg(channel, flow, journal or Journal(channel.now()), prompt_language)
    leg.record("session", number=1, caller=channel.info.caller_number, resumed="callback")
    if not isinstance(world, CallbackWorld):
        return leg.refuse("this server keeps no callbacks (no callback store is configured)", callback_id)
    if not CALLBACK_ID.fullmatch(callback_id):
        return leg.refuse(f"'{callback_id[:40]}' is not a callback id", callback_id)
    callback = world.callback(callback_id)
    problem = _why_not(callback, flow.name, channel.info.uniqueid)
    if problem is not None:
        return leg.refuse(problem, callback_id)
    assert callback is not None
    settings = callback_settings(flow, callback.queue)
    leg.speak(callback.language)
    leg.record("callback", id=callback.id, mode=str(settings.mode), queue=callback.queue,
               attempt=callback.attempts, amd=amd or None)  # fmt: skip
    if settings.mode is Mode.AGENT_FIRST:
        return _tell_agent(leg, world, callback, settings)
    return _ask_customer(leg, world, callback, settings, amd)


def _why_not(callback: Callback | None, flow: str, uniqueid: str) -> str | None:
    """Why this leg must not act on ``callback``; None when it is the callback's attempt in flight."""
    if callback is None:
        return "no such callback"
    if callback.flow != flow:
        return f"callback {callback.id} belongs to flow '{callback.flow}', not '{flow}'"
    if callback.state is not State.DIALING:
        return f"callback {callback.id} is {callback.state}, not dialing"
    if not uniqueid or callback.channel_id != uniqueid:
        return (
            f"this channel ({uniqueid or 'no uniqueid'}) is not callback {callback.id}'s attempt in flight "
            f"({callback.channel_id or 'none'})"
        )
    return None


def _ask_customer(
    leg: _Leg, world: CallbackWorld, callback: Callback, settings: CallbackSettings, amd: str
) -> Answered:
    channel_id = leg.channel.info.uniqueid
    if amd in (MACHINE, AMD_HANGUP):
        result = Result.MACHINE if amd == MACHINE else Result.UNCONFIRMED
        recorded = world.callback_attempt_ended(callback.id, channel_id, result)
        return leg.end(BY_MACHINE if amd == MACHINE else HUNG_UP, "hangup", callback, result, recorded)
    try:
        leg.play(settings.prompt("intro"))
        confirmed = False
        for _ in range(max(1, settings.confirm_tries)):
            key = leg.play(settings.prompt("confirm"), escape=settings.confirm_key)
            if key is None:
                key = leg.wait_for_key(settings.confirm_seconds)
            if key == settings.confirm_key:
                confirmed = True
                break
    except CallerHungUp:
        recorded = world.callback_attempt_ended(callback.id, channel_id, Result.UNCONFIRMED)
        return leg.end(HUNG_UP, "hangup", callback, Result.UNCONFIRMED, recorded)
    if not confirmed:
        recorded = world.callback_attempt_ended(callback.id, channel_id, Result.UNCONFIRMED)
        leg.play_to_end(settings.prompt("goodbye"))
        return leg.end(UNCONFIRMED, "hangup", callback, Result.UNCONFIRMED, recorded)
    if not world.callback_connected(callback.id, channel_id):
        leg.play_to_end(settings.prompt("goodbye"))
        return leg.refuse("the attempt ended while the customer confirmed (cancelled, or ended by the dispatcher)",
                          callback.id, callback)  # fmt: skip
    if not leg.play_to_end(settings.prompt("connecting")):
        return leg.end(HUNG_UP, "hangup", callback)  # connected: the dispatcher sees the hang-up and completes it
    variables = {TARGET_VARIABLE: callback.queue, PRIORITY_VARIABLE: str(settings.priority)}
    return leg.end(CONNECTED, "queue", callback, variables=variables)


def _tell_agent(leg: _Leg, world: CallbackWorld, callback: Callback, settings: CallbackSettings) -> Answered:
    try:
        leg.play(settings.prompt("agent"))
        leg.say_digits(callback.number)
    except CallerHungUp:  # the agent left before the customer was dialled
        recorded = world.callback_attempt_ended(callback.id, leg.channel.info.uniqueid, Result.NO_AGENT)
        return leg.end(HUNG_UP, "hangup", callback, Result.NO_AGENT, recorded)
    variables = {TARGET_VARIABLE: callback.number, TIMEOUT_VARIABLE: str(int(settings.ring_timeout))}
    return leg.end(DIALLING, "dial", callback, variables=variables)


class _Leg:
    """The channel with the journal: what the engine's CallContext does for a flow, for this one session."""

    def __init__(
        self, channel: Channel, flow: Flow, journal: Journal, prompt_language: Callable[[str, Sequence[str]], str]
    ):
        self.channel = channel
        self.flow = flow
        self.journal = journal
        self.prompt_language = prompt_language
        self.language = flow.language  # the caller's language when they asked for the callback (else the flow's)

    def record(self, kind: str, /, **detail: Any) -> None:
        self.journal.record(self.channel.now(), kind, self.flow.name, STEP, **detail)

    def speak(self, language: str) -> None:
        """The leg speaks the language the caller's call spoke: its prompts are looked up in it first, and the PBX
        says the number, and the queue its announcements, in it (CHANNEL(language) outlives this session)."""
        if language and LANGUAGE_CODE.fullmatch(language):
            self.language = language
        if self.language != self.channel.info.language:
            self.channel.set_language(self.language)

    def play(self, prompt: str, escape: str = "") -> str | None:
        language = self.prompt_language(prompt, lookup_order(self.language, self.flow.language))
        key = self.channel.play_prompt(prompt, language, escape)
        self.record("played", prompt=prompt, language=language, interrupted_by=key)
        return key

    def play_to_end(self, prompt: str) -> bool:
        """Play a last prompt; False when the leg hung up first."""
        try:
            self.play(prompt)
        except CallerHungUp:
            self.record("hangup", by="caller")
            return False
        return True

    def say_digits(self, number: str) -> None:
        digits = number.lstrip("+")
        if not DIGITS.fullmatch(digits):
            self.record("error", message=f"the number '{number[:40]}' cannot be said digit by digit")
            return
        self.channel.say("digits", digits, self.language, "")
        self.record("played", say="digits", value=digits, language=self.language, interrupted_by=None)

    def wait_for_key(self, timeout: float) -> str | None:
        key = self.channel.wait_for_key(timeout)
        self.record("key" if key is not None else "silence", key=key, timeout=timeout)
        return key

    def refuse(self, why: str, callback_id: str, callback: Callback | None = None) -> Answered:
        log.warning("callback leg refused: %s; hanging up", why, extra={"callback": callback_id[:40]})
        self.record("refused", reason=why)
        return self.end(REFUSED, "hangup", callback)

    def end(
        self,
        outcome: str,
        action: str,
        callback: Callback | None,
        ended: Result | None = None,
        recorded: bool = False,
        variables: dict[str, str] | None = None,
    ) -> Answered:
        """Tell the dialplan what to do (this works on a hung-up channel too) and close the journal. ``ended``:
        the result this session ended the attempt with; ``recorded``: whether the world took it (False: the
        attempt was no longer in flight, the dispatcher or an operator ended it first)."""
        if ended is not None:
            self.record("attempt", result=str(ended), recorded=recorded)
            late = "" if recorded else " (not recorded: the attempt was no longer in flight)"
            log.info("callback attempt ended: %s%s", ended, late, extra={"callback": callback.id if callback else None})
        self.channel.set_variables({**(variables or {}), OUTCOME_VARIABLE: outcome, RESULT_VARIABLE: action})
        self.record("end", outcome=outcome)
        return Answered(outcome, callback, ended)
