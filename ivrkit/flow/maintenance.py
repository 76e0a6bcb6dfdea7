"""The flow's ``maintenance:`` block: what a call meets while the flow, or the whole service, is in maintenance.

An operator switches a mode on (``ivrkit maintenance on``), a window declared here starts, or the circuit
breaker trips; a call that starts then does not reach the flow's ``start`` step. It hears the mode's prompts,
then, when the maintenance has an end, that end in the caller's language and the flow's timezone ("we reopen
today at 14:00", "tomorrow at 08:00", "on 2 December 2026 at 08:00"), then the mode's action: hang up, go to
a step (which then runs as usual), or transfer or queue the call::

    maintenance:
      planned:   {prompt: maintenance-planned, then: hangup}
      emergency: {prompt: maintenance-emergency, reopening: service-back, then: {goto: emergency_offer}}
      closed:    {prompt: [lines-closed, standby-stay], then: {transfer: PJSIP/standby}}  # or {queue: backup}
      windows:   # scheduled here, in the flow's timezone unless an offset is given
        - {mode: planned, from: "2026-12-01T22:00", until: "2026-12-02T02:00", reason: database upgrade}
      breaker: {max_calls_per_minute: 300, max_error_rate: 50%, min_calls: 20, quiet: 10m, clear: auto}

Precedence: emergency over planned over closed (whoever switched them on, for this flow or for all flows); a
flow's own window beats a global one of the same mode. All three beat the flow's business hours (holiday,
closed, open), because maintenance is met before the first step. Only calls that start meet it: a call
already in the flow, or coming back from a queue, carries on.

Each mode is optional: without one, the mode plays the gate's prompt (``dialplan.maintenance``), speaks the
end and hangs up. A flow without a ``maintenance:`` block plays the gate's prompt and hangs up, as the
compiled gate does when the server is down. The gate plays the first prompt of each mode here unless
``dialplan.maintenance`` names its own. ``reopening`` is played before the spoken end (``none``: the end is
not spoken); ``time_words`` are the prompts around it. A transfer or queue that does not reach anyone ends
the call (``maintenance-transfer-busy``…): for outcomes of your own, ``goto`` a transfer or queue step.
The ``breaker`` switches emergency mode on for the flow when a minute's new calls or errors cross a threshold
(:mod:`ivrkit.maintenance.breaker`).

The ``windows`` are stored by the server (and ``ivrkit dispatcher``) each time it loads the file: ``ivrkit
maintenance status`` and ``history`` show them like the operators' windows, from the ``schedule`` and by the
flow file. A window taken out of the file is cancelled at the next reload; a changed window is a new one.
Operators do not switch them off: edit the file.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field, replace
from typing import Any

from ivrkit.flow.diagnostics import Location
from ivrkit.flow.expressions import Template
from ivrkit.flow.fields import (
    INVALID,
    Boolean,
    Duration,
    Field,
    Integer,
    Invalid,
    ListOf,
    LocalDateTime,
    Option,
    ParseContext,
    Record,
    StepRef,
    Text,
)
from ivrkit.flow.segments import PromptName
from ivrkit.flow.source import Mapping, Node, Scalar, describe
from ivrkit.maintenance.model import Mode, Source, Window, declared_id
from ivrkit.steps.queue import QUEUE_BODY, QueueSpec
from ivrkit.steps.transfer import Transfer, TransferSpec

MODES = tuple(mode.value for mode in Mode)
ACTIONS = ("hangup", "goto", "transfer", "queue")
ACTION_EXAMPLES = {  # an action named without its target, and how to write it
    "goto": "{goto: STEP}",
    "transfer": "{transfer: PJSIP/standby} or {transfer: {to: ..., timeout: 30s}}",
    "queue": "{queue: backup} or {queue: {name: backup, timeout: 10m}}",
}
CLEAR_MODES = ("auto", "operator")
DEFAULT_REOPENING = "we-reopen"
MIN_QUIET = 60.0  # the breaker measures per minute: a shorter quiet period would switch on and off every minute


@dataclass(frozen=True)
class Action:
    """What follows the prompts: ``hangup``, ``goto`` a step, ``transfer`` or ``queue`` (one is set)."""

    kind: str = "hangup"  # one of ACTIONS
    step: str | None = None
    transfer: TransferSpec | None = None
    queue: QueueSpec | None = None

    @property
    def target(self) -> str | None:
        """The step, queue or (written) destination, for the journal and messages."""
        if self.transfer is not None:
            return str(self.transfer.to.source)
        return self.queue.name if self.queue is not None else self.step


HANGUP = Action()


@dataclass(frozen=True)
class ModeHandling:
    """One mode: its prompts (None: the gate's), what is played before the spoken end, and the action."""

    prompt: tuple[str, ...] | None = None
    reopening: tuple[str, ...] = (DEFAULT_REOPENING,)  # () : the end is not spoken
    then: Action = HANGUP


@dataclass(frozen=True)
class TimeWords:
    """The prompts around a spoken end: "today at" 14:00, "tomorrow at" 08:00, "on" <date> "at" 08:00."""

    today: str = "reopen-today"
    tomorrow: str = "reopen-tomorrow"
    on: str = "reopen-on"
    at: str = "reopen-at"


@dataclass(frozen=True)
class DeclaredWindow:
    """A window as written in the flow file; times without an offset are in the flow's timezone."""

    mode: Mode
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str = ""
    location: Location | None = None

    def window(self, flow: str, timezone: str, file: str) -> Window:
        """The window of ``flow`` (times in its ``timezone`` unless written with an offset), by the flow file,
        with the id the store keeps it under (:func:`~ivrkit.maintenance.model.declared_id`)."""
        zone = zoneinfo.ZoneInfo(timezone)

        def aware(moment: dt.datetime) -> dt.datetime:
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)

        start, end = aware(self.starts_at), aware(self.ends_at)
        window_id = declared_id(flow, self.mode, start, end, self.reason)
        return Window(window_id, flow, self.mode, start, end, self.reason.strip(), file, Source.SCHEDULE)


