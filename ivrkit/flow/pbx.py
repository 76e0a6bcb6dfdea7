"""The Asterisk side of a flow file: the optional ``dialplan:`` and ``queues:`` blocks.

Everything else in a flow runs in the FastAGI server; these two blocks say what ``ivrkit compile`` writes for
Asterisk itself. ``dialplan:`` holds what must work when the server cannot be reached: the fallback prompt and
route, and the prompts of the maintenance gate. ``queues:`` holds the ``queues.conf`` settings of the queues
the flow uses::

    dialplan:
      fallback: {prompt: technical-difficulties, queue: support}   # or transfer: PJSIP/operator, or hangup: true
      maintenance: {planned: maintenance-planned}
    queues:
      support: {strategy: rrmemory, join_empty: [paused, unavailable, invalid], music: default}

Both are optional. Without a fallback route the dialplan sends callers to the first queue the flow's steps
use (or hangs up after the prompt when there is none). The loader checks each value's shape here; what needs
every flow at once (a queue declared twice, names that collide in the dialplan) is checked by the compiler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ivrkit.flow.fields import (
    INVALID,
    Boolean,
    Duration,
    Field,
    Integer,
    ListOf,
    MapOf,
    Option,
    ParseContext,
    Record,
    Text,
)
from ivrkit.flow.segments import PromptId, PromptSegment
from ivrkit.flow.source import Mapping, Node
from ivrkit.steps.queue import QUEUE_NAME, QUEUE_NAME_HINT
from ivrkit.steps.transfer import DESTINATION

MAINTENANCE_MODES = ("planned", "emergency", "closed")
STRATEGIES = ("ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "rrordered", "linear", "wrandom")
EMPTY_CONDITIONS = ("paused", "penalty", "inuse", "ringing", "unavailable", "invalid", "unknown", "wrapup")
CONTEXT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,78}$")
MUSIC_CLASS = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,78}$")
DEFAULT_FALLBACK_PROMPT = "technical-difficulties"
DEFAULT_NUMBERS_CONTEXT = "ivrkit-outbound"


@dataclass(frozen=True)
class Fallback:
    """What the dialplan does when the FastAGI server cannot run the call: a prompt, then one route."""

    prompt: str = DEFAULT_FALLBACK_PROMPT
    queue: str | None = None
    transfer: str | None = None
    hangup: bool = False

    @property
    def routed(self) -> bool:
        """True when the flow chose the route; otherwise the compiler picks the flow's first queue."""
        return self.queue is not None or self.transfer is not None or self.hangup


@dataclass(frozen=True)
class MaintenancePrompts:
    """The announcement played for each maintenance mode before the call is hung up."""

    planned: str = "maintenance-planned"
    emergency: str = "maintenance-emergency"
    closed: str = "maintenance-closed"

    def prompt(self, mode: str) -> str:
        return str(getattr(self, mode))


@dataclass(frozen=True)
class DialplanSettings:
    fallback: Fallback = field(default_factory=Fallback)
    maintenance: MaintenancePrompts = field(default_factory=MaintenancePrompts)
    numbers_context: str = DEFAULT_NUMBERS_CONTEXT


@dataclass(frozen=True)
class QueueSettings:
    """One queue's ``queues.conf`` section. Durations are whole seconds in the file."""

    strategy: str = "ringall"
    ring_timeout: float = 15.0
    retry: float = 5.0
    wrapup: float = 0.0
    max_callers: int = 0
    music: str = "default"
    join_empty: tuple[str, ...] = ()
    leave_empty: tuple[str, ...] = ()
    ringing: bool = False


class _Prompt(Field[str]):
    """A prompt id, recorded as a reference so ``ivrkit check`` finds it in the catalog like any other."""

    type_name = "prompt id"

    def parse(self, node: Node, ctx: ParseContext) -> str:
        segment = PromptId().parse(node, ctx)
        return segment.prompt if isinstance(segment, PromptSegment) else INVALID

    def json_schema(self) -> dict[str, Any]:
        return PromptId().json_schema()


def _fallback(prompt: str, queue: str | None, transfer: str | None, hangup: bool) -> Fallback:
    return Fallback(prompt, queue, transfer, hangup)


_FALLBACK_RECORD: Record[Fallback] = Record(
    {
        "prompt": Option(_Prompt(), "Played first, so callers are never left in silence.", DEFAULT_FALLBACK_PROMPT),
        "queue": Option(
            Text(QUEUE_NAME, what="queue name", hint=QUEUE_NAME_HINT),
            "Then put the caller in this queue (default: the first queue the flow's steps use).",
        ),
        "transfer": Option(
            Text(
                DESTINATION,
                what="fallback destination",
                hint="write an endpoint such as PJSIP/operator or a number such as +4930123456",
            ),
            "Or dial this endpoint or number instead.",
        ),
        "hangup": Option(Boolean(), "Or hang up after the prompt.", False),
    },
    factory=_fallback,
    what="fallback",
)


