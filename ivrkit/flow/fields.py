"""Declarative field types: one description of each option drives parsing, errors, JSON Schema and docs.

A step kind declares its options as :class:`Option` objects holding a :class:`Field`. The same objects parse
located YAML nodes (reporting problems at the node's line and column), emit the JSON Schema that editors use
(``ivrkit schema``), and render the option table in ``docs/flow-reference.md``. Nothing about an option is
written down twice.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Generic, TypeVar

from ivrkit.flow.diagnostics import Diagnostics, Location, did_you_mean
from ivrkit.flow.expressions import Expression, Template, syntax_problem
from ivrkit.flow.source import Mapping, Node, Scalar, Sequence, describe, plain
from ivrkit.prompts.languages import LANGUAGE_CODE

T = TypeVar("T")
DTMF_KEYS = "0123456789*#"
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
PROMPT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_/-]*$")


class Invalid:
    """Marker for a value that failed to parse (already reported)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = Invalid()


@dataclass(frozen=True)
class Reference:
    """A name used in a flow that must exist elsewhere: a step, a flow or a prompt."""

    kind: str  # "step", "flow" or "prompt"
    name: str
    location: Location
    owner: str | None  # the step whose option holds it
    label: str  # which option, e.g. "choices.1" or "next"
    language: str | None = None  # a prompt played in this language only (a language menu's choices); None: all


@dataclass
class ParseContext:
    """What parsing a flow file collects besides values: diagnostics and references."""

    diagnostics: Diagnostics
    references: list[Reference] = field(default_factory=list)
    step: str | None = None
    path: list[str] = field(default_factory=list)

    def error(self, node: Node | Location, message: str, hint: str | None = None) -> Any:
        location = node if isinstance(node, Location) else node.location
        self.diagnostics.error(location, message, hint)
        return INVALID

    def refer(self, kind: str, name: str, location: Location) -> None:
        self.references.append(Reference(kind, name, location, self.step, ".".join(self.path)))

    def at(self, key: str) -> _PathScope:
        return _PathScope(self, key)


class _PathScope:
    def __init__(self, context: ParseContext, key: str):
        self.context, self.key = context, key

    def __enter__(self) -> None:
        self.context.path.append(self.key)

    def __exit__(self, *_: object) -> None:
        self.context.path.pop()


class Field(Generic[T]):
    """How one option's value is written, checked and described."""

    type_name = "value"

    def parse(self, node: Node, ctx: ParseContext) -> T:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def _scalar(self, node: Node, ctx: ParseContext) -> Any:
        if not isinstance(node, Scalar):
            return ctx.error(node, f"expected {self.type_name}, got {describe(node)}")
        return node.value


@dataclass(frozen=True)
class Option:
    """A named option of a step or of a nested mapping."""

    field: Field[Any]
    help: str
    default: Any = None
    required: bool = False


