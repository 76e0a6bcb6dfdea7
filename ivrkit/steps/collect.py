"""``collect``: digits into a variable, with length, terminator, timeouts, validation and confirmation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivrkit.engine.transitions import Finish, GoTo, Transition
from ivrkit.flow.expressions import Expression
from ivrkit.flow.fields import (
    DTMF_KEYS,
    INVALID,
    Duration,
    ExpressionField,
    Field,
    Integer,
    Invalid,
    Key,
    Option,
    ParseContext,
    Record,
    StepRef,
    Text,
)
from ivrkit.flow.segments import Segment, segments
from ivrkit.flow.source import Node
from ivrkit.steps.base import Step, next_option
from ivrkit.steps.retries import Attempts, RetryPolicy, retry_policy
from ivrkit.steps.set import VARIABLE_NAME

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext


@dataclass(frozen=True)
class Confirmation:
    prompt: list[Segment]
    yes: str = "1"
    no: str = "2"


@dataclass(frozen=True)
class CollectSpec:
    into: str
    prompt: list[Segment]
    min_digits: int = 1
    max_digits: int = 20
    terminator: str = "#"
    first_digit_timeout: float | None = None
    inter_digit_timeout: float | None = None
    pattern: re.Pattern[str] | None = None
    valid_if: Expression | None = None
    confirm: Confirmation | None = None
    no_input: RetryPolicy = field(default_factory=RetryPolicy)
    invalid: RetryPolicy = field(default_factory=RetryPolicy)
    failed: str | None = None


class RegexField(Field[re.Pattern[str]]):
    type_name = "regular expression"

    def parse(self, node: Node, ctx: ParseContext) -> re.Pattern[str]:
        text = Text().parse(node, ctx)
        if isinstance(text, Invalid):
            return INVALID
        try:
            return re.compile(text)
        except re.error as exc:
            return ctx.error(node, f"invalid pattern: {exc}", "this is a Python regular expression, e.g. '^[0-9]{6}$'")

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "regex"}


class Collect(Step):
    kind = "collect"
    summary = (
        "Plays a prompt (interruptible by the first digit) and collects digits into `vars.<into>`. The entry "
        "ends at the terminator, at `max_digits`, or when the caller pauses longer than the inter-digit "
        "timeout. Entries shorter than `min_digits`, not matching `pattern` or failing `valid_if` are invalid; "
        "with `confirm` the caller hears a confirmation and accepts or re-enters. The cancel key throws away "
        "what was typed."
    )
    body = Record(
        {
            "into": Option(
                Text(VARIABLE_NAME, what="variable name"), "Variable that receives the digits.", required=True
            ),
            "prompt": Option(segments(), "What the caller hears first.", required=True),
            "min_digits": Option(Integer(0, 64), "Fewest digits accepted.", 1),
            "max_digits": Option(Integer(1, 64), "Most digits; the entry ends by itself at this length.", 20),
            "terminator": Option(Key(allow_none=True), 'Key that ends the entry (default "#"; `none` for none).', "#"),
            "first_digit_timeout": Option(Duration(), "Wait for the first digit (default 5s, or `defaults.timeout`)."),
            "inter_digit_timeout": Option(
                Duration(), "Wait between digits (default 3s, or `defaults.inter_digit_timeout`)."
            ),
            "pattern": Option(RegexField(), "Regular expression the whole entry must match."),
            "valid_if": Option(ExpressionField(), "Condition over `digits` (the entry) that must be true."),
            "confirm": Option(
                Record(
                    {
                        "prompt": Option(segments(), "Read-back prompt; `vars.<into>` holds the entry.", required=True),
                        "yes": Option(Key(), "Key that accepts.", "1"),
                        "no": Option(Key(), "Key that re-enters.", "2"),
                    },
                    factory=Confirmation,
                    what="confirmation",
                ),
                "Read the entry back and ask the caller to accept it.",
            ),
            "no_input": retry_policy("no_input"),
            "invalid": retry_policy("invalid"),
            "failed": Option(StepRef(), "Where to go when the tries are used up."),
        },
        factory=CollectSpec,
        what="collect",
    )
    options = {"next": next_option("The step after a valid entry.")}
    takes_input = True
    example = """\
account_number:
  collect:
    into: account
    prompt: enter-account
    min_digits: 6
    max_digits: 10
    pattern: "^[0-9]+$"
    confirm: {prompt: [you-entered, {digits: "{{ vars.account }}"}, press-1-or-2]}
    failed: operator
  next: lookup
"""

    def run(self, call: CallContext) -> Transition:
        spec: CollectSpec = self.value
        attempts = Attempts(spec.no_input, spec.invalid, call.defaults.retries)
        while True:
            digits = self._entry(call, attempts.next_prompt(spec.prompt))
            problem = "no_input" if digits is None else self._problem(call, digits)
            if problem is None and spec.confirm is not None:
                assert digits is not None
                problem = self._confirm(call, spec.confirm, digits)
            if problem is None:
                assert digits is not None
                call.log("collected", into=spec.into, digits=digits)
                call.set_vars({spec.into: digits})
                return GoTo(self.next) if self.next else Finish("end-of-flow")
            call.log(problem, digits=digits or "", tries=attempts.counts[problem] + 1)
            if attempts.fail(problem):
                target = attempts.failed_target(problem, spec.failed)
                return GoTo(target) if target else Finish("collect-failed")

    def _entry(self, call: CallContext, prompt: list[Segment]) -> str | None:
        """The keys typed, or None when the caller typed nothing at all."""
        spec: CollectSpec = self.value
        first = spec.first_digit_timeout if spec.first_digit_timeout is not None else call.defaults.timeout
        inter = spec.inter_digit_timeout if spec.inter_digit_timeout is not None else call.defaults.inter_digit_timeout
        digits = ""
        key = call.play(prompt, escape=DTMF_KEYS)
        while True:
            if key is None:
                key = call.wait_for_key(inter if digits else first)
            if key is None:
                return digits or None
            if spec.terminator and key == spec.terminator:
                return digits
            digits += key
            if len(digits) >= spec.max_digits:
                return digits
            key = None

    def _problem(self, call: CallContext, digits: str) -> str | None:
        spec: CollectSpec = self.value
        if len(digits) < spec.min_digits:
            return "invalid"
        if spec.pattern is not None and not spec.pattern.fullmatch(digits):
            return "invalid"
        if spec.valid_if is not None and not spec.valid_if.test({**call.scope(), "digits": digits}):
            return "invalid"
        return None

    def _confirm(self, call: CallContext, confirm: Confirmation, digits: str) -> str | None:
        spec: CollectSpec = self.value
        call.set_vars({spec.into: digits})
        answer = call.play(confirm.prompt, escape=confirm.yes + confirm.no)
        if answer is None:
            answer = call.wait_for_key(call.defaults.timeout)
        if answer == confirm.yes:
            return None
        call.set_vars({spec.into: None})
        return "no_input" if answer is None else "invalid"