@dataclass(frozen=True)
class Breaker:
    """When emergency mode switches itself on for the flow, and how it switches off."""

    max_calls_per_minute: int | None = None
    max_error_rate: float | None = None  # a fraction of the last minute's calls that ended in `error`
    min_calls: int = 20  # the error rate counts from this many calls a minute
    quiet: float = 600.0  # seconds below both thresholds before `clear: auto` switches it off
    clear: str = "auto"  # or "operator": stays on until someone switches it off


@dataclass(frozen=True)
class MaintenanceSettings:
    planned: ModeHandling = field(default_factory=ModeHandling)
    emergency: ModeHandling = field(default_factory=ModeHandling)
    closed: ModeHandling = field(default_factory=ModeHandling)
    time_words: TimeWords = field(default_factory=TimeWords)
    declared: tuple[DeclaredWindow, ...] = ()
    breaker: Breaker | None = None
    windows: tuple[Window, ...] = ()  # `declared` for this flow, in its timezone (the loader binds them)

    def handling(self, mode: Mode | str) -> ModeHandling:
        handling: ModeHandling = getattr(self, Mode(mode).value)
        return handling

    def bound(self, flow: str, timezone: str, file: str) -> MaintenanceSettings:
        """These settings with the declared windows as windows of ``flow``, declared by ``file``."""
        return replace(self, windows=tuple(declared.window(flow, timezone, file) for declared in self.declared))


# -- reading the block ----------------------------------------------------------------------------------------


