"""No-input and invalid-input handling shared by menus and digit collection.

Industry practice: a few tries (three in all by default), a re-prompt that can grow more explicit each time,
and a fallback when the caller still has not made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivrkit.flow.fields import Integer, ListOf, Option, Record, StepRef
from ivrkit.flow.segments import Segment, segments

DEFAULT_RETRIES = 2


@dataclass(frozen=True)
class RetryPolicy:
    """What happens when the caller says nothing (``no_input``) or something wrong (``invalid``)."""

    retries: int | None = None
    reprompt: list[Segment] | None = None
    reprompts: list[list[Segment]] | None = None
    failed: str | None = None

    def prompt_for(self, retry: int, original: list[Segment]) -> list[Segment]:
        """The prompt for the ``retry``-th re-prompt (1-based): escalating when ``reprompts`` is given."""
        if self.reprompts:
            return self.reprompts[min(retry, len(self.reprompts)) - 1]
        return self.reprompt or original


def retry_policy(kind: str) -> Option:
    record: Record[Any] = Record(
        {
            "retries": Option(
                Integer(0, 20),
                f"How many times the caller is asked again after the first try (default {DEFAULT_RETRIES}: "
                "three tries in all; the flow's `defaults.retries` overrides).",
            ),
            "reprompt": Option(segments(), "What is played instead of the prompt on every retry."),
            "reprompts": Option(
                ListOf(segments(), single=False, min_items=1),
                "Escalating re-prompts: the first entry on the first retry, and so on; the last one repeats.",
            ),
            "failed": Option(StepRef(), "Where to go when the retries are used up (default: the step's `failed`)."),
        },
        factory=RetryPolicy,
        what=f"{kind} handling",
    )
    return Option(record, f"What to do on {kind.replace('_', '-')}: retries, re-prompts, fallback.", RetryPolicy())


@dataclass
class Attempts:
    """Counts no-input and invalid tries separately, as callers and reports distinguish them."""

    no_input: RetryPolicy
    invalid: RetryPolicy
    default_retries: int
    counts: dict[str, int] = field(default_factory=lambda: {"no_input": 0, "invalid": 0})
    last: str | None = None

    def policy(self, kind: str) -> RetryPolicy:
        return self.no_input if kind == "no_input" else self.invalid

    def fail(self, kind: str) -> bool:
        """Record one failed try; True when no retry is left."""
        self.counts[kind] += 1
        self.last = kind
        policy = self.policy(kind)
        allowed = policy.retries if policy.retries is not None else self.default_retries
        return self.counts[kind] > allowed

    def next_prompt(self, original: list[Segment]) -> list[Segment]:
        if self.last is None:
            return original
        return self.policy(self.last).prompt_for(self.counts[self.last], original)

    def failed_target(self, kind: str, fallback: str | None) -> str | None:
        return self.policy(kind).failed or fallback
