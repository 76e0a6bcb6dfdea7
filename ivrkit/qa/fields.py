"""Field types for flow-test files, built on the flow language's :mod:`ivrkit.flow.fields`.

They read located YAML nodes the same way flow files are read, so a test file gets the same quality of
errors: the line and column, "did you mean", and hints for YAML traps. Values a QA engineer types as
digits (phone numbers, key sequences, account numbers) are taken as typed, because YAML would turn
``+4930123456`` into a number and ``0123`` into 83.
"""

from __future__ import annotations

import re
from typing import Any

from ivrkit.callbacks.model import ACTIVE, Origin, State
from ivrkit.engine.world import UNAVAILABLE, QueueStats, StaticWorld, preset_callbacks, preset_maintenance
from ivrkit.flow.diagnostics import did_you_mean
from ivrkit.flow.fields import (
    INVALID,
    Any_,
    Boolean,
    Duration,
    Field,
    Integer,
    Invalid,
    ListOf,
    LocalDateTime,
    MapOf,
    OneOfShape,
    Option,
    ParseContext,
    Record,
    Text,
)
from ivrkit.flow.source import Mapping, Node, Scalar, Sequence, describe, plain
from ivrkit.maintenance.model import GLOBAL, Mode
from ivrkit.prompts.languages import LANGUAGE_CODE
from ivrkit.qa.expect import (
    MAINTENANCE_FIELDS,
    CallbackExpected,
    CallbacksMatch,
    LanguageSpoken,
    MaintenanceMet,
    OutcomeIs,
    TextExpected,
    TextsMatch,
    VarExpected,
    VarsMatch,
)
from ivrkit.qa.model import Located, ScriptStep
from ivrkit.sim.script import KEYS, Action, ScriptError, action_from, parse_keys
from ivrkit.sim.session import ANSWERED, HandoffResult
from ivrkit.steps.queue import OUTCOME_NAME, QUEUE_NAME, QUEUE_OUTCOMES
from ivrkit.steps.transfer import TRANSFER_OUTCOMES

HANDOFF_OUTCOMES = tuple(o for o in dict.fromkeys([ANSWERED, *QUEUE_OUTCOMES, *TRANSFER_OUTCOMES]) if o != "otherwise")
ACTION_KINDS = ("press", "silence", "wait", "hangup")
ACTION_TIMING = ("after", "during", "in_step")
ACTION_OPTIONS = (*ACTION_KINDS, *ACTION_TIMING, "gap")


def as_typed(node: Scalar) -> str:
    """A scalar as the author typed it (quotes removed)."""
    return node.raw if node.value is not None else ""


class RawText(Field[str]):
    """Text exactly as typed; a phone number keeps its ``+`` and leading zeros."""

    def __init__(self, what: str = "text"):
        self.type_name = what

    def parse(self, node: Node, ctx: ParseContext) -> str:
        if not isinstance(node, Scalar) or node.value is None:
            return ctx.error(node, f"expected {self.type_name}, got {describe(node)}")
        return node.raw

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "number"]}


class HandoffOutcome(Field[str]):
    """What the dialplan reports: ``answered``, a queue/dial status in any letter case, or the outcome of a queue's
    exit key (``callback``); a near miss of a status is taken for a typo."""

    type_name = "hand-off outcome"

    def parse(self, node: Node, ctx: ParseContext) -> str:
        if not isinstance(node, Scalar) or not isinstance(node.value, str):
            return ctx.error(node, f"expected a {self.type_name} such as answered or timeout, got {describe(node)}")
        value = node.value.strip().lower()
        typo = did_you_mean(value, HANDOFF_OUTCOMES)
        if value not in HANDOFF_OUTCOMES and (typo or not OUTCOME_NAME.match(value)):
            known = f"use one of: {', '.join(sorted(HANDOFF_OUTCOMES))}"
            return ctx.error(node, f"'{node.value}' is not a hand-off outcome",
                             typo or f"{known}, or an exit-key outcome such as callback")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"enum": sorted(HANDOFF_OUTCOMES)}, {"type": "string", "pattern": OUTCOME_NAME.pattern}]}


