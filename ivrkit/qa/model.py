"""The loaded form of a flow-test file: cases with their setup, caller script and expectations.

Every piece keeps the YAML position it was written at, so a load error and a failed expectation both point
at the line a QA engineer typed, not at Python code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from ivrkit.engine.world import StaticWorld
from ivrkit.flow.diagnostics import Diagnostics, Location
from ivrkit.sim.script import Action
from ivrkit.sim.session import HandoffResult

if TYPE_CHECKING:
    from ivrkit.qa.expect import Expectation

T = TypeVar("T")


@dataclass(frozen=True)
class Located(Generic[T]):
    """A value and where it was written."""

    value: T
    location: Location


@dataclass(frozen=True)
class ScriptStep:
    """One caller action and the YAML that asked for it (for "never happened" failures)."""

    action: Action
    location: Location


@dataclass(frozen=True)
class Setup:
    """What a case fakes before the call starts; ``None`` means "take it from `defaults`, else the default"."""

    caller_number: str | None = None
    caller_name: str | None = None
    language: str | None = None
    now: dt.datetime | None = None  # naive: in the tested flow's timezone
    world: StaticWorld | None = None
    handoffs: Located[list[HandoffResult]] | None = None

    def over(self, defaults: Setup) -> Setup:
        """This setup with gaps filled from ``defaults``."""
        filled = {f.name: getattr(defaults, f.name) for f in fields(self) if getattr(self, f.name) is None}
        return replace(self, **filled)


@dataclass
class FlowTest:
    """One case of a test file: a simulated call and what must come of it."""

    name: str
    file: str
    location: Location  # the case's name in the file
    flow: str
    setup: Setup = field(default_factory=Setup)
    script: list[ScriptStep] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    description: str | None = None
    problems: Diagnostics = field(default_factory=Diagnostics)  # errors make the case broken: it cannot run

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    @property
    def broken(self) -> bool:
        return bool(self.problems.errors)


@dataclass
class Suite:
    """One ``*.test.yaml`` file. File-level errors (bad YAML, unknown flow) stop every case in it."""

    file: str
    flow: Located[str] | None = None
    description: str | None = None
    cases: list[FlowTest] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def broken(self) -> bool:
        return bool(self.diagnostics.errors)

    def source_lines(self) -> list[str]:
        return self.diagnostics.sources.get(self.file, [])
