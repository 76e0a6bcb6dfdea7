"""The outside of a call: queue statistics and maintenance a flow meets, texts it sends and callbacks it
registers.

The live server reads them from Asterisk and the state store, queues texts in the outbox and keeps callbacks
in the store; flow tests fake them. Both are reached through :class:`World`, so expressions such as
``queues.support.waiting > 10`` read the same way and ``sms`` and ``callback`` steps behave the same in a flow
test and on a live call.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol

from ivrkit.callbacks.model import ACTIVE, Origin, State
from ivrkit.maintenance.model import GLOBAL, Maintenance, Mode, Source, Window, in_force

if TYPE_CHECKING:
    from ivrkit.engine.channel import Channel


@dataclass(frozen=True)
class QueueStats:
    """A queue as a caller is about to meet it."""

    waiting: int = 0  # callers waiting
    logged_in: int = 0  # agents logged in
    ready: int = 0  # agents who can take a call now: not on a call, not paused, not in wrap-up
    free: int = 0  # agents not on a call and not paused (wrap-up included: QUEUE_MEMBER's `free`)
    avg_hold: float = 0.0  # seconds
    avg_talk: float = 0.0  # seconds
    longest_wait: float = 0.0  # seconds
    position: int = 0  # this caller's position once queued (0: not in the queue)
    paused: int = 0  # agents logged in but paused
    answered: int = 0  # recently answered calls the wait estimate can learn from
    exists: bool = True  # False: Asterisk does not know the queue (its functions then read as empty)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> QueueStats:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown queue statistic(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)


@dataclass(frozen=True)
class QueueJoin:
    """A queue step hands a caller to a queue: what they were told about the wait, for the estimate log."""

    uniqueid: str
    flow: str
    queue: str
    position: int  # the caller's position on joining
    estimate: float | None  # seconds the estimator gave; None: too little data for a number
    said: str  # what the caller heard about the wait: number, safe (the safe phrase), none (next in line), off
    method: str  # the estimator (position, asterisk)
    at: dt.datetime


@dataclass(frozen=True)
class QueueExit:
    """The dialplan gave back a call it held in a queue (or the caller hung up there): the wait that followed."""

    uniqueid: str
    flow: str
    queue: str
    wait: float  # seconds in the queue
    result: str  # answered, abandoned, a queue outcome (timeout, full, …) or an exit-key outcome
    talk: float | None  # seconds with an agent, for answered calls when Asterisk tells
    at: dt.datetime


@dataclass(frozen=True)
class TextRequest:
    """A text message a flow step asks for. The world signs the link, renders the text and queues it; the step
    never sees the signing key nor waits for a gateway."""

    to: str  # the caller's number (the step checked it can receive texts)
    key: str  # idempotency key: a second request with the same key queues nothing new
    render: Callable[[str], str]  # the message, given the link ("" when there is no link)
    link: str | None = None  # the base URL the signed token is appended to
    context: Mapping[str, Any] = field(default_factory=dict)  # what the token carries: caller, flow, queue, …
    at: dt.datetime | None = None  # the call's time, for the token's issue time


@dataclass(frozen=True)
class SentText:
    """A text as queued: what will go out, to whom."""

    to: str
    text: str
    link: str
    key: str
    new: bool = True  # False: the key was queued before, this is that earlier message


class TextNotQueued(Exception):
    """The world cannot queue a text now (no store, the store failed): the step treats the caller as unable to
    receive one."""


@dataclass(frozen=True)
class CallbackRequest:
    """A callback a flow registers: the caller asked for one, or hung up waiting (``origin``)."""

    number: str  # E.164: the step or the queue step normalised it
    queue: str
    flow: str
    origin: Origin
    uniqueid: str  # the call that asked
    joined_at: dt.datetime  # the caller's place: when they joined the queue, else when they asked
    requested_at: dt.datetime
    reason: str | None = None  # a label from the step's reason menu
    language: str = ""  # the caller's language, for the callback call's prompts
    priority: int = 0  # higher first among the queue's callbacks


@dataclass(frozen=True)
class PendingCallback:
    """An active callback (pending, dialing or connected) as a flow sees it."""

    id: str
    number: str
    queue: str
    state: str  # a callback State value: pending, dialing, connected (cancelled once cancelled)
    requested_at: dt.datetime
    new: bool = True  # False: the number already had an active callback for the queue, and this is that one


class CallbackNotRegistered(Exception):
    """The world cannot register a callback now (no store, the store failed): the step tells the caller."""


class Callbacks(Protocol):
    """The callback part of a world (the live server's is ``ivrkit.callbacks.live.LiveCallbacks``)."""

    def request_callback(self, request: CallbackRequest) -> PendingCallback:
        """Register a callback (durably, before the caller hears it is registered); one active callback per
        number and queue: an existing one is returned with ``new=False``. Raises :class:`CallbackNotRegistered`."""
        ...

    def pending_callback(self, number: str, queue: str | None) -> PendingCallback | None:
        """The number's active callback for ``queue`` (any queue: the oldest), or None (also when the store
        cannot be read: a read never fails a call)."""
        ...

    def cancel_callback(self, callback_id: str, by: str) -> bool:
        """Cancel an active callback; False when it was no longer active (or the store failed)."""
        ...


def link_with_token(base: str, token: str) -> str:
    """``base`` with the token as the query parameter ``t``."""
    return f"{base}{'&' if '?' in base else '?'}t={token}" if base else ""


class World(Protocol):
    def queue(self, name: str, channel: Channel) -> QueueStats:
        """The queue as this call would meet it now (the live world asks Asterisk through the call's channel)."""
        ...

    def maintenance(self, flow: str, now: dt.datetime) -> Maintenance | None:
        """The maintenance a call to ``flow`` meets at ``now`` (switched on for the flow or for all flows,
        scheduled, tripped), or None. The flow's own YAML windows are added by the engine
        (:func:`ivrkit.engine.maintenance.in_force_for`); a read that fails is None: it never fails a call."""
        ...

    def send_text(self, request: TextRequest) -> SentText:
        """Queue a text message (durably, before the caller hears it was sent); raises :class:`TextNotQueued`."""
        ...

    def queue_joined(self, join: QueueJoin) -> None:
        """A caller is handed to a queue (the live world logs the estimate they heard)."""
        ...

    def queue_left(self, left: QueueExit) -> None:
        """A caller the flow queued has left the queue (the live world records the actual wait against the
        estimate)."""
        ...

    def request_callback(self, request: CallbackRequest) -> PendingCallback:
        """See :meth:`Callbacks.request_callback`."""
        ...

    def pending_callback(self, number: str, queue: str | None) -> PendingCallback | None:
        """See :meth:`Callbacks.pending_callback`."""
        ...

    def cancel_callback(self, callback_id: str, by: str) -> bool:
        """See :meth:`Callbacks.cancel_callback`."""
        ...


UNAVAILABLE = "unavailable"  # `callbacks: unavailable` in a faked world: the store fails
PRESET_REQUESTED_AT = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)  # when a faked world's callbacks were asked for