def _stat_field(default: object) -> Field[Any]:
    """A queue statistic's field, by the type of its default: a count, a duration or a flag."""
    if isinstance(default, bool):
        return Boolean()
    return Integer(0) if isinstance(default, int) else Duration()


_STATS: dict[str, Field[Any]] = {name: _stat_field(default) for name, default in vars(QueueStats()).items()}


def _changes(**stats: Any) -> dict[str, Any]:
    return {name: value for name, value in stats.items() if value is not None}


_HANDOFF = OneOfShape(
    scalar=HandoffOutcome(),
    mapping=Record(
        {
            "outcome": Option(HandoffOutcome(), "answered, or the queue/dial status (timeout, busy…).", required=True),
            "after": Option(Duration(), "Time spent in the queue or ringing before that, e.g. 10m.", 0.0),
            "queues": Option(
                MapOf(Text(QUEUE_NAME, what="queue name"), Record(
                    {name: Option(field, f"queue statistic `{name}` from then on") for name, field in _STATS.items()},
                    factory=_changes, what="queue statistics"), "queues"),
                "Queue statistics that changed meanwhile, e.g. {support: {waiting: 6}}; the others stay.",
                {},
            ),
        },
        factory=HandoffResult,
        what="hand-off result",
    ),
    what="hand-off outcome or {outcome, after}",
)


class Handoffs(Field[Located[list[HandoffResult]]]):
    """What the dialplan answers after each hand-off, in order; later hand-offs are answered."""

    type_name = "list of hand-off results"

    def parse(self, node: Node, ctx: ParseContext) -> Located[list[HandoffResult]]:
        results = ListOf(_HANDOFF).parse(node, ctx)
        if results is INVALID or INVALID in results:
            return INVALID
        return Located([r if isinstance(r, HandoffResult) else HandoffResult(r) for r in results], node.location)

    def json_schema(self) -> dict[str, Any]:
        return ListOf(_HANDOFF).json_schema()


def _world(queues: dict[str, QueueStats] | None, maintenance: Any, callbacks: Any) -> StaticWorld:
    presets, down = preset_callbacks(callbacks or [])
    return StaticWorld(dict(queues or {}), preset_maintenance(maintenance or {}), preset_callbacks=presets,
                       callbacks_down=down)


MODES = tuple(mode.value for mode in Mode)
_MODE = Text(choices=MODES, what="maintenance mode")
SCOPE_NAME = re.compile(r"^(?:\*|[A-Za-z_][A-Za-z0-9_-]*)$")
_PRESET_MAINTENANCE: Record[dict[str, Any]] = Record(
    {
        "mode": Option(_MODE, "planned, emergency or closed.", required=True),
        "until": Option(LocalDateTime(), "When it ends, the time callers hear (without an offset: the tested flow's "
                        "timezone). Absent: until switched off."),
        "from": Option(LocalDateTime(), "When it starts (absent: before the call)."),
        "reason": Option(Text(), "Why: `maintenance.reason` in expressions.", ""),
    },
    what="maintenance",
)


class _Scope(Text):
    """A flow name, or ``"*"`` (or ``global``) for every flow."""

    def __init__(self) -> None:
        super().__init__(SCOPE_NAME, what="flow name or \"*\"", hint='a flow name, or "*" (quoted) for every flow')

    def parse(self, node: Node, ctx: ParseContext) -> str:
        value = super().parse(node, ctx)
        return GLOBAL if value == "global" else value


MAINTENANCE_STATE = OneOfShape(
    scalar=_MODE,
    mapping=MapOf(_Scope(), OneOfShape(scalar=_MODE, mapping=_PRESET_MAINTENANCE, what="mode or {mode, until}"),
                  "maintenance by flow"),
    what="maintenance mode or {flow: mode or {mode, until, from, reason}}",
)