class _Prompts(Field[tuple[str, ...]]):
    """One prompt or a list of them; with ``none_word``, ``none`` or ``false`` mean no prompt at all."""

    def __init__(self, none_word: bool = False):
        self.none_word = none_word
        self.type_name = "prompt or list of prompts" + (", or none" if none_word else "")

    def parse(self, node: Node, ctx: ParseContext) -> tuple[str, ...]:
        if self.none_word and isinstance(node, Scalar) and (node.value is False or node.value == "none"):
            return ()
        prompts = ListOf(PromptName(), min_items=1).parse(node, ctx)
        return INVALID if isinstance(prompts, Invalid) else tuple(prompts)

    def json_schema(self) -> dict[str, Any]:
        schema = ListOf(PromptName(), min_items=1).json_schema()
        return {"anyOf": [{"enum": ["none", False]}, schema]} if self.none_word else schema


def _action(goto: str | None, transfer: Any, queue: Any, hangup: bool | None) -> Action:
    if goto is not None:
        return Action("goto", step=goto)
    if transfer is not None:
        return Action("transfer", transfer=TransferSpec(transfer) if isinstance(transfer, Template) else transfer)
    if queue is not None:
        return Action("queue", queue=QueueSpec(queue) if isinstance(queue, str) else queue)
    return HANGUP


def _one_action(value: Action, node: Node, ctx: ParseContext) -> Action:
    if not isinstance(node, Mapping):  # the record has no shorthand: only mappings reach here
        return value
    given = [name for name in ACTIONS if name in node]
    if len(given) > 1:
        return ctx.error(node.key_node(given[1]), f"the mode has two actions, {given[0]} and {given[1]}",
                         "choose one: hangup, goto, transfer or queue")
    if not given:
        return ctx.error(node, "the action is empty", "write hangup, {goto: STEP}, {transfer: DEST} or {queue: NAME}")
    if given == ["hangup"] and node.get("hangup") is not None:
        flag = node.get("hangup")
        if isinstance(flag, Scalar) and flag.value is False:
            return ctx.error(flag, "`hangup: false` is not an action", "write hangup, or another action")
    return value


_ACTION_RECORD: Record[Action] = Record(
    {
        "goto": Option(StepRef(), "Go to this step of the flow; it runs as usual from there."),
        "transfer": Option(Transfer.body, "Dial this endpoint or number: `PJSIP/standby` or `{to, timeout}`."),
        "queue": Option(QUEUE_BODY, "Put the caller in this queue: a name or `{name, timeout, priority}`."),
        "hangup": Option(Boolean(), "Hang up (the default action)."),
    },
    factory=_action,
    what="maintenance action",
    check=_one_action,
)


class _ActionField(Field[Action]):
    """``hangup``, or a mapping with one of goto, transfer, queue (or ``hangup: true``)."""

    type_name = "hangup, {goto: STEP}, {transfer: DEST} or {queue: NAME}"
    record = _ACTION_RECORD  # the mapping form, for the generated reference

    def parse(self, node: Node, ctx: ParseContext) -> Action:
        if isinstance(node, Scalar) and node.value == "hangup":
            return HANGUP
        if isinstance(node, Scalar) and isinstance(node.value, str) and node.value in ACTION_EXAMPLES:
            return ctx.error(node, f"`{node.value}` needs a target", f"write {ACTION_EXAMPLES[node.value]}")
        if not isinstance(node, Mapping):
            return ctx.error(node, f"expected {self.type_name}, got {describe(node)}")
        return _ACTION_RECORD.parse(node, ctx)

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"enum": ["hangup"]}, _ACTION_RECORD.json_schema()]}


def _mode_handling(prompt: tuple[str, ...] | None, reopening: Any, then: Action | str) -> ModeHandling:
    """Defaults arrive as written in the schema: the reopening prompt's name, the action ``hangup``."""
    reopening = (reopening,) if isinstance(reopening, str) else tuple(reopening)
    return ModeHandling(prompt, reopening, then if isinstance(then, Action) else HANGUP)


