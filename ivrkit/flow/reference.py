"""``docs/flow-reference.md``, generated from the field specs so the manual cannot drift from the loader.

Every table row comes from an :class:`~ivrkit.flow.fields.Option` (its field's type in words, default,
required flag and help), every step section from the step class (``summary``, ``example``), and the
business-hours and prompt sections from their modules' docstrings. Only the expression scope is described
here in words; a test compares it with what :meth:`CallContext.scope` really offers.
``ivrkit schema --markdown`` prints the same text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, is_dataclass
from typing import Any

from ivrkit.flow import hours, maintenance, pbx, segments
from ivrkit.flow.expressions import MAX_RANGE, MAX_SIZE
from ivrkit.flow.fields import PROMPT_PATTERN, Duration, Field, Key, ListOf, MapOf, OneOfShape, Option, Record, Text
from ivrkit.flow.hours import DAYS, ScheduleField
from ivrkit.flow.loader import FLOW_OPTIONS
from ivrkit.flow.model import Defaults
from ivrkit.flow.segments import SAY_KINDS
from ivrkit.steps import COMMON_OPTIONS, STEP_KINDS, Step

REGENERATE = "ivrkit schema --markdown --out docs/flow-reference.md"

# The names an expression can read (see CallContext.scope); tests check this list against the engine.
SCOPE: dict[str, str] = {
    "caller.number": "The caller's number (caller ID), as text.",
    "caller.name": "The caller's name (caller ID name), as text.",
    "caller.can_text": (
        "True when the caller's number can receive a text: a number (not anonymous or withheld) matching the "
        "flow's `sms: {mobile: ...}` patterns. Branch on it before offering a text."
    ),
    "caller.callback": (
        "The caller's active callback (asked for earlier and not made yet, in any queue) as `{id, queue, state, "
        "requested_at}`, or nothing: branch on it to offer a caller who calls again to keep or cancel it "
        "(`caller.callback and caller.callback.queue == 'support'`)."
    ),
    "call.uniqueid": "Asterisk's unique id of the call.",
    "call.dnid": "The number the caller dialled.",
    "call.channel": "The channel's name, e.g. `PJSIP/trunk-00000042`.",
    "call.language": (
        "The call's language: the caller's line's (`CHANNEL(language)`) when the flow speaks it or its base "
        "language, else the flow's `language`; a `language` step changes it."
    ),
    "call.args": "The arguments the dialplan passed to the AGI application, as a list of text.",
    "call.params": "Parameters given with the AGI address (`agi://host/support?site=berlin`), as a mapping.",
    "call.flow": "The name of the flow running now.",
    "vars.NAME": "A flow variable (from `variables`, `set` and `collect`); read-only in expressions.",
    "channel.NAME": "An Asterisk channel variable, read from the channel when the expression uses it; "
    "nothing when unset.",
    "now": "The current time in the flow's `timezone` (a datetime: `now.hour`, `now.weekday()`, "
    "`now.strftime('%H:%M')`).",
    "queues.NAME.STAT": "Statistics of the Asterisk queue NAME, read when used; STAT is one of those below.",
    "maintenance": (
        "The maintenance the flow is in, or nothing: a call that starts then meets it before the first step, so "
        "steps see it only after a mode's `goto`. It equals its mode (`maintenance == 'emergency'`)."
    ),
    "maintenance.mode": "`planned`, `emergency` or `closed`.",
    "maintenance.until": "When it ends, in the flow's `timezone` (a datetime), or nothing: until switched off.",
    "maintenance.reason": "Why, as the operator or the window gave it (may be empty).",
    "maintenance.scope": "The flow it was switched on for, or `*`: every flow.",
}
QUEUE_STATS: dict[str, str] = {
    "waiting": "Callers waiting in the queue.",
    "logged_in": "Agents logged in.",
    "ready": "Agents who can take a call now: not on a call, not paused, not in wrap-up.",
    "free": "Agents not on a call and not paused (agents in wrap-up included).",
    "avg_hold": "Average wait before an answer, in seconds.",
    "avg_talk": "Average talk time, in seconds.",
    "longest_wait": (
        "Longest current wait, in seconds. Flow tests only for now: Asterisk's dialplan functions do not give "
        "it, so a live call reads 0 until the server reads queues over AMI."
    ),
    "position": "This caller's position on joining (live: waiting + 1; 0 in a flow test: waiting + 1).",
    "paused": "Agents logged in but paused.",
    "answered": "Calls answered recently (the live server counts those of the last hour it queued).",
    "exists": "False when Asterisk does not know the queue (its other figures then read as 0).",
}


@dataclass(frozen=True)
class Row:
    name: str
    option: Option


def generate() -> str:
    """The whole reference as Markdown text."""
    parts = [
        "# Flow file reference",
        f"<!-- Generated from the field specs by ivrkit/flow/reference.py; do not edit. Regenerate: {REGENERATE} -->",
        "A flow file is a YAML mapping: the options below, and `steps`, a mapping of step names to steps. A step "
        "is a mapping with exactly one *kind* key (`play`, `menu`, …) whose value says what the step does, plus "
        "the kind's options and the [common options](#common-options) beside it. Names (flows, steps, schedules) "
        "use letters, digits, `_` and `-`. Editors can check all of this while you type: see "
        "[editor setup](editor-setup.md).",
        "## Top-level options",
        _table(_rows(FLOW_OPTIONS), {"steps": "mapping: step name → step (see [Steps](#steps))"}),
        _business_hours(),
        _maintenance(),
        _asterisk_side(),
        "## Steps",
        _table_of(
            ["Kind", "What it does"], [[f"[`{kind}`](#{kind})", _cell(c.summary)] for kind, c in STEP_KINDS.items()]
        ),
        *(_step(step_class) for step_class in STEP_KINDS.values()),
        "## Common options",
        "Every step also takes these.",
        _table(_rows(COMMON_OPTIONS)),
        _prompts(),
        _timing(),
        _expressions(),
    ]
    return _section(*parts) + "\n"


# -- tables ---------------------------------------------------------------------------------------------


def _rows(options: dict[str, Option], prefix: str = "") -> Iterator[Row]:
    """Each option, followed by the options of the mappings nested in it (``menu.no_input.retries``)."""
    for name, option in options.items():
        yield Row(prefix + name, option)
        for suffix, record in _records(option.field):
            yield from _rows(record.options, f"{prefix}{name}{suffix}.")


def _records(field: Field[Any]) -> list[tuple[str, Record[Any]]]:
    """The records a field contains, with the path suffix that leads into them (``[]`` for list items)."""
    if isinstance(field, Record):
        return [("", field)]
    if isinstance(field, OneOfShape):
        return [found for inner in (field.scalar, field.mapping) if inner for found in _records(inner)]
    if isinstance(field, ListOf):
        return [(f"[]{suffix}", record) for suffix, record in _records(field.item)]
    if isinstance(field, MapOf):
        return [(f".<key>{suffix}", record) for suffix, record in _records(field.value)]
    inner = getattr(field, "record", None)  # a custom field whose mapping form is a Record (hangup)
    return [("", inner)] if isinstance(inner, Record) else []


def _table(rows: Iterator[Row], types: dict[str, str] | None = None) -> str:
    """An option table; ``types`` words the few options whose field does not say it (``steps``)."""
    types = types or {}
    header = ["Option", "Type", "Default", "Required", "Description"]
    body = [
        [
            f"`{row.name}`",
            types.get(row.name) or _cell(type_words(row.option.field)),
            _default(row.option),
            "yes" if row.option.required else "",
            _cell(row.option.help),
        ]
        for row in rows
    ]
    return _table_of(header, body)


def _table_of(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def type_words(field: Field[Any]) -> str:
    """A field's type as a designer reads it: "step name", "mapping: DTMF key → step name", …"""
    if isinstance(field, Record):
        return f"{type_words(field.shorthand[1])} or mapping" if field.shorthand else "mapping"
    if isinstance(field, MapOf):
        return f"mapping: {type_words(field.key)} → {type_words(field.value)}"
    if isinstance(field, ListOf):
        if field.type_name != f"list of {field.item.type_name}":
            return field.type_name  # a name of its own, such as "prompt or list of prompts"
        items = "mappings" if isinstance(field.item, Record) else type_words(field.item)
        items = f"({items})" if " or " in items and not field.single else items
        return f"{items}, or a list of them" if field.single else f"list of {items}"
    if isinstance(field, Text) and field.choices:
        return "one of " + ", ".join(f"`{choice}`" for choice in field.choices)
    if isinstance(field, Key) and field.allow_none:
        return f"{field.type_name} or `none`"
    return field.type_name