def json_default(value: Any) -> Any:
    """A default as JSON: dataclass defaults become mappings of their set fields, durations stay seconds."""
    if is_dataclass(value) and not isinstance(value, type):
        items = {f.name: getattr(value, f.name) for f in fields(value)}
        return {name: json_default(item) for name, item in items.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [json_default(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_default(item) for key, item in value.items()}
    return value


def option_schema(option: Option) -> dict[str, Any]:
    """The JSON Schema of one option: its field's schema plus the help as description and the default."""
    schema = {**option.field.json_schema(), "description": option.help}
    if option.default is not None:
        schema["default"] = json_default(option.default)
    return schema


def portable_pattern(pattern: str) -> str:
    """A Python regex as JSON Schema (ECMA 262) reads it: named groups ``(?P<name>`` become plain groups."""
    return re.sub(r"\(\?P<\w+>", "(", pattern)


def misread_number(node: Node, ctx: ParseContext) -> bool:
    """Report an unquoted scalar that YAML 1.1 read as a different number than the one typed.

    ``0301234`` is octal (98972), ``8:00`` is base 60 (480), ``+4930123456`` loses its plus and ``1_000``
    its underscore. Where the value is used as text (a phone number, a queue, digits to speak) that silently
    changes what happens on the call, so it is an error with the fix in the hint.
    """
    if not isinstance(node, Scalar) or node.quoted:
        return False
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int) or node.raw.strip() == str(value):
        return False
    ctx.error(node, f"'{node.raw}' was read as the number {value}", f'quote it to keep it as typed: "{node.raw}"')
    return True


def shown(text: str) -> str:
    """Text for a one-line message: a line break or other control character is written as its escape."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class Text(Field[str]):
    type_name = "text"

    def __init__(
        self,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] = (),
        what: str = "text",
        hint: str | None = None,
    ):
        self.pattern, self.choices, self.type_name, self.hint = pattern, choices, what, hint

    def parse(self, node: Node, ctx: ParseContext) -> str:
        value = self._scalar(node, ctx)
        if value is INVALID:
            return value
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            return ctx.error(node, f"expected {self.type_name}, got {describe(node)}")
        if misread_number(node, ctx):
            return INVALID
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
        if self.choices and text not in self.choices:
            return ctx.error(
                node,
                f"'{text}' is not one of: {', '.join(self.choices)}",
                did_you_mean(text, self.choices),
            )
        if self.pattern and not self.pattern.match(text):
            return ctx.error(node, f"'{shown(text)}' is not a valid {self.type_name}", self.hint)
        return text

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.choices:
            schema["enum"] = list(self.choices)
        elif self.pattern:
            schema["pattern"] = self.pattern.pattern
        return schema


class Integer(Field[int]):
    type_name = "whole number"

    def __init__(self, minimum: int | None = None, maximum: int | None = None):
        self.minimum, self.maximum = minimum, maximum

    def parse(self, node: Node, ctx: ParseContext) -> int:
        value = self._scalar(node, ctx)
        if value is INVALID:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            return ctx.error(node, f"expected a whole number, got {describe(node)}")
        if self.minimum is not None and value < self.minimum:
            return ctx.error(node, f"{value} is too small: the minimum is {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            return ctx.error(node, f"{value} is too large: the maximum is {self.maximum}")
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


class Boolean(Field[bool]):
    type_name = "true or false"

    def parse(self, node: Node, ctx: ParseContext) -> bool:
        value = self._scalar(node, ctx)
        if value is INVALID or isinstance(value, bool):
            return value
        return ctx.error(node, f"expected true or false, got {describe(node)}")

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


_DURATION = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|sec|m|min|h)?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


class Duration(Field[float]):
    """Seconds, written as a number or with a unit: ``5``, ``5s``, ``500ms``, ``2m``."""

    type_name = "duration such as 5s, 500ms or 2m"

    def __init__(self, maximum: float = 86400.0):
        self.maximum = maximum

    def parse(self, node: Node, ctx: ParseContext) -> float:
        value = self._scalar(node, ctx)
        if value is INVALID:
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            match = _DURATION.match(str(value)) if isinstance(value, str) else None
            if not match:
                return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}")
            seconds = float(match.group("number")) * _UNITS[match.group("unit")]
        if seconds < 0 or seconds > self.maximum:
            return ctx.error(node, f"duration {value} is out of range (0 to {self.maximum:g} seconds)")
        return seconds

    def json_schema(self) -> dict[str, Any]:
        text = {"type": "string", "pattern": portable_pattern(_DURATION.pattern)}
        return {"anyOf": [{"type": "number", "minimum": 0, "maximum": self.maximum}, text]}


_LOCAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{1,2}:\d{2}")


class LocalDateTime(Field[dt.datetime]):
    """``2026-12-01T22:00``, or with an offset ``2026-12-01T22:00+01:00``. Without an offset the value stays naive:
    whoever uses it places it in the flow's timezone."""

    type_name = "date and time such as 2026-12-01T22:00"

    def parse(self, node: Node, ctx: ParseContext) -> dt.datetime:
        text = node.raw.strip() if isinstance(node, Scalar) and node.value is not None else ""
        hint = "write YYYY-MM-DDTHH:MM, in the flow's timezone, or with an offset such as +01:00"
        if not _LOCAL_DATETIME.match(text):
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}", hint)
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError as error:
            return ctx.error(node, f"'{text}' is not a valid date and time: {error}", hint)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": portable_pattern(_LOCAL_DATETIME.pattern)}