def _mode_options(mode: str) -> dict[str, Option]:
    return {
        "prompt": Option(_Prompts(), f"Played first (default: the gate's prompt, `dialplan.maintenance.{mode}`)."),
        "reopening": Option(
            _Prompts(none_word=True),
            "Played before the spoken end, when the maintenance has one (then \"today at 14:00\"…); `none`: the "
            "end is not spoken.",
            DEFAULT_REOPENING,
        ),
        "then": Option(_ActionField(), "What follows: `hangup`, `{goto: STEP}`, `{transfer: DEST}` or "
                       "`{queue: NAME}`.", "hangup"),
    }




def _declared(mode: str, starts_at: dt.datetime, ends_at: dt.datetime, reason: str) -> DeclaredWindow:
    return DeclaredWindow(Mode(mode), starts_at, ends_at, reason)


def _shown(moment: dt.datetime) -> str:
    return moment.isoformat(" ", timespec="minutes")


def _ordered(value: DeclaredWindow, node: Node, ctx: ParseContext) -> DeclaredWindow:
    """A window ends after it starts; both times are read alike (with or without an offset)."""
    start, end = value.starts_at, value.ends_at
    if (start.tzinfo is None) != (end.tzinfo is None):
        where = node.get("until") if isinstance(node, Mapping) else None
        return ctx.error(where or node, "`from` and `until` mix a time with an offset and one without",
                         "give both an offset, or neither (then both are in the flow's timezone)")
    if end <= start:
        where = node.get("until") if isinstance(node, Mapping) else None
        return ctx.error(where or node, f"the window ends ({_shown(end)}) before it starts ({_shown(start)})",
                         "`until` is the end: put it after `from`")
    return replace(value, location=node.location)


_WINDOW: Record[DeclaredWindow] = Record(
    {
        "mode": Option(Text(choices=MODES, what="maintenance mode"), "planned, emergency or closed.", required=True),
        "from": Option(LocalDateTime(), "When it starts.", required=True),
        "until": Option(LocalDateTime(), "When it ends (the time callers hear).", required=True),
        "reason": Option(Text(), "Why, for the status and the audit trail (`maintenance.reason` in expressions)."),
    },
    factory=lambda **values: _declared(values["mode"], values["from"], values["until"], values["reason"] or ""),
    what="maintenance window",
    check=_ordered,
)


_WINDOWS = ListOf(_WINDOW, single=False)
_WINDOWS.type_name = "list of windows such as [{mode, from, until}]"