def preset_callbacks(items: Any) -> tuple[tuple[PendingCallback, ...], bool]:
    """Callbacks a faked world starts with, from ``[{number, queue, state?, id?}]``, and whether the world's
    callback store is down (``unavailable`` instead of a list)."""
    if items == UNAVAILABLE:
        return (), True
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"callbacks: expected a list of {{number, queue}} or '{UNAVAILABLE}', got {items!r}")
    presets = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, Mapping) or not {"number", "queue"} <= set(item):
            raise ValueError(f"callback {index}: expected {{number, queue}} (and optionally state, id), got {item!r}")
        unknown = set(item) - {"number", "queue", "state", "id"}
        if unknown:
            raise ValueError(f"callback {index}: unknown field(s) {', '.join(sorted(unknown))}; "
                             "known: number, queue, state, id")
        state = State(str(item.get("state", State.PENDING.value)))
        if state not in ACTIVE:
            raise ValueError(f"callback {index}: a preset callback is active: pending, dialing or connected")
        presets.append(PendingCallback(str(item.get("id", f"cb-{index}")), str(item["number"]), str(item["queue"]),
                                       state.value, PRESET_REQUESTED_AT, new=False))
    return tuple(presets), False


PRESET_BY = "flow test"  # who switched on a faked world's maintenance
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def preset_maintenance(data: Any) -> dict[str, Maintenance]:
    """Maintenance a faked world is in, from ``planned`` (every flow) or ``{flow or "*": mode or {mode, until,
    from, reason}}``; times are datetimes or ISO text, without an offset in the call's timezone."""
    if isinstance(data, str):
        data = {GLOBAL: data}
    if not isinstance(data, Mapping):
        raise ValueError(f"maintenance: expected a mode or {{flow: mode}}, got {data!r}")
    presets = {}
    for scope, value in data.items():
        item = {"mode": value} if isinstance(value, (str, Mode)) else value
        if not isinstance(item, Mapping) or "mode" not in item:
            raise ValueError(f"maintenance of {scope}: expected a mode or {{mode, until, from, reason}}, got {value!r}")
        unknown = set(item) - {"mode", "until", "from", "reason"}
        if unknown:
            raise ValueError(f"maintenance of {scope}: unknown field(s) {', '.join(sorted(unknown))}; "
                             "known: mode, until, from, reason")
        try:
            mode = Mode(str(item["mode"]))
        except ValueError:
            raise ValueError(f"maintenance of {scope}: '{item['mode']}' is not one of: "
                             f"{', '.join(Mode)}") from None
        presets[str(scope)] = Maintenance(mode, str(scope), _moment(item.get("until")), str(item.get("reason") or ""),
                                          _moment(item.get("from")))
    return presets


def _moment(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _localized(preset: Maintenance, zone: dt.tzinfo) -> Maintenance:
    """A preset whose times without an offset are read in ``zone``."""

    def aware(moment: dt.datetime | None) -> dt.datetime | None:
        return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=zone)

    return replace(preset, until=aware(preset.until), since=aware(preset.since))


