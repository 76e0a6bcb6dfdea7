"""Expressions and templates: native values, rendering, undefined names, and the sandbox holding.

A flow file is data written by designers, not code reviewed by programmers, so nothing in it may reach Python
internals, change the values the engine hands in, or tie up the server; each refusal is an ExpressionError a
call can recover from (``on_error``), never a crash.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ivrkit.flow.diagnostics import Location
from ivrkit.flow.expressions import (
    Expression,
    ExpressionError,
    Template,
    syntax_problem,
)


def scope() -> dict[str, Any]:
    return {
        "vars": {"tries": 2, "account": "12345678", "codes": [1, 2], "tier": "gold"},
        "caller": {"number": "+4930123456", "name": "Ada"},
    }


# -- values -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("{{ vars.tries + 1 }}", 3),
        ("{{ vars.tries > 1 }}", True),
        ("{{ vars.codes }}", [1, 2]),
        ("{{ vars.account[-2:] | int }}", 78),
        ("  {{ none }}  ", None),
        ("{{ vars.tries / 4 }}", 0.5),
    ],
)
def test_a_whole_expression_keeps_its_type(source: str, value: Any) -> None:
    assert Template.compile(source).render(scope()) == value


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("queue-{{ vars.tier }}", "queue-gold"),
        ("{{ vars.tries }}{{ vars.tries }}", "22"),
        ("{{ caller.name }}: {{ vars.tries + 1 }}", "Ada: 3"),
        ("{{ 'again' if vars.tries > 1 else 'first' }}!", "again!"),
    ],
)
def test_mixed_text_renders_to_text(source: str, text: str) -> None:
    assert Template.compile(source).render(scope()) == text


@pytest.mark.parametrize("source", [42, "plain text", True, None])
def test_constants_are_taken_as_written(source: Any) -> None:
    template = Template.compile(source)
    assert template.is_constant and template.render({}) == source


def test_render_text_turns_values_and_none_into_text() -> None:
    assert Template.compile("{{ vars.tries * 2 }}").render_text(scope()) == "4"
    assert Template.compile("{{ none }}").render_text(scope()) == ""


@pytest.mark.parametrize(
    ("source", "result"),
    [
        ("caller.number.startswith('+4930')", True),
        ("{{ vars.tier == 'silver' }}", False),
        ("vars.tries in [1, 2, 3]", True),
        ("vars.account | length == 8", True),
    ],
)
def test_conditions(source: str, result: bool) -> None:
    assert Expression.compile(source).test(scope()) is result


def test_syntax_problems() -> None:
    assert syntax_problem("vars.x ==", template=False) == "unexpected 'end of print statement'"
    assert syntax_problem("{{ vars.x ==  }}", template=False) == "unexpected 'end of print statement'"
    assert syntax_problem("{% if x %}", template=True) is not None
    assert syntax_problem("{{ vars.x }} text", template=True) is None


# -- undefined names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("vars.missing", "'dict object' has no attribute 'missing'"),
        ("nothing_here + 1", "'nothing_here' is undefined"),
        ("{{ caller.numbr }}", "'dict object' has no attribute 'numbr'"),
    ],
)
def test_undefined_names_fail_loudly(source: str, reason: str) -> None:
    where = Location("flow.yaml", 7, 13)
    with pytest.raises(ExpressionError) as failure:
        Expression.compile(source, where).evaluate(scope())
    assert failure.value.reason == reason
    assert str(failure.value) == f"flow.yaml:7:13: expression '{source}' failed: {reason}"


def test_undefined_inside_text_fails_too() -> None:
    with pytest.raises(ExpressionError, match="has no attribute 'tierr'"):
        Template.compile("queue-{{ vars.tierr }}").render(scope())


def test_runtime_type_errors_become_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="TypeError"):
        Expression.compile("vars.account + 1").evaluate(scope())


# -- the sandbox ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("().__class__.__bases__", "access to attribute '__class__' of 'tuple' object is unsafe."),
        ("''.__class__.__mro__", "access to attribute '__class__' of 'str' object is unsafe."),
        ("cycler.__init__.__globals__", "access to attribute '__init__' of 'type' object is unsafe."),
        ("joiner.__init__.__globals__", "access to attribute '__init__' of 'type' object is unsafe."),
        ("lipsum.__globals__", "access to attribute '__globals__' of 'function' object is unsafe."),
        ("vars.tries | attr('__class__')", "access to attribute '__class__' of 'int' object is unsafe."),
        ("'{0.__class__}'.format(vars)", "access to attribute '__class__' of 'dict' object is unsafe."),
        ("range(10**9)", "argument 1000000000 is larger than 10000"),
        ("range(5000)", "range longer than 1000"),
        ("range(3000) | list | length", "range longer than 1000"),
        ("'x' * 10**9", "result would be too large"),
        ("'x' * 1000 * 1000", "result would be too large"),
        ("[0] * 10**6", "result would be too large"),
        ("2 ** 100000", "exponent too large"),
    ],
)
def test_escapes_and_resource_attacks_are_refused(source: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as failure:
        Expression.compile(source).evaluate(scope())
    assert failure.value.reason == f"refused by the sandbox: {reason}"


@pytest.mark.parametrize(
    "source",
    [
        "vars.update({'tries': 0})",
        "vars.__setitem__('tries', 0)",
        "vars.setdefault('admin', true)",
        "vars.pop('tries')",
        "vars.clear()",
        "vars['codes'].append(3)",
        "vars['codes'].pop()",
        "caller.update(number='+1')",
    ],
)
def test_engine_values_cannot_be_changed(source: str) -> None:
    values = scope()
    with pytest.raises(ExpressionError, match="refused by the sandbox: access to attribute"):
        Expression.compile(source).evaluate(values)
    assert values == scope()


@pytest.mark.parametrize(
    "source",
    [
        "{% set vars.tries = 0 %}done",
        "{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}",
        "{% if vars.tries > 1 %}again{% endif %}",
    ],
)
def test_statements_are_refused_in_flow_text(source: str) -> None:
    message = "only {{ … }} expressions are allowed in flow text, not {% … %} statements"
    assert syntax_problem(source, template=True) == message
    with pytest.raises(ValueError, match=re.escape(message)):
        Template.compile(source)


def test_small_ranges_and_repeats_still_work() -> None:
    assert Expression.compile("range(3) | list").evaluate({}) == [0, 1, 2]
    assert Expression.compile("'ab' * 3").evaluate({}) == "ababab"
    assert Expression.compile("2 ** 10").evaluate({}) == 1024


@pytest.mark.parametrize(
    "source",
    [
        "'x' | center(10**6)",
        "('x' * 1000) | replace('x', 'x' * 1000)",
        "'x'.center(100000)",
        "'x'.ljust(10**8)",
        "'{:>999999999}'.format(1)",
        "'%999999999s' | format(1)",
        "range(1000) | join('x' * 9000)",
        "10**6 * 'x'",
        "('x' * 9000) + ('x' * 9000)",
    ],
)
def test_string_filters_are_held_to_the_same_size_limit(source: str) -> None:
    with pytest.raises(ExpressionError, match="refused by the sandbox"):
        Expression.compile(source).evaluate({})


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("{{ channel.QUEUE_WAITING or 0 }}", {"channel"}),
        ("queue-{{ vars.tier }} for {{ caller.number }}", {"vars", "caller"}),
        ("{{ range(3) | list }}", set()),  # a global of the sandbox, not a name of the scope
        ("welcome", set()),
        (5, set()),
    ],
)
def test_a_template_knows_the_names_it_reads(source: Any, names: set[str]) -> None:
    assert Template.compile(source).names == names


def test_an_expression_knows_the_names_it_reads_with_or_without_braces() -> None:
    assert Expression.compile("vars.tries > 2 and caller.number").names == {"vars", "caller"}
    assert Expression.compile("{{ now.hour < 9 }}").names == {"now"}
