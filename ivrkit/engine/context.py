"""What a running step sees: the channel behind the cancel-key rules, variables, expressions and the journal."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ivrkit.callbacks.numbers import UnusableNumber, from_caller_id
from ivrkit.engine.channel import Channel
from ivrkit.engine.journal import Journal
from ivrkit.engine.maintenance import InScope, in_force_for
from ivrkit.engine.state import CallState
from ivrkit.engine.transitions import Cancelled
from ivrkit.engine.world import QueueStats, World
from ivrkit.flow.expressions import Template
from ivrkit.flow.model import Defaults, Flow
from ivrkit.flow.segments import PromptSegment, SaySegment, Segment
from ivrkit.maintenance.model import Maintenance
from ivrkit.sms.numbers import unreachable_reason
from ivrkit.steps.base import Step
from ivrkit.steps.callback import flow_countries
from ivrkit.steps.sms import flow_mobile_patterns

_UNREAD: Any = object()


class _LazyVariables:
    """``channel.NAME`` in expressions: read from the channel only when used."""

    def __init__(self, read: Callable[[str], str | None]):
        self._read = read

    def __getattr__(self, name: str) -> str | None:
        return self._read(name)

    def __getitem__(self, name: str) -> str | None:
        return self._read(name)


class _Variables:
    """``vars.<name>`` in expressions: read only, and with no methods, so a variable called ``items`` or
    ``keys`` is that variable and not a dict method."""

    def __init__(self, values: dict[str, Any]):
        self.__values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self.__values[name]

    def __contains__(self, name: object) -> bool:
        return name in self.__values

    def __iter__(self) -> Iterator[str]:
        return iter(self.__values)

    def __len__(self) -> int:
        return len(self.__values)


class _Caller(Mapping[str, Any]):
    """``caller.*`` in expressions; ``caller.callback`` is read from the world only when an expression uses it
    (live, that is a store read)."""

    def __init__(self, values: dict[str, Any], callback: Callable[[], dict[str, Any] | None]):
        self._values = values
        self._callback = callback

    def __getitem__(self, name: str) -> Any:
        return self._callback() if name == "callback" else self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._values, "callback"])

    def __len__(self) -> int:
        return len(self._values) + 1


class _Queues:
    """``queues.support.waiting`` in expressions."""

    def __init__(self, world: World, channel: Channel):
        self._world = world
        self._channel = channel

    def __getattr__(self, name: str) -> QueueStats:
        return self._world.queue(name, self._channel)

    def __getitem__(self, name: str) -> QueueStats:
        return self._world.queue(name, self._channel)


class CallContext:
    """The engine's side of one call, handed to :meth:`Step.run`."""

    def __init__(
        self,
        channel: Channel,
        flow: Flow,
        state: CallState,
        journal: Journal,
        world: World,
        prompt_languages: Callable[[str, Sequence[str]], str],
    ):
        self.channel = channel
        self.flow = flow
        self.state = state
        self.journal = journal
        self.world = world
        self.step: Step | None = None
        self.resumed_outcome: str | None = None
        self._prompt_language = prompt_languages
        self._can_text: bool | None = None
        self._callback: dict[str, Any] | None = _UNREAD
        self._maintenance: tuple[str, InScope | None] | None = None  # (flow, what it meets), read once per flow

    @property
    def defaults(self) -> Defaults:
        return self.flow.defaults

    def now(self) -> dt.datetime:
        return self.channel.now()

    def log(self, kind: str, /, **detail: Any) -> None:
        self.journal.record(self.now(), kind, self.flow.name, self.step.name if self.step else None, **detail)

    # -- variables and expressions --------------------------------------------------------------------

    def scope(self) -> dict[str, Any]:
        info = self.channel.info
        return {
            "caller": _Caller(
                {"number": info.caller_number, "name": info.caller_name, "can_text": self.caller_can_text},
                self.caller_callback,
            ),
            "call": {
                "uniqueid": info.uniqueid,
                "dnid": info.dnid,
                "channel": info.channel,
                "language": self.language,
                "args": list(info.args),
                "params": dict(info.params),
                "flow": self.flow.name,
            },
            "vars": _Variables(self.state.vars),
            "channel": _LazyVariables(self.channel.get_variable),
            "now": self.now().astimezone(zoneinfo.ZoneInfo(self.flow.timezone)),
            "queues": _Queues(self.world, self.channel),
            "maintenance": self.maintenance,
        }

    @property
    def maintenance(self) -> InScope | None:
        """``maintenance`` in expressions: what the flow running now is in, or None. Read once per call and flow
        (live, a store read), like the runner's check when the session started."""
        if self._maintenance is not None and self._maintenance[0] == self.flow.name:
            return self._maintenance[1]
        return self.maintenance_found(in_force_for(self.world, self.flow, self.now()))

    def maintenance_found(self, found: Maintenance | None) -> InScope | None:
        """What the runner found when the session started, so expressions need not ask the world again."""
        seen = None if found is None else InScope(found, self.flow.timezone)
        self._maintenance = (self.flow.name, seen)
        return seen

    @property
    def caller_can_text(self) -> bool:
        """Whether the caller's number can receive a text (the `sms` step's rule, with the flow's patterns)."""
        if self._can_text is None:
            patterns = flow_mobile_patterns(self.flow)
            self._can_text = unreachable_reason(self.channel.info.caller_number, patterns) is None
        return self._can_text

    def caller_callback(self) -> dict[str, Any] | None:
        """The caller's active callback (any queue) as ``{id, queue, state, requested_at}``, or None: a caller
        who calls again before being called back can be offered to keep or cancel it. Read once per call, and
        again after a ``callback`` step changed it."""
        if self._callback is _UNREAD:
            self._callback = None
            numbers: list[str] = []  # the caller ID as each of the flow's countries reads it, each number once
            for country in flow_countries(self.flow):
                try:
                    numbers.append(from_caller_id(self.channel.info.caller_number, country))
                except UnusableNumber:
                    continue
            for number in dict.fromkeys(numbers):
                found = self.world.pending_callback(number, None)
                if found is not None:
                    zone = zoneinfo.ZoneInfo(self.flow.timezone)
                    self._callback = {"id": found.id, "queue": found.queue, "state": found.state,
                                      "requested_at": found.requested_at.astimezone(zone)}
                    break
        return self._callback

    def forget_callback(self) -> None:
        """A callback was registered or cancelled: ``caller.callback`` is read again when next used."""
        self._callback = _UNREAD

    def render(self, template: Template) -> Any:
        return template.render(self.scope())

    def set_vars(self, values: dict[str, Any]) -> None:
        self.state.vars.update(values)
        self.log("set", **{name: value for name, value in values.items()})

    # -- audio and keys, with the cancel key --------------------------------------------------------------

    @property
    def language(self) -> str:
        return self.channel.info.language or self.flow.language

    def cancel_key(self) -> str:
        """The cancel key in force now, or "" when it is off or has nowhere to lead."""
        if self.step is None:
            return ""
        key = self.flow.cancel_key_for(self.step)
        return key if key and self.cancel_target() else ""

    def cancel_target(self) -> str | None:
        if self.step is None:
            return None
        return self.step.cancel_to or self.state.previous_menu(self.step.name)

    def _check_cancel(self, key: str | None, discarded: str = "") -> None:
        cancel = self.cancel_key()
        if key is not None and cancel and key == cancel:
            target = self.cancel_target()
            assert target is not None
            raise Cancelled(target, discarded)

    def play(self, segments: Sequence[Segment], escape: str = "") -> str | None:
        """Play segments in order; stop at the first escape key (or cancel key) pressed and return it."""
        cancel = self.cancel_key()
        keys = escape + (cancel if cancel not in escape else "")
        for segment in segments:
            if isinstance(segment, PromptSegment):
                language = self._prompt_language(segment.prompt, [self.language, self.flow.language])
                key = self.channel.play_prompt(segment.prompt, language, keys)
                self.log("played", prompt=segment.prompt, language=language, interrupted_by=key)
            else:
                assert isinstance(segment, SaySegment)
                value = str(self.render(segment.value))
                key = self.channel.say(segment.say, value, self.language, keys)
                self.log("played", say=segment.say, value=value, interrupted_by=key)
            if key is not None:
                self._check_cancel(key)
                return key
        return None

    def wait_for_key(self, timeout: float) -> str | None:
        key = self.channel.wait_for_key(timeout)
        self.log("key" if key is not None else "silence", key=key, timeout=timeout)
        self._check_cancel(key)
        return key