def _default(option: Option) -> str:
    value = option.default
    if value is None or (is_dataclass(value) and not isinstance(value, type)):
        return ""  # nothing, or a mapping whose rows below show their own defaults
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(option.field, Duration) and isinstance(value, (int, float)):
        return f"`{value:g}s`"
    if isinstance(option.field, Key):
        return f'`"{value}"`'
    if isinstance(value, (dict, list)):
        return "`{}`" if isinstance(value, dict) and not value else "`[]`" if not value else f"`{value}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return _outside_code(" ".join(text.split()), lambda part: part.replace("|", "\\|").replace("<", "&lt;"))


def _outside_code(text: str, change: Any) -> str:
    """Apply ``change`` to the text between code spans (inside a code span `|` still needs escaping)."""
    parts = text.split("`")
    return "`".join(change(part) if i % 2 == 0 else part.replace("|", "\\|") for i, part in enumerate(parts))


# -- sections ---------------------------------------------------------------------------------------------


def _step(step_class: type[Step]) -> str:
    kind = step_class.kind
    body = Option(step_class.body, f"The kind key: what the `{kind}` step does.", required=True)
    options = {kind: body, **step_class.options}
    common = ", ".join(f"`{name}`" for name in COMMON_OPTIONS)
    return _section(
        f"### `{kind}`",
        _outside_code(step_class.summary, lambda part: part.replace("<", "&lt;")),
        f"```yaml\n{step_class.example.rstrip()}\n```",
        _table(_rows(options)),
        f"Also the [common options](#common-options): {common}.",
    )