QUEUE_NAME_FIELD = Text(QUEUE_NAME, what="queue name")
_PRESET: Record[dict[str, Any]] = Record(
    {
        "number": Option(RawText("phone number"), "The number, in E.164 as the store keeps it.", required=True),
        "queue": Option(QUEUE_NAME_FIELD, "The queue it is for.", required=True),
        "state": Option(Text(choices=tuple(s.value for s in State if s in ACTIVE), what="active callback state"),
                        "pending (default), dialing or connected."),
        "id": Option(Text(what="callback id"), "Its id (default cb-1, cb-2, …)."),
    },
    what="callback",
)


class PresetCallbacks(Field[Any]):
    """``callbacks: [{number: "+4930123456", queue: support}]``: callbacks active before the call (a caller who
    calls again); ``callbacks: unavailable``: the callback store fails (requests are refused)."""

    type_name = f"list of callbacks such as [{{number: \"+4930123456\", queue: support}}], or {UNAVAILABLE}"

    def parse(self, node: Node, ctx: ParseContext) -> Any:
        if isinstance(node, Scalar) and node.value == UNAVAILABLE:
            return UNAVAILABLE
        if not isinstance(node, Sequence):
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}")
        items = [_PRESET.parse(item, ctx) for item in node.items]
        if INVALID in items:
            return INVALID
        return [{key: value for key, value in item.items() if value is not None} for item in items]

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"enum": [UNAVAILABLE]}, {"type": "array", "items": _PRESET.json_schema()}]}


QUEUE_STATS = Record(
    {name: Option(field, f"queue statistic `{name}`", getattr(QueueStats, name)) for name, field in _STATS.items()},
    factory=QueueStats,
    what="queue statistics",
)
STATE = Record(
    {
        "queues": Option(MapOf(Text(QUEUE_NAME, what="queue name"), QUEUE_STATS, "queues"),
                         "Queue statistics by queue name, e.g. {support: {waiting: 12}}."),
        "maintenance": Option(
            MAINTENANCE_STATE,
            "Maintenance for every flow (planned, emergency, closed), or by flow name (\"*\": every flow): a mode, "
            "or {mode, until, from, reason}.",
        ),
        "callbacks": Option(PresetCallbacks(), "Callbacks active before the call, [{number, queue, state, id}], or "
                            f"`{UNAVAILABLE}`: the callback store fails."),
    },
    factory=_world,
    what="state",
)


class _PressItem(Field[ScriptStep]):
    type_name = "keys such as 1 or \"12345678#\""

    def parse(self, node: Node, ctx: ParseContext) -> ScriptStep:
        text = as_typed(node) if isinstance(node, Scalar) and not isinstance(node.value, bool) else ""
        if KEYS.match(text):
            return ScriptStep(Action("press", keys=text.upper()), node.location)
        hint = 'quote "*" and "#"'
        if text.lower() in ("silence", "hangup", "wait") or text.lower().startswith("w"):
            hint = "`press:` lists keys only; use `script:` for silence, waits and hang-ups"
        elif " " in text:
            hint = "write one list item per menu answer: [1, 1, \"12345678\"], or use `keys:` for a spaced string"
        return ctx.error(node, f"expected {self.type_name}, got {describe(node)}", hint)

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "integer"], "pattern": KEYS.pattern}


class Presses(Field[list[ScriptStep]]):
    """``press: [1, 1, "12345678", 1]``: each item is typed the next time the IVR listens."""

    type_name = "list of keys"

    def parse(self, node: Node, ctx: ParseContext) -> list[ScriptStep]:
        steps = ListOf(_PressItem()).parse(node, ctx)
        return INVALID if steps is INVALID or INVALID in steps else steps

    def json_schema(self) -> dict[str, Any]:
        return ListOf(_PressItem()).json_schema()


