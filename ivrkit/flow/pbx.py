"""The Asterisk side of a flow file: the optional ``dialplan:`` and ``queues:`` blocks.

Everything else in a flow runs in the FastAGI server; these two blocks say what ``ivrkit compile`` writes for
Asterisk itself. ``dialplan:`` holds what must work when the server cannot be reached: the fallback prompt and
route, and the prompts of the maintenance gate. ``queues:`` holds the ``queues.conf`` settings of the queues
the flow uses, what Asterisk announces to callers waiting in them, and the keys that take a caller out of a
queue and back into the flow::

    dialplan:
      fallback: {prompt: technical-difficulties, queue: support}   # or transfer: PJSIP/operator, or hangup: true
      maintenance: {planned: maintenance-planned}
    queues:
      support:
        strategy: rrmemory
        join_empty: [paused, unavailable, invalid]
        announce: {every: 60s, position: yes, hold_time: no}
        periodic: {prompts: [queue-periodic], every: 45s}
        exit_keys: {"1": callback, "2": text}     # the queue step maps each outcome to a step
        callback: {mode: customer-first, country: DE, hours: office, attempts: 3, retry_after: [2m, 10m]}

Both are optional. Without a fallback route the dialplan sends callers to the first queue the flow's steps
use (or hangs up after the prompt when there is none). The loader checks each value's shape here; what needs
every flow at once (a queue declared twice, names that collide in the dialplan) is checked by the compiler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ivrkit.callbacks.model import Mode
from ivrkit.callbacks.numbers import is_region
from ivrkit.callbacks.settings import DEFAULT_PROMPTS, CallbackSettings
from ivrkit.flow.fields import (
    DTMF_KEYS,
    INVALID,
    NAME_PATTERN,
    Boolean,
    Duration,
    Integer,
    Key,
    ListOf,
    MapOf,
    Option,
    ParseContext,
    Record,
    Text,
)
from ivrkit.flow.segments import PromptName
from ivrkit.flow.source import Mapping, Node, Scalar
from ivrkit.steps.queue import OUTCOME_NAME, QUEUE_NAME, QUEUE_NAME_HINT, QUEUE_OUTCOMES
from ivrkit.steps.transfer import DESTINATION

MAINTENANCE_MODES = ("planned", "emergency", "closed")
STRATEGIES = ("ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "rrordered", "linear", "wrandom")
EMPTY_CONDITIONS = ("paused", "penalty", "inuse", "ringing", "unavailable", "invalid", "unknown", "wrapup")
CONTEXT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,78}$")
MUSIC_CLASS = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,78}$")
DEFAULT_FALLBACK_PROMPT = "technical-difficulties"
DEFAULT_NUMBERS_CONTEXT = "ivrkit-outbound"
POSITION_MODES = ("yes", "no", "limit", "more")  # announce-position
HOLD_TIME_MODES = ("yes", "no", "once")  # announce-holdtime
ROUND_SECONDS = (0, 5, 10, 15, 20, 30)  # announce-round-seconds: Asterisk takes no other value
MAX_PERIODIC_PROMPTS = 10  # app_queue plays at most ten periodic announcements
EXIT_OUTCOME_HINT = "an outcome name has up to 31 small letters, digits and '-', and starts with a letter"
RESERVED_OUTCOMES = (*QUEUE_OUTCOMES, "withdraw", "unknown")
"""Outcomes a queue step already has: the QUEUESTATUS values (lower case) and ``otherwise``."""


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
    """The announcement the compiled gate plays for each maintenance mode before it hangs up (and what the server
    plays when the flow has no ``maintenance:`` block)."""

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
class Announcements:
    """What Asterisk itself tells callers while they wait (``announce-*`` in queues.conf)."""

    every: float = 0.0  # announce-frequency; 0: never (Asterisk's default)
    min_gap: float = 15.0  # min-announce-frequency
    position: str = "yes"  # one of POSITION_MODES
    position_limit: int = 10
    hold_time: str = "no"  # one of HOLD_TIME_MODES; Asterisk's figure ignores the caller's position
    round_seconds: int = 0
    only_up: bool = True  # announce-position-only-up: a caller never hears their position go up
    to_first: bool = False  # announce-to-first-user: also the callers being offered to agents


@dataclass(frozen=True)
class PeriodicPrompts:
    """Prompts Asterisk plays every so often to callers waiting (``periodic-announce``)."""

    prompts: tuple[str, ...]
    every: float
    start_delay: float | None = None  # None: the first after `every`; 0: as soon as the caller joins
    random: bool = False


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
    announce: Announcements = field(default_factory=Announcements)
    periodic: PeriodicPrompts | None = None
    exit_keys: tuple[tuple[str, str], ...] = ()  # (DTMF key, outcome), in key order
    callback: CallbackSettings | None = None  # how the dispatcher calls back this queue's callers

    @property
    def exit_outcomes(self) -> tuple[str, ...]:
        """The outcomes the exit keys lead to, each once, in key order."""
        return tuple(dict.fromkeys(outcome for _, outcome in self.exit_keys))


def _fallback(prompt: str, queue: str | None, transfer: str | None, hangup: bool) -> Fallback:
    return Fallback(prompt, queue, transfer, hangup)


def _one_route(value: Fallback, node: Node, ctx: ParseContext) -> Fallback:
    """The fallback has at most one route."""
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


_FALLBACK_RECORD: Record[Fallback] = Record(
    {
        "prompt": Option(PromptName(), "Played first, so callers are never left in silence.", DEFAULT_FALLBACK_PROMPT),
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
    check=_one_route,
)


def _maintenance(planned: str, emergency: str, closed: str) -> MaintenancePrompts:
    return MaintenancePrompts(planned, emergency, closed)


def _maintenance_options() -> dict[str, Option]:
    defaults = MaintenancePrompts()
    return {
        mode: Option(PromptName(), f"Announcement for maintenance mode `{mode}`.", defaults.prompt(mode))
        for mode in MAINTENANCE_MODES
    }


DIALPLAN_OPTION = Option(
    Record(
        {
            "fallback": Option(
                _FALLBACK_RECORD,
                "What the dialplan does when the FastAGI server is down or fails: a prompt, then a queue, a "
                "transfer or a hang-up.",
                Fallback(),
            ),
            "maintenance": Option(
                Record(_maintenance_options(), factory=_maintenance, what="maintenance prompts"),
                "Prompts the dialplan plays when the FastAGI server cannot run a call while the flow's AstDB flag "
                "(`ivrkit-maintenance/<flow>`, else `ivrkit-maintenance/global`, written by the server's mirror) "
                "names a mode. A mode not named here plays the first prompt of that mode under `maintenance:` "
                "when there is one.",
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


class _YesNo(Text):
    """``yes``/``no`` and a few more words; YAML reads an unquoted yes or no as a boolean, which is taken too."""

    def parse(self, node: Node, ctx: ParseContext) -> str:
        if isinstance(node, Scalar) and isinstance(node.value, bool) and not node.quoted:
            return "yes" if node.value else "no"
        return super().parse(node, ctx)

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "boolean"}, super().json_schema()]}


class _RoundSeconds(Integer):
    """``announce-round-seconds``: Asterisk warns about any other value and uses 0."""

    type_name = "0, 5, 10, 15, 20 or 30"

    def parse(self, node: Node, ctx: ParseContext) -> int:
        value = super().parse(node, ctx)
        if value is not INVALID and value not in ROUND_SECONDS:
            return ctx.error(node, f"{value} seconds cannot be used for rounding",
                             f"Asterisk rounds to one of {', '.join(map(str, ROUND_SECONDS))} seconds")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "integer", "enum": list(ROUND_SECONDS)}


class _ExitOutcome(Text):
    """The outcome an exit key leads to: a new name, never one the queue already gives."""

    def __init__(self) -> None:
        super().__init__(OUTCOME_NAME, what="outcome name", hint=EXIT_OUTCOME_HINT)

    def parse(self, node: Node, ctx: ParseContext) -> str:
        value = super().parse(node, ctx)
        if value is not INVALID and value in RESERVED_OUTCOMES:
            return ctx.error(node, f"'{value}' is already a queue outcome",
                             "name what the key does instead, e.g. callback or text")
        return value


_DEFAULT_ANNOUNCE = Announcements()
ANNOUNCE_OPTIONS: dict[str, Option] = {
    "every": Option(
        Duration(3600),
        "How often a waiting caller hears their position (`announce-frequency`); also when it changes, "
        "`min_gap` apart. 0: never.",
        _DEFAULT_ANNOUNCE.every,
    ),
    "min_gap": Option(Duration(3600), "Least time between two announcements (`min-announce-frequency`).",
                      _DEFAULT_ANNOUNCE.min_gap),
    "position": Option(
        _YesNo(choices=POSITION_MODES, what="position announcement"),
        "Say the position (`announce-position`): `limit` only up to `position_limit`, `more` says \"more than "
        "<position_limit>\" beyond it.",
        _DEFAULT_ANNOUNCE.position,
    ),
    "position_limit": Option(Integer(1, 1000), "The limit of `position: limit` and `more`.",
                             _DEFAULT_ANNOUNCE.position_limit),
    "hold_time": Option(
        _YesNo(choices=HOLD_TIME_MODES, what="hold time announcement"),
        "Say Asterisk's estimated hold time (`announce-holdtime`; `once`: the first time only). Its figure is "
        "the queue's average wait, whatever the caller's position: a queue step's own `announce` does better.",
        _DEFAULT_ANNOUNCE.hold_time,
    ),
    "round_seconds": Option(_RoundSeconds(), "Round the hold time to these seconds (0: whole minutes).",
                            _DEFAULT_ANNOUNCE.round_seconds),
    "only_up": Option(Boolean(), "Say the position only when it improved (`announce-position-only-up`).",
                      _DEFAULT_ANNOUNCE.only_up),
    "to_first": Option(
        Boolean(),
        "Also announce to callers whose turn it is, while agents are rung (`announce-to-first-user`).",
        _DEFAULT_ANNOUNCE.to_first,
    ),
}


def _periodic(prompts: list[str], every: float, start_delay: float | None, random: bool) -> PeriodicPrompts:
    return PeriodicPrompts(tuple(prompts), every, start_delay, random)


def _within_asterisk_limits(value: PeriodicPrompts, node: Node, ctx: ParseContext) -> PeriodicPrompts:
    """The periodic prompts, with the limits Asterisk sets."""
    if len(value.prompts) > MAX_PERIODIC_PROMPTS:
        where = node.get("prompts") if isinstance(node, Mapping) else None
        return ctx.error(where or node, f"{len(value.prompts)} periodic prompts: Asterisk plays at most "
                         f"{MAX_PERIODIC_PROMPTS}", "join some recordings into one prompt")
    if value.every < 1:
        where = node.get("every") if isinstance(node, Mapping) else None
        return ctx.error(where or node, "periodic prompts need `every` of a second or more",
                         "a frequency of 0 would never play them: remove `periodic` instead")
    return value


_PERIODIC_RECORD: Record[PeriodicPrompts] = Record(
    {
        "prompts": Option(
            ListOf(PromptName(), min_items=1),
            f"Played in turn, one each time (`periodic-announce`; up to {MAX_PERIODIC_PROMPTS}).",
            required=True,
        ),
        "every": Option(Duration(3600), "Time between two of them (`periodic-announce-frequency`).", required=True),
        "start_delay": Option(
            Duration(3600), "Time from joining to the first (`periodic-announce-startdelay`; default: `every`)."
        ),
        "random": Option(Boolean(), "Pick the prompts in random order (`random-periodic-announce`).", False),
    },
    factory=_periodic,
    what="periodic prompts",
    check=_within_asterisk_limits,
)


def _exit_keys(keys: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The exit keys in a fixed order (0-9, * and #), so equal declarations compare equal."""
    return tuple(sorted(keys.items(), key=lambda item: DTMF_KEYS.index(item[0])))


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
    announce: Announcements,
    periodic: PeriodicPrompts | None,
    exit_keys: dict[str, str],
    callback: CallbackSettings | None,
) -> QueueSettings:
    return QueueSettings(
        strategy, ring_timeout, retry, wrapup, max_callers, music, tuple(join_empty), tuple(leave_empty), ringing,
        announce, periodic, _exit_keys(exit_keys), callback,
    )  # fmt: skip


