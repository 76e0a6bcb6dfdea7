"""A channel on a simulated clock: prompts take their real length, keys arrive when the caller script says.

Nothing sleeps: time jumps from one event to the next. What a real PBX does with keys is kept: a key pressed
during a prompt interrupts it only if it is an escape key, and is otherwise lost; keys are read only while the
IVR plays an interruptible prompt or waits for a key. A spoken value takes as long as its words in the call's
language (:mod:`ivrkit.prompts.languages`): "einundzwanzig" takes as long as "twenty-one".
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ivrkit.engine.channel import CallInfo
from ivrkit.engine.journal import Event
from ivrkit.engine.transitions import CallerHungUp
from ivrkit.prompts.catalog import DEFAULT_SECONDS, PromptCatalog
from ivrkit.prompts.languages import LANGUAGE_CODE, say_words, spoken_seconds
from ivrkit.sim.script import BARGE_IN_OFFSET, Action, CallerScript

MAX_CALL_SECONDS = 3600.0  # a simulated caller gives up after an hour, so a looping flow still ends

Note = Callable[[str, dict[str, Any]], None]


class SimulatedChannel:
    def __init__(
        self,
        info: CallInfo,
        start: dt.datetime,
        script: CallerScript,
        catalog: PromptCatalog | None = None,
        max_seconds: float = MAX_CALL_SECONDS,
    ):
        self.info = info
        self.start = start
        self.catalog = catalog
        self.t = 0.0
        self.variables: dict[str, str] = {}
        self.language = info.language  # the channel's language now, as Asterisk's CHANNEL(language)
        self.note: Note = lambda kind, detail: None
        self.flow_hung_up = False
        self._actions: deque[Action] = deque(script.actions)
        self._ready_at = 0.0  # no caller action happens before this time
        self._keys: list[tuple[float, str]] = []  # keys on their way, by arrival time
        self._hangup_at: float | None = None
        self._gives_up_at = max_seconds
        self._hung_up = False

    # -- the Channel interface ---------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.t)

    def play_prompt(self, prompt: str, language: str, escape: str) -> str | None:
        seconds = self.catalog.duration(prompt, language) if self.catalog else DEFAULT_SECONDS
        return self._play(seconds, escape, prompt)

    def say(self, kind: str, value: str, language: str, escape: str) -> str | None:
        """As long as the words take in ``language``; a value the PBX could not say fails as it would live."""
        seconds = spoken_seconds(say_words(kind, value, language))
        return self._play(seconds, escape, None)

    def set_language(self, language: str) -> None:
        if not LANGUAGE_CODE.fullmatch(language):
            raise ValueError(f"'{language[:40]}' is not a language code such as en, de or de_AT")
        self.language = language
        self.info = replace(self.info, language=language)  # what a later session's environment says, as live

    def wait_for_key(self, timeout: float) -> str | None:
        self._alive()
        end = self.t + timeout
        while True:
            event = self._next_event(end, listening=True, prompt=None, prompt_start=self.t)
            if event is None:
                self.t = end
                return None
            at, kind, key = event
            if kind == "silence":
                self.t = end
                self._ready_at = max(self._ready_at, end)
                return None
            self.t = at
            return key

    def get_variable(self, name: str) -> str | None:
        return self.variables.get(name)

    def set_variables(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self.set_variable(name, value)

    def set_variable(self, name: str, value: str) -> None:
        if "\n" in value or "\r" in value:
            raise ValueError(f"variable {name} would carry a line break")
        self.variables[name] = value

    def hangup(self) -> None:
        self._alive()
        self.flow_hung_up = True
        self._hung_up = True

    # -- outside the interface: the simulation driver's controls ------------------------------------------

    def on_event(self, event: Event) -> None:
        """Journal listener: a caller action tied to a step (``in_step``) fires when the flow enters it."""
        if event.kind != "step" or not self._actions:
            return
        head = self._actions[0]
        if head.in_step == event.step:
            self._actions.popleft()
            self._fire(head, self.t)

    def pass_time(self, seconds: float) -> None:
        """Time spent outside the IVR (in a queue, ringing): keys pressed then are lost, a hang-up ends the call."""
        end = self.t + seconds
        while (event := self._next_event(end, listening=False, prompt=None, prompt_start=self.t)) is not None:
            at, _, key = event
            self.note("ignored-key", {"key": key, "at": round(at, 3)})
        self.t = end

    @property
    def remaining_actions(self) -> list[Action]:
        """Caller actions that never happened (flow tests report them: the call ended before the script)."""
        return list(self._actions)

    # -- the clock -------------------------------------------------------------------------------------------

    def _alive(self) -> None:
        if self._hung_up:
            raise CallerHungUp()

    def _play(self, seconds: float, escape: str, prompt: str | None) -> str | None:
        self._alive()
        start, end = self.t, self.t + seconds
        while True:
            event = self._next_event(end, listening=False, prompt=prompt, prompt_start=start)
            if event is None:
                self.t = end
                return None
            at, _, key = event
            assert key is not None
            if key in escape:
                self.t = at
                return key
            self.note("ignored-key", {"key": key, "at": round(at, 3)})

    def _fire(self, action: Action, at: float) -> None:
        if action.kind == "press":
            self._keys.extend((at + i * action.gap, key) for i, key in enumerate(action.keys))
            self._keys.sort()
            self._ready_at = at + (len(action.keys) - 1) * action.gap
        elif action.kind == "hangup":
            self._hangup_at = at if self._hangup_at is None else min(self._hangup_at, at)
            self._ready_at = at

    def _action_time(
        self, action: Action, listening: bool, prompt: str | None, prompt_start: float, end: float
    ) -> float | None:
        if action.after is not None:
            return self._ready_at + action.after
        if action.during is not None:
            if prompt != action.during:
                return None
            return max(prompt_start + min(BARGE_IN_OFFSET, (end - prompt_start) / 2), self._ready_at)
        if action.in_step is not None:
            return None
        return max(self.t, self._ready_at) if listening else None

    def _next_event(
        self, end: float, *, listening: bool, prompt: str | None, prompt_start: float
    ) -> tuple[float, str, str | None] | None:
        """The next thing that happens before ``end``: a key, a hang-up, or (when listening) a silence."""
        while True:
            while self._actions and self._actions[0].kind == "wait":
                self._ready_at = max(self._ready_at, self.t) + self._actions.popleft().seconds
            self._keys = [(at, key) for at, key in self._keys if at >= self.t or self._dropped(at, key)]
            # At equal times a key in flight comes first, then a hang-up, then the next scripted action; an
            # action that waits for the IVR to listen waits until the caller has finished typing.
            candidates: list[tuple[float, int, str]] = []
            if self._keys:
                candidates.append((self._keys[0][0], 0, "key"))
            hangup = self._gives_up_at if self._hangup_at is None else min(self._hangup_at, self._gives_up_at)
            candidates.append((hangup, 1, "hangup"))
            if self._actions and not (self._keys and self._actions[0].on_listen):
                at = self._action_time(self._actions[0], listening, prompt, prompt_start, end)
                if at is not None:
                    candidates.append((at, 2, "action"))
            at, _, kind = min(candidates)
            if at > end or (at == end and not listening):
                return None
            if kind == "hangup":
                self.t = at
                self._hung_up = True
                if self._hangup_at is None:
                    self.note("caller-gives-up", {"after": at})
                raise CallerHungUp()
            if kind == "key":
                _, key = self._keys.pop(0)
                return at, "key", key
            action = self._actions.popleft()
            if action.kind == "silence":
                return at, "silence", None
            self._fire(action, at)

    def _dropped(self, at: float, key: str) -> bool:
        self.note("ignored-key", {"key": key, "at": round(at, 3)})
        return False