class CompactKeys(Field[list[ScriptStep]]):
    """``keys: "1 1 12345678 s w10 h"``: the compact form of ``ivrkit simulate --keys``."""

    type_name = "key string such as \"1 2 s h\""

    def parse(self, node: Node, ctx: ParseContext) -> list[ScriptStep]:
        if not isinstance(node, Scalar) or isinstance(node.value, bool):
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}")
        try:
            script = parse_keys(as_typed(node))
        except ScriptError as exc:
            return ctx.error(node, str(exc), "keys 0-9 * # (quote the string), s silence, w10 wait 10 s, h hang up")
        return [ScriptStep(action, node.location) for action in script.actions]

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "integer"]}


class ScriptActions(Field[list[ScriptStep]]):
    """``script:`` items: ``silence``, ``hangup``, keys, or {press|wait|hangup|silence, after, during, in_step, gap}."""

    type_name = "list of caller actions"

    def parse(self, node: Node, ctx: ParseContext) -> list[ScriptStep]:
        items = node.items if isinstance(node, Sequence) else [node]
        steps = [self._item(item, ctx) for item in items]
        return INVALID if INVALID in steps else steps

    def _item(self, node: Node, ctx: ParseContext) -> ScriptStep:
        if isinstance(node, Scalar) and not isinstance(node.value, bool) and node.value is not None:
            text = as_typed(node)
            if text in ("silence", "hangup"):
                return ScriptStep(Action(text), node.location)
            if KEYS.match(text):
                return ScriptStep(Action("press", keys=text.upper()), node.location)
        if not isinstance(node, Mapping):
            return ctx.error(node, f"expected a caller action (press, silence, wait, hangup), got {describe(node)}",
                             did_you_mean(str(getattr(node, "value", "")), ACTION_KINDS))
        for key in node.keys():
            if key not in ACTION_OPTIONS:
                return ctx.error(node.key_node(key), f"unknown option '{key}' in a caller action",
                                 did_you_mean(key, ACTION_OPTIONS) or f"known options: {', '.join(ACTION_OPTIONS)}")
        kinds = [key for key in node.keys() if key in ACTION_KINDS]
        if len(kinds) != 1:
            where = node.key_node(kinds[1]) if kinds else node
            return ctx.error(where, "a caller action does exactly one thing: press, silence, wait or hangup",
                             "split it into separate list items" if kinds else None)
        timing = [key for key in node.keys() if key in (*ACTION_TIMING, "gap")]
        if kinds[0] in ("wait", "silence") and timing:
            return ctx.error(node.key_node(timing[0]), f"`{timing[0]}` does not apply to `{kinds[0]}`",
                             "timing applies to press and hangup")
        data = {key: as_typed(value) if isinstance(value, Scalar) else value for key, value in node.items()}
        try:
            return ScriptStep(action_from(data), node.location)
        except ScriptError as exc:
            return ctx.error(node, str(exc))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array"}


class NameList(Field[Located[tuple[Located[str], ...]]]):
    """A list of prompt or step names (a single name may stand alone), each with its position."""

    type_name = "list of names"

    def parse(self, node: Node, ctx: ParseContext) -> Located[tuple[Located[str], ...]]:
        items = node.items if isinstance(node, Sequence) else [node]
        names = []
        for item in items:
            if not isinstance(item, Scalar) or item.value is None or isinstance(item.value, (bool, list, dict)):
                return ctx.error(item, f"expected a name, got {describe(item)}")
            names.append(Located(as_typed(item), item.location))
        return Located(tuple(names), node.location)

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


class VarsField(Field[VarsMatch]):
    """``vars: {account: "12345678", department: null}``: a subset of the variables at the end."""

    type_name = "mapping of variable names to values"

    def parse(self, node: Node, ctx: ParseContext) -> VarsMatch:
        if not isinstance(node, Mapping):
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}")
        entries = []
        for name, value in node.items():
            expected = value.value if isinstance(value, Scalar) else plain(value)
            raw = value.raw if isinstance(value, Scalar) and value.value is not None else None
            entries.append(VarExpected(name, expected, raw, value.location))
        return VarsMatch("expect.vars", node.location, tuple(entries))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "object"}


