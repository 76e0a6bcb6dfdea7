"""What a step returns: where the call goes next.

Steps never jump by themselves; they return one of these values and the runner acts on it, so the whole
control flow of a call is visible in one loop (:mod:`ivrkit.engine.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GoTo:
    """Continue at another step of the same flow."""

    step: str


@dataclass(frozen=True)
class SwitchFlow:
    """Continue in another flow, at its start or at a named step."""

    flow: str
    step: str | None = None


@dataclass(frozen=True)
class HandOff:
    """End this AGI session and let the dialplan do something (queue, dial); the flow resumes afterwards.

    ``params`` are what the dialplan needs (queue name, timeout, priority, dial string), all plain strings that
    the AGI layer writes to channel variables.
    """

    action: str  # "queue" or "transfer"
    target: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Finish:
    """The flow hangs up the call; ``outcome`` is the label recorded in the journal and metrics."""

    outcome: str = "completed"


Transition = GoTo | SwitchFlow | HandOff | Finish


class CallerHungUp(Exception):
    """The caller hung up. Raised by a channel at the next operation; handled once, in the runner."""


class Cancelled(Exception):
    """The caller pressed the cancel key; the runner backs out to the cancel target."""

    def __init__(self, target: str, discarded: str = ""):
        super().__init__(target)
        self.target = target
        self.discarded = discarded