class _FallbackField(Field[Fallback]):
    """The fallback mapping, with at most one route."""

    type_name = "mapping with at most one route"
    record = _FALLBACK_RECORD  # the mapping form, for the generated reference

    def parse(self, node: Node, ctx: ParseContext) -> Fallback:
        value = _FALLBACK_RECORD.parse(node, ctx)
        if value is INVALID:
            return INVALID
        routes = [name for name in ("queue", "transfer") if getattr(value, name) is not None]
        routes += ["hangup"] if value.hangup else []
        if len(routes) > 1:
            where = node.key_node(routes[1]) if isinstance(node, Mapping) else node
            return ctx.error(
                where,
                f"the fallback has two routes, {routes[0]} and {routes[1]}",
                "choose one: queue, transfer or hangup",
            )
        return value

    def json_schema(self) -> dict[str, Any]:
        return _FALLBACK_RECORD.json_schema()


def _maintenance(planned: str, emergency: str, closed: str) -> MaintenancePrompts:
    return MaintenancePrompts(planned, emergency, closed)


def _maintenance_options() -> dict[str, Option]:
    defaults = MaintenancePrompts()
    return {
        mode: Option(_Prompt(), f"Announcement for maintenance mode `{mode}`.", defaults.prompt(mode))
        for mode in MAINTENANCE_MODES
    }


DIALPLAN_OPTION = Option(
    Record(
        {
            "fallback": Option(
                _FallbackField(),
                "What the dialplan does when the FastAGI server is down or fails: a prompt, then a queue, a "
                "transfer or a hang-up.",
                Fallback(),
            ),
            "maintenance": Option(
                Record(_maintenance_options(), factory=_maintenance, what="maintenance prompts"),
                "Prompts of the maintenance gate, which plays before the server is asked (AstDB "
                "`ivrkit-maintenance/<flow>`, else `ivrkit-maintenance/global`).",
                MaintenancePrompts(),
            ),
            "numbers_context": Option(
                Text(CONTEXT_NAME, what="context name", hint="use up to 79 letters, digits, '_' and '-'"),
                "Context that dials phone numbers a `transfer` gives (as `Local/<number>@<context>`); the "
                "admin defines it.",
                DEFAULT_NUMBERS_CONTEXT,
            ),
        },
        factory=DialplanSettings,
        what="dialplan settings",
    ),
    "The Asterisk side of the flow, compiled by `ivrkit compile`: fallback route and maintenance prompts.",
    DialplanSettings(),
)


def _queue(
    strategy: str,
    ring_timeout: float,
    retry: float,
    wrapup: float,
    max_callers: int,
    music: str,
    join_empty: list[str],
    leave_empty: list[str],
    ringing: bool,
) -> QueueSettings:
    return QueueSettings(
        strategy, ring_timeout, retry, wrapup, max_callers, music, tuple(join_empty), tuple(leave_empty), ringing
    )


_DEFAULT_QUEUE = QueueSettings()
_CONDITIONS = ListOf(Text(choices=EMPTY_CONDITIONS, what="empty condition"))
QUEUE_OPTIONS: dict[str, Option] = {
    "strategy": Option(Text(choices=STRATEGIES, what="strategy"), "How agents are rung.", _DEFAULT_QUEUE.strategy),
    "ring_timeout": Option(
        Duration(3600), "How long one agent's phone rings (queues.conf `timeout`).", _DEFAULT_QUEUE.ring_timeout
    ),
    "retry": Option(Duration(3600), "Pause before agents are rung again.", _DEFAULT_QUEUE.retry),
    "wrapup": Option(Duration(3600), "Rest for an agent after a call (`wrapuptime`).", _DEFAULT_QUEUE.wrapup),
    "max_callers": Option(
        Integer(0, 10000),
        "Most callers waiting (`maxlen`); beyond it a queue step resumes with `full`. 0: no limit.",
        _DEFAULT_QUEUE.max_callers,
    ),
    "music": Option(
        Text(MUSIC_CLASS, what="music class", hint="use up to 79 letters, digits, '_' and '-'"),
        "Music on hold class (`musicclass`).",
        _DEFAULT_QUEUE.music,
    ),
    "join_empty": Option(
        _CONDITIONS,
        "Agent states that count as absent when a caller joins: with no agent left the queue step resumes "
        "with `joinempty` (`joinempty`; e.g. [paused, unavailable, invalid]). Empty: callers always join.",
        [],
    ),
    "leave_empty": Option(
        _CONDITIONS,
        "Agent states that count as absent while callers wait: with no agent left they leave with "
        "`leaveempty` (`leavewhenempty`).",
        [],
    ),
    "ringing": Option(Boolean(), "Callers hear ringing instead of music (the Queue() option `r`).", False),
}
QUEUES_OPTION = Option(
    MapOf(
        Text(QUEUE_NAME, what="queue name", hint=QUEUE_NAME_HINT),
        Record(QUEUE_OPTIONS, factory=_queue, what="queue settings"),
        "queues",
    ),
    "Settings of the queues this flow uses, written to queues.conf by `ivrkit compile`. Declare a queue once "
    "across all flows; queues without settings get the defaults below.",
    {},
)
