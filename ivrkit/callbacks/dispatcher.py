"""The callback dispatcher: rings callers back when an agent is free, in the order they first joined the queue.

One thread, on one :class:`~ivrkit.ami.session.AmiSession`. What it promises, and how:

- **Never made twice.** An attempt is recorded (``store.start_attempt``: pending → dialing, with the channel id
  it will preset) *before* its ``Originate`` is sent, and an Originate is never sent again on its own: an
  attempt whose fate is unknown is resolved by asking Asterisk which channels exist. A channel named like an
  attempt (``ivrkit-cb-<id>-<n>``) that the store does not know as the attempt in flight is hung up.
- **Never lost.** After every (re)connect, before dialling anything, each attempt in flight is checked against
  ``CoreShowChannels``: a live channel is watched on; a gone one ends its attempt (connected → completed,
  dialing → ``interrupted``, retried by policy). Events missed while AMI was down are gone for good; this is
  why the check runs. An attempt whose ``OriginateResponse`` never comes is checked the same way once its
  ring (or agent) timeout is well past.
- **Keeping places.** Per queue, agents that are ready (``QueueStatus``) minus the callbacks already under
  way minus callers who waited since before the callback's requester joined: that many callbacks are dialled,
  in ``store.due`` order (priority, then the time the requester joined).
- **Respecting the flow.** The queue's ``callback:`` settings in the callback's flow as loaded now (defaults
  when the flow has none); nothing is dialled while the settings' calling window (a schedule of the flow) is
  not open or the flow is in maintenance.

What Asterisk says (22.10, checked on the real PBX): ``ChannelId``/``OtherChannelId`` preset the uniqueids of
a Local channel's ``;1``/``;2`` halves. A Local ``;2`` that hangs up before answering makes the
``OriginateResponse`` ``Reason`` 0 (not 1), whatever the reason, so the ``;2`` half's ``Hangup`` ``Cause``
(17 busy, 19 no answer...) decides then; it arrives before the OriginateResponse, and the ``;1`` half's
Hangup after it. The Originate itself publishes a DialBegin/DialEnd with only ``DestUniqueid``; a DialEnd with
``Uniqueid`` = the attempt's channel is its ``;1`` half dialling (agent-first: the customer; customer-first:
app_queue ringing members, which the dispatcher ignores).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import queue
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ivrkit.ami.client import AmiConnectionLost, AmiError, AmiTimeout, HeaderValue, Message
from ivrkit.ami.session import AmiSession
from ivrkit.callbacks import policy
from ivrkit.callbacks.availability import Availability, parse_queue_status
from ivrkit.callbacks.model import IN_FLIGHT, Callback, Mode, Result, State
from ivrkit.callbacks.settings import CallbackSettings
from ivrkit.compiler.plan import CALLBACK_AGENT_EXTEN, CALLBACK_EXTEN, context_name
from ivrkit.steps.queue import callback_settings
from ivrkit.store.database import StoreError

if TYPE_CHECKING:
    from ivrkit.flow.model import Flow
    from ivrkit.store.callbacks import CallbackStore

log = logging.getLogger("ivrkit.callbacks.dispatcher")

CHANNEL_PREFIX = "ivrkit-cb-"
OTHER_HALF = "-2"  # OtherChannelId = channel id + this: the ;2 half of the Local channel
_CHANNEL = re.compile(rf"{CHANNEL_PREFIX}([0-9a-f]{{32}})-([0-9]+)(?:{OTHER_HALF})?")
_NUMBER = re.compile(r"\+?[0-9]{2,20}")
HANGUP_GRACE = 5.0  # seconds to wait for the OriginateResponse once the ;1 half hung up without one
STALE_MARGIN = 60.0  # seconds past an attempt's timeout before Asterisk is asked whether it still exists
DUE_BATCH = 50
STORE_RETRY = 5.0  # seconds before an attempt whose end the store refused is looked at again
ENDED_KEPT = 1000  # attempts ended here whose late events (Newchannel may trail the OriginateResponse) are ignored

# Hang-up causes (Q.850) of the ;2 half when the OriginateResponse says only "Reason: 0".
_BUSY_CAUSES = frozenset({17})
_NO_ANSWER_CAUSES = frozenset({16, 18, 19, 21})  # hung up while ringing, no user responding, no answer, rejected


class DispatchMetrics(Protocol):
    """What the dispatcher reports (``ivrkit.ops.metrics.ServerMetrics`` implements it)."""

    def callbacks_changed(self) -> None: ...

    def callback_attempt(self, result: Result) -> None: ...


def channel_id_for(callback_id: str, attempt: int) -> str:
    """The uniqueid an attempt presets on its ``;1`` half (``;2``: this + ``-2``).

    >>> channel_id_for("0" * 32, 2)
    'ivrkit-cb-00000000000000000000000000000000-2'
    """
    return f"{CHANNEL_PREFIX}{callback_id}-{attempt}"


def parse_channel_id(uniqueid: str) -> tuple[str, str] | None:
    """(callback id, the attempt's channel id) of an attempt's channel (either half), else None.

    >>> parse_channel_id("ivrkit-cb-" + "a" * 32 + "-3-2") == ("a" * 32, "ivrkit-cb-" + "a" * 32 + "-3")
    True
    >>> parse_channel_id("1700000000.12") is None
    True
    """
    match = _CHANNEL.fullmatch(uniqueid)
    if match is None:
        return None
    return match.group(1), channel_id_for(match.group(1), int(match.group(2)))


def cause_result(cause: str | None) -> Result | None:
    """What a hang-up cause says of an unanswered attempt; None when it says nothing (0 or missing).

    >>> cause_result("17"), cause_result("19"), cause_result("34"), cause_result("0")
    (<Result.BUSY: 'busy'>, <Result.NO_ANSWER: 'no-answer'>, <Result.FAILED: 'failed'>, None)
    """
    try:
        code = int(str(cause).strip())
    except ValueError:
        return None
    if code == 0:
        return None
    if code in _BUSY_CAUSES:
        return Result.BUSY
    if code in _NO_ANSWER_CAUSES:
        return Result.NO_ANSWER
    return Result.FAILED


def failure_result(mode: Mode, reason: str | None, cause: str | None) -> tuple[Result, str]:
    """The result of an Originate that failed, and its detail for the events.

    Customer-first: the ``Reason``, or for Reason 0 the ``;2`` half's hang-up cause. Agent-first: nobody took
    the callback (the wait in the queue ended or the Originate timed out), unless the ``;2`` half never ran.

    >>> failure_result(Mode.CUSTOMER_FIRST, "0", "17")
    (<Result.BUSY: 'busy'>, 'Originate reason 0, hang-up cause 17')
    >>> failure_result(Mode.CUSTOMER_FIRST, "3", "19")[0], failure_result(Mode.CUSTOMER_FIRST, "0", "0")[0]
    (<Result.NO_ANSWER: 'no-answer'>, <Result.FAILED: 'failed'>)
    >>> failure_result(Mode.AGENT_FIRST, "0", "16")[0], failure_result(Mode.AGENT_FIRST, "0", None)[0]
    (<Result.NO_AGENT: 'no-agent'>, <Result.FAILED: 'failed'>)
    """
    detail = f"Originate reason {reason}" + (f", hang-up cause {cause}" if cause is not None else "")
    code = (reason or "").strip()
    if mode is Mode.AGENT_FIRST:
        if code in ("0", "") and cause_result(cause) is None:
            return Result.FAILED, detail + ": the callback-agent extension did not run"
        return Result.NO_AGENT, detail
    if code in ("0", "1"):
        by_cause = cause_result(cause)
        if by_cause is not None:
            return by_cause, detail
    return policy.originate_result(reason), detail


def settings_in(flows: Mapping[str, Flow], flow: str, queue: str) -> CallbackSettings:
    """A callback's queue settings for ending an attempt: in its flow, else in a flow that has ``callback:``
    settings for the queue (its own flow was removed meanwhile), else the defaults."""
    if flow in flows:
        return callback_settings(flows[flow], queue)
    for other in flows.values():
        declared = other.queues.get(queue)
        if declared is not None and declared.callback is not None:
            return declared.callback
    return CallbackSettings()


def originate_headers(
    callback: Callback, flow: Flow, settings: CallbackSettings, channel_id: str, action_id: str
) -> list[tuple[str, HeaderValue]]:
    """The ``Originate`` of one attempt (the compiled dialplan's contract: ``callback`` and ``callback-agent``
    in the flow's context)."""
    context = context_name(flow.name)
    if settings.mode is Mode.AGENT_FIRST:
        channel, timeout = f"Local/{CALLBACK_AGENT_EXTEN}@{context}/n", settings.agent_timeout
    else:
        channel, timeout = f"Local/{callback.number}@{flow.dialplan.numbers_context}/n", settings.ring_timeout
    amd = settings.detect_machine and settings.mode is Mode.CUSTOMER_FIRST
    return [
        ("Channel", channel),
        ("Context", context),
        ("Exten", CALLBACK_EXTEN),
        ("Priority", "1"),
        ("Timeout", str(int(timeout * 1000))),
        ("CallerID", settings.caller_id),
        ("Async", "true"),
        ("ActionID", action_id),
        ("ChannelId", channel_id),
        ("OtherChannelId", channel_id + OTHER_HALF),
        ("Variable", [
            f"IVRKIT_CALLBACK={callback.id}",
            f"IVRKIT_CB_AMD={1 if amd else 0}",
            f"IVRKIT_CB_QUEUE={callback.queue}",
            f"IVRKIT_CB_PRIORITY={settings.priority}",
            f"IVRKIT_CB_WAIT={int(settings.agent_timeout)}",
        ]),
    ]  # fmt: skip


@dataclass
class _Attempt:
    """An attempt in flight, as this dispatcher knows it."""

    callback_id: str
    channel_id: str
    action_id: str | None
    queue: str
    mode: Mode
    deadline: float | None = None  # monotonic: ask Asterisk whether the channel still exists after this
    answered: bool = False  # OriginateResponse Success seen: the answered leg ran
    cause: str | None = None  # the first hang-up cause other than 0 of either half
    hangup: Message | None = None  # the ;1 half's Hangup, while the OriginateResponse is awaited
    failure: Message | None = None  # an OriginateResponse Failure, while a hang-up cause is awaited
    grace: float | None = None  # monotonic: decide with what is known after this
    with_agent: bool = False  # an agent took it (AgentConnect): no longer waiting for one

    @property
    def channels(self) -> tuple[str, str]:
        return self.channel_id, self.channel_id + OTHER_HALF


class Dispatcher:
    """Dials due callbacks when agents are free and follows each attempt to its end; see the module docstring.

    ``flows`` gives the flows in service (re-read every round, so a reload applies to the next attempt);
    ``maintenance(flow)`` the flow's maintenance mode or None; ``metrics`` hears of every change. Run one
    dispatcher per store (:class:`DispatcherLock`): reconciling takes an attempt it does not watch itself for
    one that was lost.
    """

    def __init__(
        self,
        store: CallbackStore,
        flows: Callable[[], Mapping[str, Flow]],
        ami: AmiSession,
        clock: Callable[[], float] = time.time,
        maintenance: Callable[[str], str | None] = lambda flow: None,
        metrics: DispatchMetrics | None = None,
        poll: float = 1.0,
    ):
        self.store = store
        self.flows = flows
        self.ami = ami
        self.clock = clock
        self.maintenance = maintenance
        self.metrics = metrics
        self.poll = poll
        self._inbox: queue.SimpleQueue[Message | None] = queue.SimpleQueue()  # events; None wakes
        self._watch: dict[str, _Attempt] = {}  # channel id → attempt
        self._ended: deque[str] = deque(maxlen=ENDED_KEPT)  # channel ids of attempts ended here, latest last
        self._reconciled = 0  # the AMI connection whose channels were last checked against the store
        self._reconciled_changed = threading.Condition()
        self._notes: dict[str, str] = {}  # what was logged about a flow/queue, to log changes only
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._removers: list[Callable[[], None]] = []
        self._next_round = 0.0

    # -- lifetime -----------------------------------------------------------------------------------------

    def start(self) -> Dispatcher:
        """Listen to the session and start the thread (the session may be started before or after)."""
        if self._thread is not None:
            raise RuntimeError("this dispatcher is already started; create another Dispatcher")
        self._removers = [self.ami.add_listener(self._inbox.put), self.ami.on_connected(lambda generation: self.wake())]
        self._thread = threading.Thread(target=self._run, name="callback-dispatcher", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Look for due callbacks now instead of at the next poll (a new request, an attempt ended)."""
        self._inbox.put(None)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop dialling and watching; attempts in flight stay in the store for the next start to reconcile.
        False when the thread did not end within ``timeout`` (an AMI action or store write still running)."""
        self._stopping.set()
        self.wake()
        for remove in self._removers:
            remove()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def watching(self) -> list[str]:
        """Channel ids of the attempts being followed."""
        return sorted(self._watch)

    @property
    def reconciled(self) -> int:
        """The AMI connection (its generation) on which the attempts in flight were last checked; the dispatcher
        dials only when this is the current connection."""
        return self._reconciled

    def wait_reconciled(self, generation: int = 1, timeout: float = 10.0) -> bool:
        """Until the attempts in flight were checked on connection ``generation`` or a later one."""
        with self._reconciled_changed:
            return self._reconciled_changed.wait_for(lambda: self._reconciled >= generation, timeout)

    # -- the thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._step()
                except Exception:  # the dispatcher must outlive a bad event, a store hiccup or a bug
                    log.exception("callback dispatcher: unexpected error; going on")
                    self._stopping.wait(self.poll)
        finally:
            release = getattr(getattr(self.store, "database", None), "release", None)
            if callable(release):
                release()  # this thread's SQLite connection

    def _step(self) -> None:
        try:
            self._work()
        except (StoreError, sqlite3.Error) as error:
            self._note("store", f"the callback store failed ({error}); trying again", logging.ERROR)
            self._stopping.wait(self.poll)
        else:
            self._note("store", "")

    def _work(self) -> None:
        woken = self._take(self._timeout())
        if self._stopping.is_set():
            return
        generation = self.ami.generation
        if self.ami.connected and generation != self._reconciled:
            if not self._reconcile(generation):
                return
            woken = True
        self._expire()
        if self._reconciled == self.ami.generation and self.ami.connected:
            now = time.monotonic()
            if woken or now >= self._next_round:
                self._next_round = now + self.poll
                self._dispatch_round(self._reconciled)

    def _timeout(self) -> float:
        """How long to wait for events: until the next round, deadline or grace ends; while AMI is down (or not
        checked yet) only graces count, which need no AMI, and the wait is a poll at most."""
        now = time.monotonic()
        times = [now + self.poll, *(a.grace for a in self._watch.values() if a.grace is not None)]
        if self.ami.connected and self._reconciled == self.ami.generation:
            times += [self._next_round, *(a.deadline for a in self._watch.values() if a.deadline is not None)]
        return max(0.0, min(times) - now)

    def _take(self, timeout: float) -> bool:
        """Handle the events that came (waiting up to ``timeout`` for one); True when woken."""
        woken = False
        try:
            item = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return False
        while True:
            if item is None:
                woken = True
            elif not self._stopping.is_set():
                self._event(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return woken

    # -- reconciling --------------------------------------------------------------------------------------

    def _reconcile(self, generation: int) -> bool:
        """Check every attempt in flight against Asterisk's channels; True when done for ``generation``."""
        try:
            for callback in self.store.in_flight():
                if callback.channel_id and callback.channel_id not in self._watch:
                    self._watch[callback.channel_id] = self._attempt_of(callback)
            listing = self.ami.send_list("CoreShowChannels", generation=generation)
        except AmiConnectionLost:
            return False
        except AmiError as error:
            self._note("ami", f"cannot check the calls in flight ({error.response_message()}); nothing is dialled "
                       "until it works: give the AMI user write=reporting (CoreShowChannels)", logging.ERROR)
            return False
        self._note("ami", "")
        live = {event.get("Uniqueid", ""): event for event in listing.events}
        self._take(0)  # events that came before the list: they may end attempts the list no longer shows
        ended = 0
        for channel_id, attempt in list(self._watch.items()):
            first = live.get(channel_id)
            if first is not None:  # its name tells the mode it was dialled in, whatever the settings say now
                agent_first = first.get("Channel", "").startswith(f"Local/{CALLBACK_AGENT_EXTEN}@")
                attempt.mode = Mode.AGENT_FIRST if agent_first else Mode.CUSTOMER_FIRST
                continue
            if channel_id + OTHER_HALF in live:
                continue
            ended += 1
            self._gone(attempt, "after the AMI connection came back")
        log.info("checked the callbacks in flight against Asterisk: %d still up, %d ended", len(self._watch),
                 ended, extra={"generation": generation})  # fmt: skip
        with self._reconciled_changed:
            self._reconciled = generation
            self._reconciled_changed.notify_all()
        return True

    def _attempt_of(self, callback: Callback) -> _Attempt:
        mode = self._settings_of(callback).mode  # a guess: the live channel's name tells (see _reconcile)
        assert callback.channel_id is not None
        if callback.state is State.CONNECTED:  # answered: only its Hangup (or a reconnect) ends it
            return _Attempt(callback.id, callback.channel_id, callback.action_id, callback.queue, mode, answered=True)
        return _Attempt(callback.id, callback.channel_id, callback.action_id, callback.queue, mode,
                        deadline=time.monotonic() + self._timeout_of(callback) + STALE_MARGIN)  # fmt: skip

    def _gone(self, attempt: _Attempt, when: str) -> None:
        """The attempt's channels no longer exist and no event said how it ended."""
        callback = self.store.get(attempt.callback_id)
        if callback is None or callback.channel_id != attempt.channel_id or callback.state not in IN_FLIGHT:
            self._unwatch(attempt)
        elif callback.state is State.CONNECTED:
            self._finish(attempt, Result.ANSWERED, f"the call had ended {when}")
        elif attempt.failure is not None or attempt.hangup is not None:
            self._decide(attempt)
        else:
            self._finish(attempt, Result.INTERRUPTED, f"no channel {attempt.channel_id} in Asterisk {when}")

    def _expire(self) -> None:
        """Attempts whose last event did not come: decide with what is known, or ask Asterisk."""
        now = time.monotonic()
        for attempt in list(self._watch.values()):
            if attempt.grace is not None and now >= attempt.grace:
                self._decide(attempt)
        stale = [a for a in self._watch.values() if a.deadline is not None and now >= a.deadline]
        if not stale or not self.ami.connected:
            return
        try:
            live = {event.get("Uniqueid") for event in self.ami.send_list("CoreShowChannels").events}
        except AmiError as error:
            log.warning("cannot check %d overdue callback attempt(s): %s", len(stale), error)
            for attempt in stale:
                attempt.deadline = now + STALE_MARGIN
            return
        for attempt in stale:
            if attempt.channel_id in live or attempt.channel_id + OTHER_HALF in live:
                attempt.deadline = None if attempt.answered else now + STALE_MARGIN
            elif attempt.channel_id in self._watch:
                self._gone(attempt, "long after its timeout")

    # -- events -------------------------------------------------------------------------------------------

    def _event(self, event: Message) -> None:
        name = event.name
        if name == "OriginateResponse":
            for sent in list(self._watch.values()):
                if sent.action_id is not None and sent.action_id == event.action_id:
                    self._originate_response(sent, event)
                    return
            return
        uniqueid = event.get("Uniqueid", "")
        if not uniqueid.startswith(CHANNEL_PREFIX):
            return
        attempt = self._watch.get(uniqueid)
        other = self._watch.get(uniqueid[: -len(OTHER_HALF)]) if uniqueid.endswith(OTHER_HALF) else None
        if name == "Hangup":
            log.debug("Hangup of %s, cause %s", uniqueid, event.get("Cause"))
            ended = attempt or other
            if ended is not None and ended.cause is None and event.get("Cause", "0") not in ("0", ""):
                ended.cause = event.get("Cause")
            if attempt is not None:
                self._hangup(attempt, event)
            elif other is not None and other.failure is not None and other.cause is not None:
                self._decide(other)
        elif name == "DialEnd" and attempt is not None and attempt.mode is Mode.AGENT_FIRST:
            self._dial_end(attempt, event)
        elif name == "AgentConnect":
            taken = attempt or other
            if taken is not None:
                taken.with_agent = True
        elif name == "Newchannel" and attempt is None and other is None:
            self._stray(uniqueid, event)

    def _originate_response(self, attempt: _Attempt, event: Message) -> None:
        """Success: the leg was answered. Failure: its Reason, but Reason 0 (what a Local ``;2`` hanging up says,
        whatever the cause) waits for a hang-up cause, which may come before or after it."""
        log.debug("OriginateResponse of %s: %s, reason %s", attempt.channel_id, event.get("Response"),
                  event.get("Reason"))  # fmt: skip
        if event.get("Response", "").lower() == "success":
            attempt.answered = True
            attempt.deadline = None
            if attempt.hangup is not None:
                self._hangup(attempt, attempt.hangup)
            return
        attempt.failure = event
        if (event.get("Reason") or "").strip() in ("0", "1", "") and attempt.cause is None and attempt.hangup is None:
            attempt.grace = time.monotonic() + HANGUP_GRACE
            return
        self._decide(attempt)

    def _hangup(self, attempt: _Attempt, event: Message) -> None:
        """The ;1 half hung up: the end of the attempt, once the OriginateResponse (if any) is known."""
        attempt.hangup = event
        if attempt.failure is not None:
            self._decide(attempt)
            return
        callback = self.store.get(attempt.callback_id)
        cause = f"hang-up cause {event.get('Cause', '?')}"
        if callback is None or callback.channel_id != attempt.channel_id or callback.state not in IN_FLIGHT:
            self._unwatch(attempt)  # the answered leg or an earlier event ended it
        elif callback.state is State.CONNECTED:
            self._finish(attempt, Result.ANSWERED, f"the call ended, {cause}")
        elif attempt.answered:
            who = "the agent hung up before the customer answered" if attempt.mode is Mode.AGENT_FIRST else (
                "hung up before confirming")  # fmt: skip
            self._finish(attempt, Result.UNCONFIRMED, f"{who}, {cause}")
        else:
            attempt.grace = time.monotonic() + HANGUP_GRACE  # the OriginateResponse usually follows

    def _decide(self, attempt: _Attempt) -> None:
        """End the attempt with what is known: a failed Originate and the best hang-up cause, or a Hangup whose
        OriginateResponse never came."""
        attempt.grace = None
        if attempt.failure is not None:
            result, detail = failure_result(attempt.mode, attempt.failure.get("Reason"), attempt.cause)
            self._finish(attempt, result, detail)
            return
        event = attempt.hangup
        if event is None:
            return
        callback = self.store.get(attempt.callback_id)
        cause = attempt.cause or event.get("Cause")
        if callback is not None and callback.state is State.CONNECTED:
            self._finish(attempt, Result.ANSWERED, f"the call ended, hang-up cause {cause}")
        elif event.get("ChannelStateDesc") == "Up":
            self._finish(attempt, Result.UNCONFIRMED, f"answered and hung up, hang-up cause {cause}")
        else:
            result = cause_result(cause) or Result.INTERRUPTED
            self._finish(attempt, result, f"hung up before answering, hang-up cause {cause}; no OriginateResponse")

    def _dial_end(self, attempt: _Attempt, event: Message) -> None:
        status = event.get("DialStatus", "")
        if status.upper() == "ANSWER":
            connected = self.store.connected(attempt.callback_id, attempt.channel_id,
                                             "the customer answered the agent's call")  # fmt: skip
            if connected is not None:
                log.info("callback %s: the customer answered; connected to the agent", attempt.callback_id,
                         extra=_fields(connected))  # fmt: skip
                self._changed()
            return
        self._finish(attempt, policy.dial_result(status), f"the agent's Dial to the customer: {status}")

    def _stray(self, uniqueid: str, event: Message) -> None:
        """A channel named like an attempt that is not being watched: ours after all, or one to hang up."""
        parsed = parse_channel_id(uniqueid)
        if parsed is None:
            return
        callback_id, channel_id = parsed
        if uniqueid != channel_id or channel_id in self._ended:
            return  # a ;2 half (hanging up its ;1 half ends both), or an attempt that ended before its Newchannel
        callback = self.store.get(callback_id)
        if callback is not None and callback.channel_id == channel_id and callback.state in IN_FLIGHT:
            self._watch[channel_id] = self._attempt_of(callback)
            return
        channel = event.get("Channel", "")
        log.warning("channel %s (%s) belongs to no callback attempt in flight (callback %s is %s): hanging it up so "
                    "the callback is not made twice", uniqueid, channel, callback_id,
                    callback.state if callback is not None else "unknown")  # fmt: skip
        try:
            self.ami.send("Hangup", Channel=channel)
        except AmiError as error:
            message = error.response_message()
            if message == "Permission denied":
                self._note("hangup", "cannot hang up stray callback channels (Permission denied): give the AMI user "
                           "write=call", logging.ERROR)  # fmt: skip
            else:
                log.info("stray channel %s not hung up: %s", channel, message)

    # -- ending attempts ----------------------------------------------------------------------------------

    def _finish(self, attempt: _Attempt, result: Result, detail: str, *, retry: bool = True) -> None:
        callback = self.store.get(attempt.callback_id)
        if callback is None or callback.channel_id != attempt.channel_id or callback.state not in IN_FLIGHT:
            self._unwatch(attempt)
            return
        retry_at = None
        if retry and result is not Result.ANSWERED:
            retry_at = policy.next_attempt(callback, result, self._settings_of(callback), self.clock())
        try:
            finished = self.store.finish_attempt(
                attempt.callback_id, attempt.channel_id, result, retry_at=retry_at, reason=detail
            )
        except (StoreError, sqlite3.Error):
            log.exception("callback %s: the end of attempt %d (%s) was not recorded; trying again shortly",
                          callback.id, callback.attempts, result)  # fmt: skip
            attempt.deadline = time.monotonic() + STORE_RETRY  # then checked against Asterisk again
            return
        self._unwatch(attempt)
        if finished is None:
            return
        log.info("callback %s: attempt %d %s; now %s", finished.id, finished.attempts, policy.describe(result, detail),
                 finished.state, extra={**_fields(finished), "result": result.value})  # fmt: skip
        if self.metrics is not None:
            self.metrics.callback_attempt(result)
        self._changed()

    def _unwatch(self, attempt: _Attempt) -> None:
        if self._watch.pop(attempt.channel_id, None) is not None:
            self._ended.append(attempt.channel_id)

    def _changed(self) -> None:
        if self.metrics is not None:
            self.metrics.callbacks_changed()

    def _settings_of(self, callback: Callback) -> CallbackSettings:
        return settings_in(self.flows(), callback.flow, callback.queue)

    def _timeout_of(self, callback: Callback) -> float:
        settings = self._settings_of(callback)
        return settings.agent_timeout if settings.mode is Mode.AGENT_FIRST else settings.ring_timeout

    # -- dialling -----------------------------------------------------------------------------------------

    def _dispatch_round(self, generation: int) -> None:
        now = self.clock()
        flows = self.flows()
        try:
            for queue_name in self.store.pending_queues(now):
                self._dispatch_queue(queue_name, flows, now, generation)
        except AmiConnectionLost as error:
            log.warning("AMI went away while dialling callbacks (%s); the next connection checks what happened",
                        error)  # fmt: skip
        except AmiError as error:  # QueueStatus timed out or failed: the next round asks again
            log.warning("could not read the queues' agents: %s", error)

    def _dispatch_queue(self, queue_name: str, flows: Mapping[str, Flow], now: float, generation: int) -> None:
        availability: Availability | None = None
        for callback in self.store.due(now, queue=queue_name, limit=DUE_BATCH):
            flow = flows.get(callback.flow)
            if flow is None:
                self._note(f"flow {callback.flow}", f"callbacks of flow {callback.flow!r} wait: the flow is not loaded "
                           "(fix or restore its file)", logging.WARNING)  # fmt: skip
                continue
            self._note(f"flow {callback.flow}", "")
            settings = callback_settings(flow, queue_name)
            closed = self._closed(flow, settings, now)
            self._note(f"closed {flow.name}/{queue_name}", closed and f"callbacks for queue {queue_name!r} of flow "
                       f"{flow.name!r} wait: {closed}")  # fmt: skip
            if closed:
                continue
            if availability is None:
                availability = self._availability(queue_name, flow, generation)
            in_flight = [a for a in self._watch.values() if a.queue == queue_name and not a.with_agent]
            own = [channel for attempt in self._watch.values() for channel in attempt.channels]
            ahead = availability.ahead_of(callback.joined_at, ignore=own)
            free = availability.ready - len(in_flight) - ahead
            if free <= 0:
                log.debug("queue %s: %d agent(s) ready, %d callback(s) under way, %d caller(s) ahead of callback %s: "
                          "nothing to dial", queue_name, availability.ready, len(in_flight), ahead,
                          callback.id)  # fmt: skip
                return
            self._originate(callback, flow, settings, generation)

    def _closed(self, flow: Flow, settings: CallbackSettings, now: float) -> str:
        """Why the flow does not call back now ("" when it does)."""
        mode = self.maintenance(flow.name)
        if mode is not None:
            return f"the flow is in maintenance ({mode})"
        if settings.hours is None:
            return ""
        schedule = flow.schedules.get(settings.hours)
        if schedule is None:
            return f"its calling window {settings.hours!r} is not a schedule of the flow (see `ivrkit check`)"
        status = schedule.status(dt.datetime.fromtimestamp(now, dt.UTC))
        return "" if status == "open" else f"outside the calling window {settings.hours!r} ({status})"

    def _availability(self, queue_name: str, flow: Flow, generation: int) -> Availability:
        response = self.ami.send_list("QueueStatus", Queue=queue_name, generation=generation)
        queue_settings = flow.queues.get(queue_name)
        wrapup = queue_settings.wrapup if queue_settings is not None else 0.0
        availability = parse_queue_status(queue_name, response.events, self.clock(), wrapup=wrapup)
        self._note(f"queue {queue_name}", "" if availability.members else f"queue {queue_name!r} has no members in "
                   "Asterisk (or does not exist there): its callbacks wait", logging.WARNING)  # fmt: skip
        return availability

    def _originate(self, callback: Callback, flow: Flow, settings: CallbackSettings, generation: int) -> None:
        channel_id = channel_id_for(callback.id, callback.attempts + 1)
        action_id = f"{channel_id}-originate"
        started = self.store.start_attempt(callback.id, channel_id=channel_id, action_id=action_id)
        if started is None:
            return  # cancelled meanwhile, or taken by another dispatcher: do not dial
        attempt = _Attempt(started.id, channel_id, action_id, started.queue, settings.mode)
        self._watch[channel_id] = attempt
        self._changed()
        if not _NUMBER.fullmatch(started.number):
            self._finish(attempt, Result.FAILED, f"{started.number!r} is not a number that can be dialled", retry=False)
            return
        timeout = settings.agent_timeout if settings.mode is Mode.AGENT_FIRST else settings.ring_timeout
        attempt.deadline = time.monotonic() + timeout + STALE_MARGIN
        headers = originate_headers(started, flow, settings, channel_id, action_id)
        try:
            self.ami.send_action("Originate", headers, generation=generation)
        except (AmiConnectionLost, AmiTimeout) as error:
            log.warning("callback %s: the Originate of attempt %d may or may not have reached Asterisk (%s); it "
                        "stays dialling until Asterisk says", started.id, started.attempts, error,
                        extra=_fields(started))  # fmt: skip
            if isinstance(error, AmiConnectionLost):
                raise
            return
        except AmiError as error:
            message = error.response_message()
            hint = {"Extension does not exist.": ": compile the flows (ivrkit compile) and reload the dialplan",
                    "Permission denied": ": give the AMI user write=originate"}.get(message, "")  # fmt: skip
            log.error("callback %s: Asterisk refused the Originate: %s%s", started.id, message, hint,
                      extra=_fields(started))  # fmt: skip
            self._finish(attempt, Result.FAILED, f"Asterisk refused the Originate: {message}")
            return
        log.info("callback %s: dialling %s for queue %s (attempt %d, %s)", started.id,
                 _masked(started.number), started.queue, started.attempts, settings.mode,
                 extra={**_fields(started), "channel_id": channel_id})  # fmt: skip

    # -- logging ------------------------------------------------------------------------------------------

    def _note(self, key: str, message: str, level: int = logging.INFO) -> None:
        """Log ``message`` when what is said about ``key`` changes ("" says all is well again)."""
        if self._notes.get(key, "") == message:
            return
        if message:
            log.log(level, "%s", message)
        self._notes[key] = message


def _fields(callback: Callback) -> dict[str, object]:
    return {"callback": callback.id, "queue": callback.queue, "flow": callback.flow, "attempt": callback.attempts,
            "state": callback.state.value}  # fmt: skip


def _masked(number: str) -> str:
    """A number for the logs: enough to recognise, not to dial (+49301234567 → +4930123****)."""
    return number[:-4] + "****" if len(number) > 6 else "****"


class DispatcherLock:
    """One dispatcher per data directory: an exclusive lock on ``<data dir>/dispatcher.lock``.

    Two dispatchers on one store would each take the other's attempts in flight for lost ones.
    """

    def __init__(self, data_dir: Path | str):
        self.path = Path(data_dir) / "dispatcher.lock"
        self._handle: int | None = None

    def acquire(self) -> None:
        """Take the lock; :class:`DispatcherLocked` names the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(handle, 64).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise DispatcherLocked(
                f"another callback dispatcher (pid {holder}) runs on {self.path.parent}: run one per data directory "
                "(`ivrkit serve` with AMI settings runs one too)"
            ) from None
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        self._handle = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            os.close(handle)

    def __enter__(self) -> DispatcherLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class DispatcherLocked(RuntimeError):
    """Another dispatcher holds the data directory's lock."""

