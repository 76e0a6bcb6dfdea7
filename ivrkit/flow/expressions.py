"""Conditions and templated text, evaluated in Jinja2's immutable sandbox.

Designers write conditions such as ``caller.number.startswith('+49')`` and text such as
``"queue-{{ vars.queue }}"``. Both run in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`: no access to
underscored attributes, no mutation of the values the engine exposes, and a hard cap on range sizes, so a flow
file cannot reach Python internals or hang the server.

A string that is exactly one ``{{ … }}`` block keeps its native type (``"{{ vars.tries + 1 }}"`` is the number
2, not the text "2"); any other templated string renders to text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ivrkit.flow.diagnostics import Location

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<body>.*)\}\}\s*$", re.DOTALL)
_MAX_RANGE = 1000


class ExpressionError(Exception):
    """An expression failed while a call was running (unknown variable, refused operation, bad type)."""

    def __init__(self, source: str, location: Location | None, reason: str):
        self.source = source
        self.location = location
        self.reason = reason
        where = f"{location}: " if location else ""
        super().__init__(f"{where}expression '{source}' failed: {reason}")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The one environment every flow expression runs in."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        # Refuse the classic sandbox denial of service: 'x' * 10**9 or a huge power.
        if operator == "*" and isinstance(left, (str, list)) and isinstance(right, int) and right * len(left) > 100_000:
            raise SecurityError("result would be too large")
        if operator == "**" and isinstance(right, int) and right > 100:
            raise SecurityError("exponent too large")
        return super().call_binop(context, operator, left, right)


def _safe_range(*args: int) -> range:
    result = range(*args)
    if len(result) > _MAX_RANGE:
        raise SecurityError(f"range longer than {_MAX_RANGE}")
    return result


ENVIRONMENT = _Sandbox(undefined=StrictUndefined, autoescape=False)
ENVIRONMENT.globals["range"] = _safe_range


def _strip_braces(source: str) -> str:
    match = _WHOLE_EXPRESSION.match(source)
    return match.group("body") if match else source


def syntax_problem(source: str, *, template: bool) -> str | None:
    """The syntax error in an expression or template, or None when it parses."""
    try:
        if template:
            ENVIRONMENT.parse(source)
        else:
            ENVIRONMENT.parse("{{ " + _strip_braces(source) + " }}")
    except TemplateSyntaxError as exc:
        return exc.message or "syntax error"
    return None


def referenced_names(source: str, *, template: bool) -> set[str]:
    """Top-level names an expression reads (``vars``, ``caller``, …), for static checks."""
    text = source if template else "{{ " + _strip_braces(source) + " }}"
    try:
        tree = ENVIRONMENT.parse(text)
    except TemplateSyntaxError:
        return set()
    return {node.name for node in tree.find_all(nodes.Name) if node.ctx == "load"}


def _evaluate(compiled: Any, source: str, location: Location | None, scope: Mapping[str, Any]) -> Any:
    try:
        result = compiled(scope)
        if isinstance(result, Undefined):
            result._fail_with_undefined_error()
        return result
    except SecurityError as exc:
        raise ExpressionError(source, location, f"refused by the sandbox: {exc}") from None
    except UndefinedError as exc:
        raise ExpressionError(source, location, str(exc)) from None
    except Exception as exc:  # any failure inside designer code is reported, never crashes the call
        raise ExpressionError(source, location, f"{type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class Expression:
    """A condition or value such as ``vars.tries > 2``; the ``{{ }}`` around it are optional."""

    source: str
    location: Location | None = None
    _compiled: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def compile(cls, source: str, location: Location | None = None) -> Expression:
        compiled = ENVIRONMENT.compile_expression(_strip_braces(source), undefined_to_none=False)
        return cls(source, location, lambda scope: compiled(**scope))

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return _evaluate(self._compiled, self.source, self.location, scope)

    def test(self, scope: Mapping[str, Any]) -> bool:
        return bool(self.evaluate(scope))


@dataclass(frozen=True)
class Template:
    """Text that may contain ``{{ … }}``; a constant when it does not."""

    source: Any
    location: Location | None = None
    _compiled: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def compile(cls, source: Any, location: Location | None = None) -> Template:
        if not isinstance(source, str) or ("{{" not in source and "{%" not in source):
            return cls(source, location, None)
        if _WHOLE_EXPRESSION.match(source) and "{{" not in _strip_braces(source):
            return cls(source, location, Expression.compile(source, location)._compiled)
        template = ENVIRONMENT.from_string(source)
        return cls(source, location, lambda scope: template.render(**scope))

    @property
    def is_constant(self) -> bool:
        return self._compiled is None

    def render(self, scope: Mapping[str, Any]) -> Any:
        if self._compiled is None:
            return self.source
        return _evaluate(self._compiled, str(self.source), self.location, scope)

    def render_text(self, scope: Mapping[str, Any]) -> str:
        value = self.render(scope)
        return "" if value is None else str(value)