# -- callbacks ------------------------------------------------------------------------------------------------

CALLER_ID = re.compile(r'^(?:"[A-Za-z0-9 ._-]{1,40}" ?<\+?[0-9]{1,20}>|\+?[0-9]{1,20})$')
MODES = tuple(mode.value for mode in Mode)
_MODE_PROMPTS = {Mode.CUSTOMER_FIRST: ("intro", "confirm", "connecting", "goodbye"), Mode.AGENT_FIRST: ("agent",)}
COUNTRY_MIX_UPS = {"UK": "GB", "EL": "GR"}  # codes people write that are not ISO 3166


class _Country(Text):
    """An ISO 3166 region ``phonenumbers`` knows: ``DE``, ``GB``…; lower case is taken."""

    def __init__(self) -> None:
        super().__init__(what="country code such as DE or GB")

    def parse(self, node: Node, ctx: ParseContext) -> str:
        value = super().parse(node, ctx)
        if value is INVALID:
            return value
        code = value.strip().upper()
        if is_region(code):
            return code
        if code in COUNTRY_MIX_UPS:
            hint = f"did you mean '{COUNTRY_MIX_UPS[code]}'? (the ISO 3166 code)"
        else:
            hint = "write the two-letter ISO 3166 code of the country, e.g. DE, GB, FR or US"
        return ctx.error(node, f"'{value}' is not a country phonenumbers knows", hint)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[A-Za-z]{2}$"}


