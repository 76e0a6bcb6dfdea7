"""Conditions and templated text, evaluated in Jinja2's immutable sandbox.

Designers write conditions such as ``caller.number.startswith('+49')`` and text such as
``"queue-{{ vars.queue }}"``. Both run in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`: no access to
underscored attributes, no mutation of the values the engine exposes, no ``{% … %}`` statements (so no loops),
and caps on what an expression may build (ranges of 1,000 items, strings and lists of 10,000, no huge counts,
widths or powers), so a flow file cannot reach Python internals, exhaust memory or hang the server.

A string that is exactly one ``{{ … }}`` block keeps its native type (``"{{ vars.tries + 1 }}"`` is the number
2, not the text "2"); any other templated string renders to text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ivrkit.flow.diagnostics import Location

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<body>.*)\}\}\s*$", re.DOTALL)
MAX_RANGE = 1000
MAX_SIZE = 10_000  # longest string or list an expression may build, and largest number passed to a call
# A width in a %-format or str.format spec ("%999999s", "{:>999999}") would build a huge string before any check.
_BIG_FORMAT_WIDTH = re.compile(r"%[-+ #0]*\d{5,}|\{[^{}]*:[^{}]*\d{5,}[^{}]*\}")


class ExpressionError(Exception):
    """An expression failed while a call was running (unknown variable, refused operation, bad type)."""

    def __init__(self, source: str, location: Location | None, reason: str):
        self.source = source
        self.location = location
        self.reason = reason
        where = f"{location}: " if location else ""
        super().__init__(f"{where}expression '{source}' failed: {reason}")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse the arguments that make a call build something huge: big counts, widths or format widths."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
            raise SecurityError(f"argument {value} is larger than {MAX_SIZE}")
        if isinstance(value, str) and _BIG_FORMAT_WIDTH.search(value):
            raise SecurityError("format width too large")


def _check_result(value: Any) -> Any:
    if _size(value) > MAX_SIZE:
        raise SecurityError(f"result longer than {MAX_SIZE}")
    return value


def _guard_filter(name: str, function: Any) -> Any:
    """A filter with its arguments and result held to the size limits (``replace``/``join`` estimated first)."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args, kwargs)
        values = [a for a in args if isinstance(a, (str, list, tuple))]
        if name == "replace" and len(values) >= 3 and isinstance(values[0], str):
            text, old, new = values[0], str(values[1]), str(values[2])
            if len(text) + (text.count(old) if old else len(text) + 1) * len(new) > MAX_SIZE:
                raise SecurityError(f"result longer than {MAX_SIZE}")
        return _check_result(function(*args, **kwargs))

    return guarded


class _Sandbox(ImmutableSandboxedEnvironment):
    """The one environment every flow expression runs in."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        # Refuse the classic sandbox denials of service: 'x' * 10**9, a huge power, strings grown by doubling.
        if operator == "*" and isinstance(right, int) and _size(left) * right > MAX_SIZE:
            raise SecurityError("result would be too large")
        if operator == "*" and isinstance(left, int) and _size(right) * left > MAX_SIZE:
            raise SecurityError("result would be too large")
        if operator == "**" and isinstance(right, int) and right > 100:
            raise SecurityError("exponent too large")
        if operator == "+" and _size(left) + _size(right) > MAX_SIZE:
            raise SecurityError("result would be too large")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        bound_to = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)  # the text of "…".format()
        _check_arguments((bound_to, *args), kwargs)
        return _check_result(super().call(__context, __obj, *args, **kwargs))


def _safe_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range longer than {MAX_RANGE}")
    return result


ENVIRONMENT = _Sandbox(undefined=StrictUndefined, autoescape=False)
ENVIRONMENT.globals["range"] = _safe_range
ENVIRONMENT.filters.update({name: _guard_filter(name, f) for name, f in ENVIRONMENT.filters.items()})


def _strip_braces(source: str) -> str:
    match = _WHOLE_EXPRESSION.match(source)
    return match.group("body") if match else source


def syntax_problem(source: str, *, template: bool) -> str | None:
    """The syntax error in an expression or template, or None when it parses."""
    try:
        if template:
            tree = ENVIRONMENT.parse(source)
            if any(not isinstance(node, (nodes.Output, nodes.TemplateData)) for node in tree.body):
                return "only {{ … }} expressions are allowed in flow text, not {% … %} statements"
        else:
            ENVIRONMENT.parse("{{ " + _strip_braces(source) + " }}")
    except TemplateSyntaxError as exc:
        return exc.message or "syntax error"
    return None


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


def _names(template_source: str) -> frozenset[str]:
    """The top-level names a template reads (``vars``, ``caller``…): only those need a value in its scope."""
    return frozenset(meta.find_undeclared_variables(ENVIRONMENT.parse(template_source)))


@dataclass(frozen=True)
class Expression:
    """A condition or value such as ``vars.tries > 2``; the ``{{ }}`` around it are optional."""

    source: str
    location: Location | None = None
    _compiled: Any = field(default=None, compare=False, repr=False)
    names: frozenset[str] | None = field(default=None, compare=False, repr=False)  # None: not known

    @classmethod
    def compile(cls, source: str, location: Location | None = None) -> Expression:
        body = _strip_braces(source)
        compiled = ENVIRONMENT.compile_expression(body, undefined_to_none=False)
        return cls(source, location, lambda scope: compiled(**scope), _names("{{ " + body + " }}"))

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
    names: frozenset[str] | None = field(default=None, compare=False, repr=False)  # None: not known

    @classmethod
    def compile(cls, source: Any, location: Location | None = None) -> Template:
        if not isinstance(source, str) or ("{{" not in source and "{%" not in source):
            return cls(source, location, None, frozenset())
        if _WHOLE_EXPRESSION.match(source) and "{{" not in _strip_braces(source):
            expression = Expression.compile(source, location)
            return cls(source, location, expression._compiled, expression.names)
        problem = syntax_problem(source, template=True)
        if problem:
            raise ValueError(problem)
        template = ENVIRONMENT.from_string(source)
        return cls(source, location, lambda scope: template.render(**scope), _names(source))

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