class Key(Field[str]):
    """One DTMF key: a digit, ``*`` or ``#`` (write ``"*"`` and ``"#"`` quoted)."""

    type_name = "DTMF key (0-9, * or #)"

    def __init__(self, allow_none: bool = False):
        self.allow_none = allow_none

    def parse(self, node: Node, ctx: ParseContext) -> str:
        value = self._scalar(node, ctx)
        if value is INVALID:
            return value
        if self.allow_none and (value is None or value is False or value == "none"):
            return ""
        text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
        if len(text) != 1 or text not in DTMF_KEYS:
            hint = 'quote it: "*" or "#"' if value is None else None
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}", hint)
        return text

    def json_schema(self) -> dict[str, Any]:
        # The pattern applies to strings, the bounds to numbers: "5", "*" and 5 are keys, 12 is not.
        schema: dict[str, Any] = {"type": ["string", "integer"], "pattern": "^[0-9*#]$", "minimum": 0, "maximum": 9}
        if self.allow_none:
            return {"anyOf": [schema, {"enum": ["none", None, False]}]}
        return schema


class _NameRef(Field[str]):
    """The name of something defined elsewhere; recorded as a reference and checked once everything is read."""

    kind = ""

    def __init__(self) -> None:
        self.type_name = f"{self.kind} name"

    def parse(self, node: Node, ctx: ParseContext) -> str:
        value = self._scalar(node, ctx)
        if value is INVALID:
            return value
        if not isinstance(value, str) or not NAME_PATTERN.match(value):
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}")
        ctx.refer(self.kind, value, node.location)
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": NAME_PATTERN.pattern}


class StepRef(_NameRef):
    """The name of a step in the same flow."""

    kind = "step"


class FlowRef(_NameRef):
    """The name of another flow."""

    kind = "flow"


class ExpressionField(Field[Expression]):
    """A Jinja2 expression such as ``vars.tries > 2`` (``{{ }}`` optional)."""

    type_name = "expression"

    def parse(self, node: Node, ctx: ParseContext) -> Expression:
        value = self._scalar(node, ctx)
        if value is INVALID:
            return value
        source = str(value).lower() if isinstance(value, bool) else str(value)
        problem = syntax_problem(source, template=False)
        if problem:
            return ctx.error(node, f"expression syntax error: {problem}", "check brackets and quotes")
        return Expression.compile(source, node.location)

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "boolean", "number"]}


class TemplateField(Field[Template]):
    """A value that may contain ``{{ … }}``; a number or plain text is taken as it is."""

    type_name = "text or template"

    def parse(self, node: Node, ctx: ParseContext) -> Template:
        value = self._scalar(node, ctx)
        if value is INVALID:
            return value
        if misread_number(node, ctx):
            return INVALID
        if isinstance(value, dt.date):
            value = value.isoformat()
        if isinstance(value, str):
            problem = syntax_problem(value, template=True)
            if problem:
                return ctx.error(node, f"template syntax error: {problem}", "check the {{ }} brackets and quotes")
        return Template.compile(value, node.location)

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "number", "boolean", "null"]}


class Any_(Field[Any]):
    """Any plain YAML value (used for faked state in tests)."""

    type_name = "value"

    def parse(self, node: Node, ctx: ParseContext) -> Any:
        return plain(node)

    def json_schema(self) -> dict[str, Any]:
        return {}


LANGUAGE = Text(pattern=LANGUAGE_CODE, what="language code such as en or de")


class ListOf(Field[list[T]]):
    """A list; a single item may be written without the brackets when ``single`` is set."""

    def __init__(self, item: Field[T], single: bool = True, min_items: int = 0):
        self.item, self.single, self.min_items = item, single, min_items
        self.type_name = f"list of {item.type_name}"

    def parse(self, node: Node, ctx: ParseContext) -> list[T]:
        if isinstance(node, Sequence):
            nodes = node.items
        elif self.single:
            nodes = [node]
        else:
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}")
        if len(nodes) < self.min_items:
            return ctx.error(node, f"expected at least {self.min_items} item(s)")
        values = []
        for index, item in enumerate(nodes):
            with ctx.at(str(index)):
                values.append(self.item.parse(item, ctx))
        # Every item is parsed (so every mistake is reported), but one bad item makes the list bad: a step
        # must never be built around an INVALID placeholder.
        return INVALID if any(value is INVALID for value in values) else values

    def json_schema(self) -> dict[str, Any]:
        array = {"type": "array", "items": self.item.json_schema(), "minItems": self.min_items}
        return {"anyOf": [self.item.json_schema(), array]} if self.single else array


