"""A whole simulated call: sessions, hand-offs to the (simulated) dialplan, and resumption.

When a flow hands the caller to a queue or a transfer, the simulator plays the dialplan's part: it takes the
next result from the test's ``handoffs`` list (default: answered, which ends the call), lets the time pass, and
resumes the flow with that outcome through the same channel variables a real dialplan would use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ivrkit.engine.channel import CallInfo
from ivrkit.engine.journal import Event, Journal
from ivrkit.engine.runner import Engine, SessionResult, first_language
from ivrkit.engine.transitions import CallerHungUp
from ivrkit.engine.world import StaticWorld, World
from ivrkit.flow.model import Flow
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.prompts.languages import say_words
from ivrkit.sim.channel import MAX_CALL_SECONDS, SimulatedChannel
from ivrkit.sim.script import CallerScript

ANSWERED = "answered"
MAX_SESSIONS = 50
DEFAULT_START = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)  # a Monday morning


@dataclass(frozen=True)
class HandoffResult:
    """What the dialplan reports after a hand-off: ``answered`` or a queue/dial status such as ``timeout``."""

    outcome: str = ANSWERED
    after: float = 0.0  # seconds spent in the queue or ringing
    queues: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # statistics that changed meanwhile


@dataclass
class SimulationResult:
    outcome: str  # "queue:support" / "transfer:PJSIP/100" when answered, else the flow's outcome label
    journal: Journal
    vars: dict[str, Any]
    variables: dict[str, str]  # channel variables at the end
    seconds: float
    catalog: PromptCatalog | None = None
    handoffs: list[tuple[str, str, str]] = field(default_factory=list)  # (action, target, outcome)

    @property
    def heard(self) -> list[str]:
        return self.journal.prompts_heard()

    @property
    def steps(self) -> list[str]:
        return self.journal.steps_entered()

    @property
    def events(self) -> list[Event]:
        return self.journal.events

    def transcript(self, with_text: bool = True) -> str:
        """The journal, one event a line; with ``with_text`` what the caller heard follows each prompt and spoken
        value in quotes: the prompt's text from the catalog, a value in words of its language."""
        lines = []
        for event in self.journal:
            line = event.describe()
            heard = self._heard_text(event) if with_text and event.kind == "played" else None
            lines.append(line if heard is None else f'{line}  "{heard}"')
        return "\n".join(lines)

    def _heard_text(self, event: Event) -> str | None:
        detail = event.detail
        language = detail.get("language") or "en"
        if "prompt" in detail:
            return self.catalog.text(detail["prompt"], language) if self.catalog else None
        try:
            return say_words(detail["say"], str(detail["value"]), language)
        except (KeyError, ValueError):
            return None


class Simulation:
    """Runs simulated calls against a set of flows; reusable across many calls."""

    def __init__(self, flows: Mapping[str, Flow], catalog: PromptCatalog | None = None, world: World | None = None):
        self.flows = flows
        self.catalog = catalog
        self.world = world
        language = catalog.language_for if catalog else first_language
        self.engine = Engine(flows, world, language)

    def run(
        self,
        flow: str,
        script: CallerScript,
        *,
        caller_number: str = "+4930123456",
        caller_name: str = "Test Caller",
        dnid: str = "",
        language: str = "",
        params: dict[str, str] | None = None,
        start: dt.datetime = DEFAULT_START,
        handoffs: list[HandoffResult] | None = None,
        world: World | None = None,
        max_seconds: float = MAX_CALL_SECONDS,
        channel_factory: Callable[..., SimulatedChannel] = SimulatedChannel,
    ) -> SimulationResult:
        info = CallInfo(
            uniqueid="sim-1",
            caller_number=caller_number,
            caller_name=caller_name,
            dnid=dnid,
            channel="Local/sim@ivrkit-0001;2",
            language=language,
            params=dict(params or {}),
        )
        channel = channel_factory(info, start, script, self.catalog, max_seconds)
        journal = Journal(start)
        journal.listeners.append(channel.on_event)
        # each call gets its own world unless one is given, so what one call records never reaches the next
        world = world or self.world or StaticWorld({}, {})
        engine = Engine(self.flows, world, self.engine.prompt_language)
        current: dict[str, str | None] = {"flow": flow, "step": None}

        def remember(event: Event) -> None:
            current["flow"], current["step"] = event.flow, event.step

        journal.listeners.append(remember)
        def note(kind: str, detail: dict[str, Any]) -> None:
            journal.record(channel.now(), kind, current["flow"] or flow, current["step"], **detail)

        channel.note = note
        pending = list(handoffs or [])
        done: list[tuple[str, str, str]] = []
        result: SessionResult = engine.run(channel, flow, journal=journal)
        outcome = result.outcome
        for _ in range(MAX_SESSIONS):
            if result.handoff is None:
                break
            answer = pending.pop(0) if pending else HandoffResult()
            handoff = result.handoff
            done.append((handoff.action, handoff.target, answer.outcome))
            journal.record(
                channel.now(),
                "dialplan",
                result.state.flow,
                None,
                action=handoff.action,
                target=handoff.target,
                result=answer.outcome,
            )
            if answer.queues:
                engine = Engine(self.flows, _changed(engine.world, answer.queues), engine.prompt_language)
            try:
                channel.pass_time(answer.after)
            except CallerHungUp:
                journal.record(channel.now(), "hangup", result.state.flow, None, by="caller", where=handoff.action)
                result = engine.run_hangup(channel, flow, journal=journal)
                outcome = result.outcome
                break
            if answer.outcome == ANSWERED:
                outcome = f"{handoff.action}:{handoff.target}"
                break
            result = engine.run(channel, flow, resume_outcome=answer.outcome, journal=journal)
            outcome = result.outcome
        return SimulationResult(
            outcome, journal, dict(result.state.vars), dict(channel.variables), channel.t, self.catalog, done
        )


def _changed(world: World, queues: Mapping[str, Mapping[str, Any]]) -> World:
    if not isinstance(world, StaticWorld):
        raise TypeError("queue statistics can change during a simulated call only in a StaticWorld")
    return world.changed(queues)


def simulate(flows: Mapping[str, Flow], flow: str, script: CallerScript, **options: Any) -> SimulationResult:
    """One simulated call (see :meth:`Simulation.run` for the options)."""
    catalog = options.pop("catalog", None)
    world = options.pop("world", None)
    return Simulation(flows, catalog, world or StaticWorld({}, {})).run(flow, script, **options)
