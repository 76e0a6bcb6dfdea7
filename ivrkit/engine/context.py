"""What a running step sees: the channel behind the cancel-key rules, variables, expressions and the journal."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
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
from ivrkit.prompts.languages import base_language, call_language, lookup_order, spoken_by
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
        self._pbx_language = channel.info.language  # what the channel speaks now (CHANNEL(language))

    @property
    def defaults(self) -> Defaults:
        return self.flow.defaults

    def now(self) -> dt.datetime:
        return self.channel.now()

    def log(self, kind: str, /, **detail: Any) -> None:
        step = self.step
        self.journal.add(self.channel.now(), kind, self.flow.name, None if step is None else step.name, detail)

    # -- variables and expressions --------------------------------------------------------------------

    def scope(self, names: AbstractSet[str] | None = None) -> dict[str, Any]:
        """What expressions see; with ``names``, only those (a template's own names: a call renders several
        templates, most of which read one name)."""
        return {name: part(self) for name, part in _SCOPE.items() if names is None or name in names}

    def _caller_scope(self) -> _Caller:
        info = self.channel.info
        return _Caller(
            {"number": info.caller_number, "name": info.caller_name, "can_text": self.caller_can_text},
            self.caller_callback,
        )

    def _call_scope(self) -> dict[str, Any]:
        info = self.channel.info
        return {
            "uniqueid": info.uniqueid,
            "dnid": info.dnid,
            "channel": info.channel,
            "language": self.language,
            "args": list(info.args),
            "params": dict(info.params),
            "flow": self.flow.name,
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
        if template.is_constant:
            return template.source
        return template.render(self.scope(template.names))

    def set_vars(self, values: dict[str, Any]) -> None:
        self.state.vars.update(values)
        self.log("set", **{name: value for name, value in values.items()})

    # -- the call's language --------------------------------------------------------------------------------

    @property
    def language(self) -> str:
        """The call's language: chosen when the call started (the channel's, if the flow speaks it), or by a
        ``language`` step; kept in the call's state across hand-offs."""
        return self.state.language or self.flow.language

    def start_language(self) -> str:
        """At the start of a session: a new call takes the channel's language when the flow speaks it (or its
        base language), else the flow's own; a resumed call keeps its own. The PBX is told by
        :meth:`sync_language`."""
        if self.state.language is None:
            self.state.language = call_language(self.channel.info.language, self.flow.languages, self.flow.language)
        return self.state.language

    def sync_language(self) -> None:
        """Make the PBX speak the call's language, if it speaks another (one command, only when they differ)."""
        self._tell_pbx(self.language)

    def change_language(self, language: str, **detail: Any) -> bool:
        """A ``language`` step's choice; False (nothing changes) when the flow does not speak ``language``."""
        if not spoken_by(self.flow.languages, language):
            return False
        previous = self.language
        self.state.language = language
        self._tell_pbx(language)
        self.log("language", language=language, previous=previous, **detail)
        return True

    def enter_flow(self, flow: Flow) -> None:
        """The call goes on in another flow: it keeps its language if that flow speaks it, else takes the flow's."""
        self.flow = flow
        self.state.flow = flow.name
        if not spoken_by(flow.languages, self.language):
            previous, self.state.language = self.language, flow.language
            self._tell_pbx(flow.language)
            self.log("language", language=flow.language, previous=previous, by="flow")

    def speak_as(self, language: str) -> None:
        """Let the PBX speak ``language`` for a moment (a language menu announcing each choice in its own
        language); :meth:`sync_language` or a choice sets it back."""
        self._tell_pbx(language)

    def _tell_pbx(self, language: str) -> None:
        if language != self._pbx_language:
            self.channel.set_language(language)
            self._pbx_language = language

    # -- audio and keys, with the cancel key --------------------------------------------------------------

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

    def play(self, segments: Sequence[Segment], escape: str = "", language: str | None = None) -> str | None:
        """Play segments in order; stop at the first escape key (or cancel key) pressed and return it.
        ``language``: in that language rather than the call's (the PBX must be speaking it)."""
        cancel = self.cancel_key()
        keys = escape + (cancel if cancel not in escape else "")
        for segment in segments:
            if isinstance(segment, PromptSegment):
                key = self.play_prompt(segment.prompt, keys, language)
            else:
                assert isinstance(segment, SaySegment)
                key = self.say(segment.say, str(self.render(segment.value)), keys, language)
            if key is not None:
                self._check_cancel(key)
                return key
        return None

    def play_prompt(self, prompt: str, escape: str = "", language: str | None = None) -> str | None:
        """One prompt, found in the call's language, its base language or the flow's (``language``: that one
        first); returns the key that interrupted it, without acting on it."""
        wanted = language or self.language
        found = self._prompt_language(prompt, lookup_order(wanted, self.flow.language))
        key = self.channel.play_prompt(prompt, found, escape)
        missing = {} if base_language(found) == base_language(wanted) else {"fallback_from": wanted}
        self.log("played", prompt=prompt, language=found, interrupted_by=key, **missing)
        return key

    def say(self, kind: str, value: str, escape: str = "", language: str | None = None) -> str | None:
        """A spoken value in the call's language (or ``language``, which the PBX must be speaking)."""
        spoken = language or self.language
        key = self.channel.say(kind, value, spoken, escape)
        self.log("played", say=kind, value=value, language=spoken, interrupted_by=key)
        return key

    def wait_for_key(self, timeout: float) -> str | None:
        key = self.channel.wait_for_key(timeout)
        self.log("key" if key is not None else "silence", key=key, timeout=timeout)
        self._check_cancel(key)
        return key


# Each name expressions can read, and how a call builds its value (only when a template reads it).
_SCOPE: dict[str, Callable[[CallContext], Any]] = {
    "caller": CallContext._caller_scope,
    "call": CallContext._call_scope,
    "vars": lambda call: _Variables(call.state.vars),
    "channel": lambda call: _LazyVariables(call.channel.get_variable),
    "now": lambda call: call.now().astimezone(zoneinfo.ZoneInfo(call.flow.timezone)),
    "queues": lambda call: _Queues(call.world, call.channel),
    "maintenance": lambda call: call.maintenance,
}