class MapOf(Field[dict[str, T]]):
    """A mapping from keys of one kind to values of another (menu choices, variables)."""

    def __init__(self, key: Field[str], value: Field[T], what: str = "mapping"):
        self.key, self.value, self.type_name = key, value, what

    def parse(self, node: Node, ctx: ParseContext) -> dict[str, T]:
        if not isinstance(node, Mapping):
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}")
        result: dict[str, T] = {}
        failed = False
        for name, (key_node, value_node) in node.entries.items():
            key = self.key.parse(key_node, ctx)
            with ctx.at(name):
                value = self.value.parse(value_node, ctx)
            failed = failed or key is INVALID or value is INVALID
            if key is not INVALID:
                result[key] = value
        return INVALID if failed else result

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "additionalProperties": self.value.json_schema()}
        key_schema = self.key.json_schema()  # keys are always strings in JSON: keep what constrains strings
        names = {name: key_schema[name] for name in ("pattern", "enum") if name in key_schema}
        if names:
            schema["propertyNames"] = names
        return schema


class Record(Field[T]):
    """A mapping with fixed option names, built into a dataclass (``factory``) or a dict.

    ``check(value, node, ctx)`` sees the built value and returns it, or reports what the options cannot say
    one by one (two routes at once, a limit across options) and returns INVALID.
    """

    def __init__(
        self,
        options: dict[str, Option],
        factory: Callable[..., T] | None = None,
        what: str = "mapping",
        shorthand: tuple[str, Field[Any]] | None = None,
        check: Callable[[T, Node, ParseContext], T] | None = None,
    ):
        self.options, self.factory, self.type_name = options, factory, what
        self.shorthand = shorthand  # (option, field): a bare scalar or list fills this option
        self.check = check

    def parse(self, node: Node, ctx: ParseContext) -> T:
        if not isinstance(node, Mapping):
            if self.shorthand and not isinstance(node, Mapping):
                name, _ = self.shorthand
                return self._build({name: node}, node, ctx)
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}")
        known = {}
        for name, value in node.items():
            if name not in self.options:
                ctx.error(
                    node.key_node(name),
                    f"unknown option '{name}' in {self.type_name}",
                    did_you_mean(name, self.options) or f"known options: {', '.join(self.options)}",
                )
                continue
            known[name] = value
        built = self._build(known, node, ctx)
        # A misspelt option is not silently dropped: the value is as bad as a wrong type (step loading agrees).
        return INVALID if len(known) < len(node.entries) else built

    def _build(self, given: dict[str, Node], node: Node, ctx: ParseContext) -> T:
        values: dict[str, Any] = {}
        failed = False
        for name, option in self.options.items():
            if name in given:
                with ctx.at(name):
                    values[name] = option.field.parse(given[name], ctx)
                failed = failed or values[name] is INVALID
            elif option.required:
                ctx.error(node, f"{self.type_name} needs '{name}': {option.help}")
                failed = True
            else:
                values[name] = option.default
        if failed:
            return INVALID
        value: T = self.factory(**values) if self.factory else values  # type: ignore[assignment]
        return self.check(value, node, ctx) if self.check else value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: option_schema(option) for name, option in self.options.items()},
            "additionalProperties": False,
        }
        required = [name for name, option in self.options.items() if option.required]
        if required:
            schema["required"] = required
        if self.shorthand:
            return {"anyOf": [self.shorthand[1].json_schema(), schema]}
        return schema


class OneOfShape(Field[Any]):
    """Chooses a field by the YAML node's shape: a plain value, a list or a mapping."""

    def __init__(self, scalar: Field[Any] | None = None, mapping: Field[Any] | None = None, what: str = "value"):
        self.scalar, self.mapping, self.type_name = scalar, mapping, what

    def parse(self, node: Node, ctx: ParseContext) -> Any:
        chosen = self.mapping if isinstance(node, Mapping) else self.scalar
        if chosen is None:
            return ctx.error(node, f"expected {self.type_name}, got {describe(node)}")
        return chosen.parse(node, ctx)

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [f.json_schema() for f in (self.scalar, self.mapping) if f is not None]}