@dataclass
class StaticWorld:
    """Fixed external state: what flow tests and the simulator use."""

    queues: dict[str, QueueStats]
    maintenance_presets: Mapping[str, Maintenance]  # flow name (or "*" for all) → the maintenance it is in
    joined: list[QueueJoin] = field(default_factory=list)  # what queue steps reported, for tests to read
    left: list[QueueExit] = field(default_factory=list)
    texts: list[SentText] = field(default_factory=list)  # what sms steps queued, for tests to read
    preset_callbacks: tuple[PendingCallback, ...] = ()  # active before the call (a caller calling again)
    callbacks_down: bool = False  # the callback store fails: requests raise, reads find nothing
    callbacks: list[PendingCallback] = field(default_factory=list)  # presets and new ones, in their latest state
    callback_requests: list[CallbackRequest] = field(default_factory=list)  # what created the new ones

    def __post_init__(self) -> None:
        if not self.callbacks:
            self.callbacks.extend(self.preset_callbacks)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> StaticWorld:
        data = data or {}
        queues = {name: QueueStats.from_mapping(stats or {}) for name, stats in (data.get("queues") or {}).items()}
        maintenance = preset_maintenance(data.get("maintenance") or {})
        presets, down = preset_callbacks(data.get("callbacks") or [])
        return cls(queues, maintenance, preset_callbacks=presets, callbacks_down=down)

    def queue(self, name: str, channel: Channel) -> QueueStats:
        return self.queues.get(name, QueueStats())

    def maintenance(self, flow: str, now: dt.datetime) -> Maintenance | None:
        """The presets as windows (from ``since``, else always; until ``until``, else the end of the call), by the
        same rules of precedence as the store; naive times are read in ``now``'s timezone."""
        windows = []
        for preset in self.maintenance_presets.values():
            preset = _localized(preset, now.tzinfo or dt.UTC)
            windows.append(Window(f"preset:{preset.scope}", preset.scope, preset.mode, preset.since or _EARLIEST,
                                  preset.until, preset.reason, PRESET_BY, Source.CLI))
        found = in_force(windows, flow, now)
        if found is not None and found.since == _EARLIEST:
            found = replace(found, since=None)
        return found

    def send_text(self, request: TextRequest) -> SentText:
        """Record the text once per key; the link carries the placeholder token ``SIMULATED``."""
        for sent in self.texts:
            if sent.key == request.key:
                return replace(sent, new=False)
        link = link_with_token(request.link or "", "SIMULATED")
        sent = SentText(request.to, request.render(link), link, request.key)
        self.texts.append(sent)
        return sent

    def queue_joined(self, join: QueueJoin) -> None:
        self.joined.append(join)

    def queue_left(self, left: QueueExit) -> None:
        self.left.append(left)

    def request_callback(self, request: CallbackRequest) -> PendingCallback:
        """Record a callback, one active per number and queue, as the store keeps them."""
        if self.callbacks_down:
            raise CallbackNotRegistered("the callback store is unavailable (simulated)")
        existing = self.pending_callback(request.number, request.queue)
        if existing is not None:
            return replace(existing, new=False)
        callback = PendingCallback(f"cb-{len(self.callbacks) + 1}", request.number, request.queue,
                                   State.PENDING.value, request.requested_at)
        self.callbacks.append(callback)
        self.callback_requests.append(request)
        return callback

    def pending_callback(self, number: str, queue: str | None) -> PendingCallback | None:
        if self.callbacks_down:
            return None
        active = (c for c in self.callbacks if c.state in ACTIVE and c.number == number)
        return next((c for c in active if queue is None or c.queue == queue), None)

    def cancel_callback(self, callback_id: str, by: str) -> bool:
        for index, callback in enumerate(self.callbacks):
            if callback.id == callback_id and callback.state in ACTIVE and not self.callbacks_down:
                self.callbacks[index] = replace(callback, state=State.CANCELLED.value, new=False)
                return True
        return False

    def fresh(self, timezone: str | None = None) -> StaticWorld:
        """The same queues, maintenance and preset callbacks with nothing recorded: a world for one call, so that
        calls sharing a setup (flow-test cases under the same `defaults`) never see each other's records. With
        ``timezone``, maintenance times written without an offset are read in it (a flow test's flow's)."""
        presets = self.maintenance_presets
        if timezone is not None:
            zone = zoneinfo.ZoneInfo(timezone)
            presets = {scope: _localized(preset, zone) for scope, preset in presets.items()}
        return StaticWorld(self.queues, presets, preset_callbacks=self.preset_callbacks,
                           callbacks_down=self.callbacks_down)

    def changed(self, queues: Mapping[str, Mapping[str, Any]]) -> StaticWorld:
        """This world after queues changed (statistics not named keep their values): the simulator applies
        what a flow test says happened while the caller was in the dialplan. The records are shared."""
        updated = dict(self.queues)
        for name, stats in queues.items():
            updated[name] = replace(updated.get(name, QueueStats()), **stats)
        return StaticWorld(updated, self.maintenance_presets, self.joined, self.left, self.texts, self.preset_callbacks,
                           self.callbacks_down, self.callbacks, self.callback_requests)