def _callback(
    mode: str, priority: int, attempts: int, retry_after: list[float], ring_timeout: float, agent_timeout: float,
    hours: str | None, caller_id: str | None, country: str | None, confirm_key: str, confirm_tries: int,
    confirm_seconds: float, detect_machine: bool, prompts: dict[str, str],
) -> CallbackSettings:
    return CallbackSettings(
        Mode(mode), priority, attempts, tuple(retry_after), ring_timeout, agent_timeout, hours, caller_id, country,
        confirm_key, confirm_tries, confirm_seconds, detect_machine, tuple({**DEFAULT_PROMPTS, **prompts}.items()),
    )


def _refer_callback_prompts(value: CallbackSettings, node: Node, ctx: ParseContext) -> CallbackSettings:
    """The default prompts the answered callback leg plays in this mode must be in the catalog like others."""
    given = node.get("prompts") if isinstance(node, Mapping) else None
    named = set(given.keys()) if isinstance(given, Mapping) else set()
    for role in _MODE_PROMPTS[value.mode]:
        if role not in named:
            ctx.refer("prompt", value.prompt(role), node.location)
    return value


_DEFAULT_CALLBACK = CallbackSettings()
CALLBACK_OPTIONS: dict[str, Option] = {
    "mode": Option(
        Text(choices=MODES, what="callback mode"),
        "`customer-first`: ring the customer; once they press `confirm_key` they join the queue ahead of callers "
        "who just joined. `agent-first`: the callback waits in the queue for an agent, then the customer is "
        "rung.",
        _DEFAULT_CALLBACK.mode.value,
    ),
    "priority": Option(
        Integer(0, 100), "Queue priority of the callback call (`QUEUE_PRIO`): above the queue step's so the "
        "caller keeps their place.", _DEFAULT_CALLBACK.priority,
    ),
    "attempts": Option(Integer(1, 20), "Dial attempts before the callback counts as failed.",
                       _DEFAULT_CALLBACK.attempts),
    "retry_after": Option(
        ListOf(Duration(), min_items=1),
        "Waits before the second, third… attempt (busy, no answer, machine…); the last one repeats.",
        list(_DEFAULT_CALLBACK.retry_after),
    ),
    "ring_timeout": Option(Duration(300), "How long the customer's phone rings.", _DEFAULT_CALLBACK.ring_timeout),
    "agent_timeout": Option(
        Duration(), "agent-first: the longest a callback waits in the queue for an agent.",
        _DEFAULT_CALLBACK.agent_timeout,
    ),
    "hours": Option(
        Text(NAME_PATTERN, what="schedule name"),
        "A schedule of this flow (`schedules:`): callbacks are dialled only while it is open. Absent: any time.",
    ),
    "caller_id": Option(
        Text(CALLER_ID, what="caller ID", hint='write a number such as +4930123456 or "Example" <+4930123456>'),
        "The number (and name) the customer sees.",
    ),
    "country": Option(
        _Country(),
        "Country (ISO 3166, e.g. DE) of numbers written without a country code, typed or in the caller ID. "
        "Absent: only international numbers are understood.",
    ),
    "confirm_key": Option(Key(), "customer-first: the key the customer presses to be connected.",
                          _DEFAULT_CALLBACK.confirm_key),
    "confirm_tries": Option(Integer(1, 10), "customer-first: how often the confirmation is asked.",
                            _DEFAULT_CALLBACK.confirm_tries),
    "confirm_seconds": Option(Duration(60), "customer-first: the wait for the key after each ask.",
                              _DEFAULT_CALLBACK.confirm_seconds),
    "detect_machine": Option(
        Boolean(), "customer-first: detect answering machines (Asterisk's AMD); a machine ends the attempt.",
        _DEFAULT_CALLBACK.detect_machine,
    ),
    "prompts": Option(
        MapOf(Text(choices=tuple(DEFAULT_PROMPTS), what="callback prompt role"), PromptName(), "callback prompts"),
        "Prompts of the callback call, by role: "
        + ", ".join(f"`{role}` (`{prompt}`)" for role, prompt in DEFAULT_PROMPTS.items())
        + "; agent is said to the agent (agent-first), then the number.",
        {},
    ),
}
CALLBACK_RECORD: Record[CallbackSettings] = Record(
    CALLBACK_OPTIONS, factory=_callback, what="callback settings", check=_refer_callback_prompts
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
    "announce": Option(
        Record(ANNOUNCE_OPTIONS, factory=Announcements, what="announcements"),
        "What Asterisk announces to callers while they wait: their position and, if asked, its hold time.",
        _DEFAULT_ANNOUNCE,
    ),
    "periodic": Option(
        _PERIODIC_RECORD, "Prompts played every so often while callers wait (none when absent)."
    ),
    "exit_keys": Option(
        MapOf(Key(), _ExitOutcome(), "exit keys"),
        "Keys a waiting caller can press to leave the queue, each with the outcome the flow resumes with; "
        "the queue step maps the outcome to a step in its `outcomes` (compiled into queues.conf `context`).",
        {},
    ),
    "callback": Option(
        CALLBACK_RECORD,
        "How callers of this queue are called back (a `callback` step, a queue step's `callback_on_hangup`): "
        "mode, priority, attempts and retries, calling window, the country of typed numbers.",
    ),
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
