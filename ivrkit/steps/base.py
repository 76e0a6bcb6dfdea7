"""The contract every step kind fulfils, and the options all steps share.

A step kind is one class in one module: its YAML shape (``body`` for the value under the kind key,
``options`` for sibling keys), its documentation (``summary``, ``example``), what static checks need to know
(``takes_input``, ``ends_call``) and what it does on a call (``run``). The registry in
:mod:`ivrkit.steps` lists them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ivrkit.flow.diagnostics import Location
from ivrkit.flow.fields import Field, Key, Option, ParseContext, StepRef, Text

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext
    from ivrkit.engine.transitions import Transition
    from ivrkit.flow.model import Flow

COMMON_OPTIONS: dict[str, Option] = {
    "cancel_key": Option(
        Key(allow_none=True),
        "Overrides the flow's cancel key for this step; `none` turns it off here.",
    ),
    "cancel_to": Option(
        StepRef(),
        "Where the cancel key leads from this step (default: the previous menu).",
    ),
    "note": Option(Text(), "A comment for designers; shown in graphs, ignored on calls."),
}


def next_option(help_text: str = "The step that follows.") -> Option:
    return Option(StepRef(), help_text)


class Step:
    """One node of a flow. Subclasses set the class attributes and implement :meth:`run`."""

    kind: ClassVar[str]
    summary: ClassVar[str]
    body: ClassVar[Field[Any]]
    options: ClassVar[dict[str, Option]] = {}
    example: ClassVar[str] = ""
    takes_input: ClassVar[bool] = False  # waits for caller keys, so a loop through it is not a runaway
    ends_call: ClassVar[bool] = False  # leaves the flow: the caller is never stuck after it
    dead_safe: ClassVar[bool] = False  # can run after the caller hung up (no audio, no keys)

    def __init__(self, name: str, location: Location, value: Any, settings: dict[str, Any]):
        self.name = name
        self.location = location
        self.value = value
        self.settings = settings
        self.cancel_key: str | None = settings.get("cancel_key")
        self.cancel_to: str | None = settings.get("cancel_to")
        self.note: str | None = settings.get("note")

    @property
    def next(self) -> str | None:
        value = self.settings.get("next")
        return value if isinstance(value, str) else None

    def check_flow(self, flow: Flow, ctx: ParseContext) -> None:
        """What only the whole flow shows (a language menu's choice the flow does not speak): reported on ``ctx``
        like the loader's other errors, once the flow is built."""

    def run(self, call: CallContext) -> Transition:
        raise NotImplementedError

    def returned(self, call: CallContext, outcome: str) -> None:
        """The dialplan gave back a call this step handed off: ``outcome`` is its status, lower-cased, or
        ``hangup`` when the caller hung up while the dialplan held the call. Called once, before the step
        maps the outcome (a queue step records the wait there); it may run on a dead channel."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self.location}>"