class _Rate(Field[float]):
    """A fraction above 0 and below 1, or a percentage: ``0.5`` or ``50%``. The breaker trips when the rate is
    *exceeded*, so 1 (100%) could never trip."""

    type_name = "rate such as 0.5 or 50%"

    def parse(self, node: Node, ctx: ParseContext) -> float:
        value = self._scalar(node, ctx)
        if value is INVALID:
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*%\s*", value):
            rate = float(value.strip().rstrip("%")) / 100
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rate = float(value)
        else:
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}")
        if not 0 < rate < 1:
            written = node.raw if isinstance(node, Scalar) and node.raw else value
            return ctx.error(node, f"an error rate of {written} is out of range",
                             "write a fraction above 0 and below 1 (0.5), or a percentage (50%)")
        return rate

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                          {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"}]}


def _breaker_limits(value: Breaker, node: Node, ctx: ParseContext) -> Breaker:
    if value.max_calls_per_minute is None and value.max_error_rate is None:
        return ctx.error(node, "the breaker has no threshold, so it would never trip",
                         "give max_calls_per_minute, max_error_rate or both")
    if value.quiet < MIN_QUIET:
        where = node.get("quiet") if isinstance(node, Mapping) else None
        return ctx.error(where or node, f"a quiet period of {value.quiet:g}s is shorter than the minute the breaker "
                         "measures", "use 1m or more")
    return value


_DEFAULT_BREAKER = Breaker()
_BREAKER: Record[Breaker] = Record(
    {
        "max_calls_per_minute": Option(
            Integer(1, 100000),
            "Trip when more new calls than this started in the last minute (calls meeting maintenance included).",
        ),
        "max_error_rate": Option(
            _Rate(),
            "Trip when more than this share of the new calls that ended in the last minute ended in error "
            "(outcome `error`, a crash, a protocol error).",
        ),
        "min_calls": Option(Integer(1, 100000), "The error rate counts only from this many calls in the minute.",
                            _DEFAULT_BREAKER.min_calls),
        "quiet": Option(Duration(), "With `clear: auto`: how long no call may find a threshold crossed before "
                        "emergency mode switches off again.", _DEFAULT_BREAKER.quiet),
        "clear": Option(Text(choices=CLEAR_MODES, what="clear mode"), "`auto` after `quiet`, or `operator`: "
                        "stays on until switched off.", _DEFAULT_BREAKER.clear),
    },
    factory=Breaker,
    what="breaker",
    check=_breaker_limits,
)

_DEFAULT_WORDS = TimeWords()
_TIME_WORDS: Record[TimeWords] = Record(
    {
        "today": Option(PromptName(), "Before the time of an end later today (\"today at\").", _DEFAULT_WORDS.today),
        "tomorrow": Option(PromptName(), "Before the time of an end tomorrow (\"tomorrow at\").",
                           _DEFAULT_WORDS.tomorrow),
        "on": Option(PromptName(), "Before the date of an end after tomorrow (\"on\").", _DEFAULT_WORDS.on),
        "at": Option(PromptName(), "Between that date and the time (\"at\").", _DEFAULT_WORDS.at),
    },
    factory=TimeWords,
    what="time words",
)


def _settings(planned: ModeHandling | None, emergency: ModeHandling | None, closed: ModeHandling | None,
              time_words: TimeWords, windows: list[DeclaredWindow], breaker: Breaker | None) -> MaintenanceSettings:
    return MaintenanceSettings(planned or ModeHandling(), emergency or ModeHandling(), closed or ModeHandling(),
                               time_words, tuple(windows), breaker)


def _refer_defaults(value: MaintenanceSettings, node: Node, ctx: ParseContext) -> MaintenanceSettings:
    """The default prompts the block plays (reopening, time words) must be in the catalog like written ones."""
    written = node if isinstance(node, Mapping) else Mapping(node.location)
    words = written.get("time_words")
    named = set(words.keys()) if isinstance(words, Mapping) else set()
    for mode in MODES:
        given = written.get(mode)
        if not (isinstance(given, Mapping) and "reopening" in given):
            ctx.refer("prompt", DEFAULT_REOPENING, (given or written).location)
    if any(value.handling(mode).reopening for mode in MODES):
        for role in ("today", "tomorrow", "on", "at"):
            if role not in named:
                ctx.refer("prompt", getattr(value.time_words, role), (words or written).location)
    return value


MAINTENANCE_RECORD: Record[MaintenanceSettings] = Record(
    {
        **{
            mode: Option(Record(_mode_options(mode), factory=_mode_handling, what=f"{mode} maintenance"),
                         f"What a call meets in maintenance mode `{mode}`.")
            for mode in MODES
        },
        "time_words": Option(_TIME_WORDS, "Prompts around the spoken end of a maintenance.", _DEFAULT_WORDS),
        "windows": Option(_WINDOWS, "Maintenance windows scheduled in the flow file: `{mode, from, until, reason}`.",
                          []),
        "breaker": Option(_BREAKER, "Circuit breaker: emergency mode for this flow when its calls or errors of "
                          "the last minute cross a threshold; off again after `quiet` (`clear: auto`) or by an "
                          "operator."),
    },
    factory=_settings,
    what="maintenance settings",
    check=_refer_defaults,
)
MAINTENANCE_OPTION = Option(
    MAINTENANCE_RECORD,
    "What a call meets while the flow is in maintenance: per mode its prompts, the spoken end and an action; "
    "windows scheduled here; the circuit breaker.",
)