def _business_hours() -> str:
    schema = ScheduleField().json_schema()
    options = " and ".join(f"`{name}`" for name in schema["properties"] if name not in schema["required"])
    required = " and ".join(f"`{name}`" for name in schema["required"])
    days = ", ".join(f"`{day}`" for day in DAYS)
    return _section(
        "### Business hours",
        _from_docstring(hours.__doc__),
        f"Named in `schedules` or written inline in an `hours` step: {required} are required, {options} optional. "
        f"Days are {days}, ranges such as `mon-fri`, lists such as `sat,sun`, or `daily`.",
    )


def _maintenance() -> str:
    return _section("### Maintenance", _from_docstring(maintenance.__doc__),
                    "The options are in the table above (`maintenance.*`).")


def _asterisk_side() -> str:
    modes = ", ".join(f"`{mode}`" for mode in pbx.MAINTENANCE_MODES)
    return _section(
        "### The Asterisk side: `dialplan` and `queues`",
        _from_docstring(pbx.__doc__),
        f"The maintenance gate knows the modes {modes}; the options are in the table above "
        "(`dialplan.*`, `queues.<key>.*`).",
    )


def _prompts() -> str:
    says = ", ".join(f"`{kind}`" for kind in SAY_KINDS)
    return _section(
        "## Prompts and spoken values",
        _from_docstring(segments.__doc__),
        f"A prompt id matches `{PROMPT_PATTERN.pattern}`: lower-case letters, digits, `_`, `-` and `/`. "
        f"A spoken value is a mapping with one key, {says}, whose value may be a template.",
    )


def _timing() -> str:
    defaults = Defaults()
    record = FLOW_OPTIONS["defaults"].field
    assert isinstance(record, Record)
    items = [
        f"- `{name}`: {_default(Option(option.field, '', getattr(defaults, name)))}. {option.help}"
        for name, option in record.options.items()
    ]
    return _section(
        "## Timing defaults",
        "Menus and digit collection wait and retry as the flow's `defaults` say, unless a step sets its own "
        "value (a menu's `timeout`, a collection's `first_digit_timeout` and `inter_digit_timeout`, "
        "`retries` under `no_input` or `invalid`). Without `defaults`:",
        "\n".join(items),
    )


def _expressions() -> str:
    scope = [[f"`{name}`", _cell(text)] for name, text in SCOPE.items()]
    stats = [[f"`{name}`", _cell(text)] for name, text in QUEUE_STATS.items()]
    return _section(
        "## Expressions",
        "Conditions (`branch` `if`, `collect` `valid_if`) are Jinja2 expressions; the `{{ }}` around them are "
        "optional. Templates are text with `{{ … }}` inside (`set` values, spoken values, a transfer's `to`); a "
        'template that is exactly one `{{ … }}` keeps its type: `"{{ vars.tries + 1 }}"` is a number. Jinja2\'s '
        "filters and tests work as usual: `vars.account[-2:] | int`, `digits | length == 6`.",
        "### What an expression can read",
        _table_of(["Name", "What it is"], scope),
        "In a `collect` step's `valid_if`, `digits` is the entry being checked. Queue statistics "
        "(`queues.support.waiting`, `queues['support'].free`):",
        _table_of(["Statistic", "What it is"], stats),
        "### Sandbox rules",
        "Expressions run in Jinja2's immutable sandbox, so a flow file cannot reach the server's internals:",
        "- names and attributes starting with `_` cannot be read;\n"
        "- values cannot be changed in place (`vars.list.append(1)` is refused): use a `set` step;\n"
        f"- `range()` gives at most {MAX_RANGE} numbers; text and lists longer than {MAX_SIZE} items, numbers "
        f"above {MAX_SIZE} passed to a filter or method, huge format widths and exponents above 100 are refused;\n"
        "- flow text takes `{{ … }}` expressions only, not `{% … %}` statements, so nothing can loop;\n"
        "- an unknown name or attribute is an error, not empty text: `vars.typo` fails.",
        "An expression that fails on a call sends it to the flow's `on_error` step, or ends it with outcome `error`.",
    )


def _section(*parts: str) -> str:
    return "\n\n".join(part.strip("\n") for part in parts)


def _from_docstring(doc: str | None) -> str:
    """A module docstring as Markdown: ``code`` spans, roles dropped, ``::`` blocks fenced as YAML."""
    text = re.sub(r":\w+:`~?([\w.]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", doc or "")
    text = text.replace("``", "`")
    out: list[str] = []
    block: list[str] | None = None
    for line in text.strip().splitlines():
        if block is not None and (not line.strip() or line.startswith("    ")):
            block.append(line[4:])
            continue
        if block is not None:
            out += ["", "```yaml", *"\n".join(block).strip("\n").splitlines(), "```", ""]
            block = None
        if line.endswith("::"):
            out.append(line[:-1])
            block = []
        else:
            out.append(line)
    if block is not None:
        out += ["", "```yaml", *"\n".join(block).strip("\n").splitlines(), "```"]
    return "\n".join(out)


__all__ = ["QUEUE_STATS", "SCOPE", "generate", "type_words"]