class OutcomeField(Field[OutcomeIs]):
    type_name = "outcome such as queue:billing or closed"

    def parse(self, node: Node, ctx: ParseContext) -> OutcomeIs:
        if not isinstance(node, Scalar) or node.value is None or isinstance(node.value, bool):
            return ctx.error(node, f"expected an {self.type_name}, got {describe(node)}")
        return OutcomeIs("expect.outcome", node.location, as_typed(node))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string"}


class LanguageField(Field[LanguageSpoken]):
    """``language: de``: the call's language at the end, every prompt since found in it."""

    type_name = "language code such as en or de"

    def parse(self, node: Node, ctx: ParseContext) -> LanguageSpoken:
        language: Any = Text(pattern=LANGUAGE_CODE, what=self.type_name).parse(node, ctx)
        return INVALID if language is INVALID else LanguageSpoken("expect.language", node.location, language)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": LANGUAGE_CODE.pattern}


_TEXT_ITEM: Record[dict[str, Any]] = Record(
    {
        "to": Option(RawText("phone number"), "The number it went to."),
        "text": Option(RawText("text"), "The whole message."),
        "contains": Option(RawText("text"), "A part of the message, e.g. the link's address."),
    },
    what="expected text",
)


class TextsField(Field[TextsMatch]):
    """``texts: [{to: "+4915112345678", contains: "https://example.com/continue?t="}]``; a bare item is
    ``contains``; ``texts: []`` means no text."""

    type_name = "list of texts such as [{to: \"+49…\", contains: \"https://…\"}]"

    def parse(self, node: Node, ctx: ParseContext) -> TextsMatch:
        if not isinstance(node, Sequence):
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}", "write `texts: []` for none")
        items = []
        for item in node.items:
            if isinstance(item, Scalar) and item.value is not None and not isinstance(item.value, bool):
                items.append(TextExpected(item.location, contains=as_typed(item)))
                continue
            values: Any = _TEXT_ITEM.parse(item, ctx)
            if values is INVALID:
                return INVALID
            items.append(TextExpected(item.location, **values))
        return TextsMatch("expect.texts", node.location, tuple(items))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"anyOf": [{"type": "string"}, _TEXT_ITEM.json_schema()]}}


_CALLBACK_ITEM: Record[dict[str, Any]] = Record(
    {
        "number": Option(RawText("phone number"), "The number called back, E.164."),
        "queue": Option(QUEUE_NAME_FIELD, "The queue."),
        "origin": Option(Text(choices=tuple(o.value for o in Origin), what="origin"),
                         "request (a callback step), opt-in or automatic (a hang-up in the queue)."),
        "reason": Option(Any_(), "The reason label chosen (null: none)."),
    },
    what="expected callback",
)


class CallbacksField(Field[CallbacksMatch]):
    """``callbacks: [{number: "+4930123456", queue: support, origin: request}]``: exactly these callbacks were
    registered (``callbacks_cancelled``: cancelled), in order; ``[]``: none. Fields not written are not compared."""

    type_name = "list of callbacks such as [{number: \"+49…\", queue: support}]"

    def __init__(self, cancelled: bool = False):
        self.cancelled = cancelled

    def parse(self, node: Node, ctx: ParseContext) -> CallbacksMatch:
        if not isinstance(node, Sequence):
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}", "write `[]` for none")
        items = []
        for item in node.items:
            values: Any = _CALLBACK_ITEM.parse(item, ctx)
            if values is INVALID or not isinstance(item, Mapping):
                return INVALID
            if self.cancelled and set(item.keys()) - {"number", "queue"}:
                return ctx.error(item, "a cancelled callback is described by its number and queue only")
            items.append(CallbackExpected(item.location, tuple((key, values[key]) for key in item.keys())))
        label = "expect.callbacks_cancelled" if self.cancelled else "expect.callbacks"
        return CallbacksMatch(label, node.location, tuple(items), self.cancelled)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": _CALLBACK_ITEM.json_schema()}


