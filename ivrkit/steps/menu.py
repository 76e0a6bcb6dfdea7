"""``menu``: a prompt and a choice of keys, with no-input and invalid-input handling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ivrkit.engine.transitions import Finish, GoTo, Transition
from ivrkit.flow.fields import DTMF_KEYS, Duration, Key, MapOf, Option, Record, StepRef
from ivrkit.flow.segments import Segment, segments
from ivrkit.steps.base import Step
from ivrkit.steps.retries import Attempts, RetryPolicy, retry_policy

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext


@dataclass(frozen=True)
class MenuSpec:
    prompt: list[Segment]
    choices: dict[str, str]
    timeout: float | None = None
    no_input: RetryPolicy = field(default_factory=RetryPolicy)
    invalid: RetryPolicy = field(default_factory=RetryPolicy)
    failed: str | None = None


MENU_OPTIONS: dict[str, Option] = {
    "prompt": Option(segments(), "What the caller hears, e.g. 'for billing press 1'.", required=True),
    "choices": Option(
        MapOf(Key(), StepRef(), "choices (key: step)"),
        'Each key and the step it leads to; quote "*" and "#".',
        required=True,
    ),
    "timeout": Option(
        Duration(), "How long to wait for a key after the prompt (default 5s, or `defaults.timeout`)."
    ),
    "no_input": retry_policy("no_input"),
    "invalid": retry_policy("invalid"),
    "failed": Option(StepRef(), "Where to go when the caller used up the tries."),
}


def ask(call: CallContext, spec: MenuSpec) -> Transition:
    """Play the prompt and wait for a choice, with re-prompts: the menu step's loop, for any step that asks."""
    attempts = Attempts(spec.no_input, spec.invalid, call.defaults.retries)
    timeout = spec.timeout if spec.timeout is not None else call.defaults.timeout
    while True:
        key = call.play(attempts.next_prompt(spec.prompt), escape=DTMF_KEYS)
        if key is None:
            key = call.wait_for_key(timeout)
        if key is not None and key in spec.choices:
            call.log("choice", key=key, then=spec.choices[key])
            return GoTo(spec.choices[key])
        kind = "no_input" if key is None else "invalid"
        call.log(kind, key=key, tries=attempts.counts[kind] + 1)
        if attempts.fail(kind):
            target = attempts.failed_target(kind, spec.failed)
            return GoTo(target) if target else Finish("menu-failed")


class Menu(Step):
    kind = "menu"
    summary = (
        "Plays a prompt and waits for one key. Any key interrupts the prompt (barge-in). Silence and wrong "
        "keys are retried separately, with re-prompts; when the tries are used up the caller goes to `failed` "
        "(or the call ends with outcome `menu-failed`)."
    )
    body = Record(MENU_OPTIONS, factory=MenuSpec, what="menu")
    takes_input = True
    example = """\
main_menu:
  menu:
    prompt: main-menu
    choices: {"1": billing, "2": support_queue, "0": operator}
    no_input: {retries: 2, reprompts: [[please-choose, main-menu], [main-menu-slow]]}
    invalid: {reprompt: [invalid-choice, main-menu]}
    failed: operator
"""

    def run(self, call: CallContext) -> Transition:
        return ask(call, self.value)
