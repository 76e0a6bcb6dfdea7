"""Runs flows on a channel: the one loop where every transition, cancel, error and hang-up is handled.

A session starts a flow at its start step, or resumes a call that a hand-off step sent to the dialplan. A
session that starts while the flow is in maintenance meets that first (:mod:`ivrkit.engine.maintenance`): the
mode's prompts, then its action instead of the start step. The session ends when the flow hangs up, hands off
(the state is written to the call for the next session), or the caller hangs up (the flow's ``on_hangup``
step then runs on the dead channel).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ivrkit.engine.channel import Channel
from ivrkit.engine.context import CallContext
from ivrkit.engine.journal import Journal
from ivrkit.engine.maintenance import handling_for, in_force_for, meet
from ivrkit.engine.state import STATE_VARIABLE, CallState
from ivrkit.engine.transitions import CallerHungUp, Cancelled, Finish, GoTo, HandOff, SwitchFlow, Transition
from ivrkit.engine.world import StaticWorld, World
from ivrkit.flow.expressions import ExpressionError
from ivrkit.flow.model import Flow
from ivrkit.maintenance.model import Maintenance, Mode

RESULT_VARIABLE = "IVRKIT_RESULT"  # queue, transfer, hangup, caller-hangup or error: what the dialplan does next
TARGET_VARIABLE = "IVRKIT_TARGET"  # the queue or dial destination
OUTCOME_VARIABLE = "IVRKIT_OUTCOME"  # the flow's outcome label
MAX_STEPS_WITHOUT_INPUT = 200  # a flow that runs this many steps without waiting for the caller is looping
MAX_HANGUP_STEPS = 50


@dataclass
class SessionResult:
    """How one AGI session ended."""

    outcome: str  # "handoff", "caller-hangup", "error", or the hang-up step's outcome label
    state: CallState
    journal: Journal
    handoff: HandOff | None = None

    @property
    def finished(self) -> bool:
        """True when the call is over for the flow (nothing to resume)."""
        return self.handoff is None


def first_language(prompt: str, languages: Sequence[str]) -> str:
    """Without a catalog: the first language of the lookup order (the call's)."""
    return languages[0]


class Engine:
    """Runs flows. One engine serves any number of calls; all per-call state lives in the session."""

    def __init__(
        self,
        flows: Mapping[str, Flow],
        world: World | None = None,
        prompt_language: Callable[[str, Sequence[str]], str] = first_language,
    ):
        self.flows = flows
        self.world = world or StaticWorld({}, {})
        self.prompt_language = prompt_language

    def run(
        self, channel: Channel, flow: str, *, resume_outcome: str | None = None, journal: Journal | None = None
    ) -> SessionResult:
        """Run one session. With ``resume_outcome`` the call's saved state is resumed at its hand-off step."""
        journal = journal or Journal(channel.now())
        state = self._state(channel, flow, resume_outcome)
        state.sessions += 1
        current = self.flows[state.flow]
        ctx = CallContext(channel, current, state, journal, self.world, self.prompt_language)
        ctx.log("session", number=state.sessions, caller=channel.info.caller_number, resumed=resume_outcome,
                language=ctx.start_language())
        step_name = state.step or current.start
        ctx.resumed_outcome = resume_outcome.lower() if resume_outcome and state.step else None
        state.step = None
        try:
            ctx.sync_language()
            if resume_outcome and state.maintenance is not None:
                return self._maintenance_returned(ctx, resume_outcome.lower())
            if ctx.resumed_outcome is not None:
                self._returned(ctx, step_name, ctx.resumed_outcome)
                return self._loop(ctx, step_name)
            found = in_force_for(self.world, current, channel.now())
            ctx.maintenance_found(found)
            if found is not None:
                return self._maintenance(ctx, found)
            return self._loop(ctx, step_name)
        except CallerHungUp:
            ctx.log("hangup", by="caller")
            self._run_hangup_handler(ctx)
            return self._end(ctx, "caller-hangup", "caller-hangup")

    def run_hangup(self, channel: Channel, flow: str, *, journal: Journal | None = None) -> SessionResult:
        """A session on a call the caller has already left (the dialplan's hang-up handler runs it, for example
        when the caller hangs up in a queue): restore the call's state and run the flow's ``on_hangup`` steps."""
        journal = journal or Journal(channel.now())
        state = self._state(channel, flow, resume_outcome="hangup")
        state.sessions += 1
        ctx = CallContext(channel, self.flows[state.flow], state, journal, self.world, self.prompt_language)
        ctx.log("session", number=state.sessions, caller=channel.info.caller_number, resumed="hangup",
                language=ctx.start_language())
        if state.step is not None:
            self._returned(ctx, state.step, "hangup")
        self._run_hangup_handler(ctx)
        return self._end(ctx, "caller-hangup", "caller-hangup")

    def _state(self, channel: Channel, flow: str, resume_outcome: str | None) -> CallState:
        if resume_outcome is not None:
            saved = channel.get_variable(STATE_VARIABLE)
            if saved:
                state = CallState.from_channel(saved)
                handed_off = state.step in self.flows[state.flow].steps if state.flow in self.flows else False
                if handed_off or (state.flow in self.flows and state.step is None and state.maintenance):
                    return state
        if flow not in self.flows:
            raise KeyError(f"no flow named '{flow}'")
        return CallState(flow, vars=dict(self.flows[flow].variables))

    def _returned(self, ctx: CallContext, step_name: str, outcome: str) -> None:
        """Tell the hand-off step that the dialplan gave the call back; what it records never ends the call."""
        ctx.step = ctx.flow.steps[step_name]
        try:
            ctx.step.returned(ctx, outcome)
        except (ExpressionError, ValueError) as error:
            ctx.log("error", message=str(error))

    def _maintenance(self, ctx: CallContext, found: Maintenance) -> SessionResult:
        """The flow is in maintenance: the mode's prompts, then its action instead of the start step."""
        try:
            transition = meet(ctx, found)
        except (ExpressionError, ValueError) as error:  # a transfer's template, a time the channel cannot say
            ctx.log("error", message=str(error))
            return self._finish(ctx, "error")
        if isinstance(transition, GoTo):
            return self._loop(ctx, transition.step)
        if isinstance(transition, HandOff):
            ctx.state.maintenance = found.mode.value
            return self._hand_off(ctx, None, transition)
        assert isinstance(transition, Finish)
        return self._finish(ctx, transition.outcome)

    def _maintenance_returned(self, ctx: CallContext, outcome: str) -> SessionResult:
        """The dialplan gave back a call a maintenance mode transferred or queued (nobody answered, the queue was
        full…): the call ends, labelled like a hand-off step's (``maintenance-transfer-busy``)."""
        mode = ctx.state.maintenance or ""
        action = handling_for(ctx.flow, Mode(mode)).then.kind if mode in set(Mode) else "handoff"
        ctx.log("maintenance-returned", mode=mode, action=action, outcome=outcome)
        ctx.state.maintenance = None
        return self._finish(ctx, f"maintenance-{action}-{outcome}")

    def _loop(self, ctx: CallContext, step_name: str) -> SessionResult:
        without_input = 0
        while True:
            step = ctx.flow.steps[step_name]
            ctx.step = step
            if step.kind == "menu":
                ctx.state.enter_menu(step.name)
            ctx.log("step", kind=step.kind)
            try:
                transition: Transition = step.run(ctx)
            except Cancelled as cancel:
                ctx.log("cancel", to=cancel.target)
                transition = GoTo(cancel.target)
            except (ExpressionError, ValueError) as error:
                ctx.log("error", message=str(error))
                if ctx.flow.on_error and step_name != ctx.flow.on_error:
                    transition = GoTo(ctx.flow.on_error)
                else:
                    return self._finish(ctx, "error")
            ctx.resumed_outcome = None
            without_input = 0 if step.takes_input else without_input + 1
            if without_input > MAX_STEPS_WITHOUT_INPUT:
                ctx.log("error", message=f"{MAX_STEPS_WITHOUT_INPUT} steps without caller input: the flow is looping")
                return self._finish(ctx, "error")
            if isinstance(transition, GoTo):
                step_name = transition.step
            elif isinstance(transition, SwitchFlow):
                ctx.enter_flow(self.flows[transition.flow])
                step_name = transition.step or ctx.flow.start
            elif isinstance(transition, HandOff):
                return self._hand_off(ctx, step_name, transition)
            else:
                assert isinstance(transition, Finish)
                return self._finish(ctx, transition.outcome)

    def _hand_off(self, ctx: CallContext, step_name: str | None, handoff: HandOff) -> SessionResult:
        ctx.state.step = step_name
        variables = {STATE_VARIABLE: ctx.state.to_channel(), TARGET_VARIABLE: handoff.target}
        variables.update({f"IVRKIT_{name.upper()}": value for name, value in handoff.params.items()})
        ctx.log("handoff", action=handoff.action, target=handoff.target, **handoff.params)
        result = self._end(ctx, handoff.action, "handoff", variables)
        result.handoff = handoff
        return result

    def _finish(self, ctx: CallContext, outcome: str) -> SessionResult:
        result = self._end(ctx, "hangup" if outcome != "error" else "error", outcome)
        with contextlib.suppress(CallerHungUp):  # the caller was quicker
            ctx.channel.hangup()
        return result

    def _end(
        self, ctx: CallContext, action: str, outcome: str, variables: dict[str, str] | None = None
    ) -> SessionResult:
        """Set the result variables in one go (they work on a dead channel too) and close the journal."""
        ctx.channel.set_variables({**(variables or {}), OUTCOME_VARIABLE: outcome, RESULT_VARIABLE: action})
        ctx.log("end", outcome=outcome)
        return SessionResult(outcome, ctx.state, ctx.journal)

    def _run_hangup_handler(self, ctx: CallContext) -> None:
        """Run ``on_hangup`` on the dead channel: only steps that need no audio and no keys."""
        name = ctx.flow.on_hangup
        for _ in range(MAX_HANGUP_STEPS):
            if name is None:
                return
            step = ctx.flow.steps[name]
            ctx.step = step
            if not step.dead_safe:
                ctx.log("error", message=f"step '{name}' cannot run after the caller hung up")
                return
            ctx.log("step", kind=step.kind, dead=True)
            try:
                transition = step.run(ctx)
            except (ExpressionError, ValueError, CallerHungUp) as error:
                ctx.log("error", message=str(error))
                return
            name = transition.step if isinstance(transition, GoTo) else None