_MAINTENANCE_EXPECTED: Record[dict[str, Any]] = Record(
    {
        "mode": Option(_MODE, "planned, emergency or closed."),
        "scope": Option(_Scope(), "The flow it was switched on for, or \"*\": every flow."),
        "until": Option(LocalDateTime(), "Its end (without an offset: in the flow's timezone)."),
        "action": Option(Text(choices=("hangup", "goto", "transfer", "queue"), what="action"),
                         "What followed the prompts."),
        "target": Option(RawText("target"), "The step, destination or queue of the action."),
    },
    what="expected maintenance",
)


class MaintenanceField(Field[MaintenanceMet]):
    """``maintenance: closed``, ``maintenance: {mode: closed, scope: support, action: transfer}``, or
    ``maintenance: none``: what the call met when it started."""

    type_name = "none, a maintenance mode, or {mode, scope, until, action, target}"

    def parse(self, node: Node, ctx: ParseContext) -> MaintenanceMet:
        label = "expect.maintenance"
        if isinstance(node, Scalar) and node.value in ("none", False):
            return MaintenanceMet(label, node.location, None)
        if isinstance(node, Scalar):
            mode = _MODE.parse(node, ctx)
            return INVALID if isinstance(mode, Invalid) else MaintenanceMet(label, node.location, (("mode", mode),))
        values: Any = _MAINTENANCE_EXPECTED.parse(node, ctx)
        if values is INVALID or not isinstance(node, Mapping):
            return INVALID
        if not node.entries:
            return ctx.error(node, "`maintenance: {}` can never fail", "write `none`, a mode, or the fields to check")
        return MaintenanceMet(label, node.location, tuple((key, values[key]) for key in MAINTENANCE_FIELDS
                                                          if key in node))

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"enum": ["none", *MODES]}, _MAINTENANCE_EXPECTED.json_schema()]}


EXPECT_HELP = {
    "heard": "Exactly the prompts heard, in order (spoken values as digits:123, number:42).",
    "heard_includes": "Prompts heard in this order, others may come between.",
    "not_heard": "Prompts never heard.",
    "interrupted": "Exactly the prompts the caller cut short with a key (barge-in), in order.",
    "steps": "Exactly the steps entered, in order (bare names for the tested flow, flow.step for others).",
    "steps_include": "Steps entered in this order, others may come between.",
    "steps_exclude": "Steps never entered.",
}
EXPECT: Record[dict[str, Any]] = Record(
    {
        **{key: Option(NameList(), help) for key, help in EXPECT_HELP.items()},
        "vars": Option(VarsField(), "Variables at the end of the call (others may exist; null means unset)."),
        "outcome": Option(OutcomeField(), "How the call ended: queue:NAME, transfer:DEST, an outcome label, …"),
        "texts": Option(TextsField(), "Exactly the text messages queued, in order: [{to, text, contains}]."),
        "callbacks": Option(CallbacksField(), "Exactly the callbacks registered, in order: "
                            "[{number, queue, origin, reason}]."),
        "callbacks_cancelled": Option(CallbacksField(cancelled=True), "Exactly the callbacks the caller cancelled, "
                                      "in order: [{number, queue}]."),
        "maintenance": Option(MaintenanceField(), "The maintenance the call met when it started: none, a mode, or "
                              "{mode, scope, until, action, target}."),
        "language": Option(LanguageField(), "The call's language at the end (de), every prompt played while it "
                           "spoke it found in it: none fell back to the flow's language."),
    },
    what="expectations",
)
