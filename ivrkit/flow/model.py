"""The loaded form of a flow file: a :class:`Flow` holding its :class:`~ivrkit.steps.base.Step` objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivrkit.flow.diagnostics import Location
from ivrkit.flow.fields import Reference
from ivrkit.flow.hours import Schedule
from ivrkit.flow.pbx import DialplanSettings, QueueSettings
from ivrkit.flow.source import Mapping

if TYPE_CHECKING:
    from ivrkit.flow.maintenance import MaintenanceSettings
    from ivrkit.steps.base import Step
    from ivrkit.steps.sms import SmsDefaults

DEFAULT_TIMEOUT = 5.0  # first key or digit, seconds
DEFAULT_INTER_DIGIT_TIMEOUT = 3.0
DEFAULT_RETRIES = 2  # three tries in all
DEFAULT_CANCEL_KEY = "*"


@dataclass(frozen=True)
class Defaults:
    """Flow-wide timing defaults, overridable per step."""

    timeout: float = DEFAULT_TIMEOUT
    inter_digit_timeout: float = DEFAULT_INTER_DIGIT_TIMEOUT
    retries: int = DEFAULT_RETRIES


@dataclass
class Flow:
    name: str
    file: str
    location: Location
    start: str
    steps: dict[str, Step]
    language: str = "en"
    languages: tuple[str, ...] = ()  # every language the flow speaks, `language` first (loader fills it in)
    timezone: str = "UTC"
    description: str | None = None
    cancel_key: str = DEFAULT_CANCEL_KEY
    defaults: Defaults = field(default_factory=Defaults)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    on_hangup: str | None = None
    on_error: str | None = None
    dialplan: DialplanSettings = field(default_factory=DialplanSettings)
    queues: dict[str, QueueSettings] = field(default_factory=dict)  # queues.conf settings, by queue name
    sms: SmsDefaults | None = None  # the flow-level `sms:` defaults of its sms steps
    maintenance: MaintenanceSettings | None = None  # the `maintenance:` block (None: the gate's prompt, hang up)
    references: list[Reference] = field(default_factory=list)
    node: Mapping | None = field(default=None, repr=False, compare=False)  # the YAML it was read from, with positions

    def __post_init__(self) -> None:
        if not self.languages:
            self.languages = (self.language,)

    def cancel_key_for(self, step: Step) -> str:
        """The cancel key in force at ``step`` ("" when off)."""
        return self.cancel_key if step.cancel_key is None else step.cancel_key
