"""Walk through a flow in a terminal: see what the caller hears, type the keys they would press.

The clock is still simulated (a prompt "plays" instantly and the transcript shows its real length). Keys typed
ahead are kept, so typing ``1`` while a menu is announced works like barge-in on the phone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TextIO

from ivrkit.engine.channel import CallInfo
from ivrkit.engine.journal import Event
from ivrkit.engine.transitions import CallerHungUp
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.prompts.languages import say_words
from ivrkit.sim.channel import SimulatedChannel
from ivrkit.sim.script import DEFAULT_GAP, KEYS, CallerScript

HELP = "type keys (0-9 * #) and Enter; Enter alone = stay silent; h = hang up; ? = help"


class InteractiveChannel(SimulatedChannel):
    """A simulated channel whose caller is the person at the terminal."""

    def __init__(
        self,
        info: CallInfo,
        start: dt.datetime,
        script: CallerScript,
        catalog: PromptCatalog | None,
        max_seconds: float,
        *,
        read: Callable[[str], str],
        out: TextIO,
    ):
        super().__init__(info, start, script, catalog, max_seconds)
        self.read, self.out = read, out
        self.typed: list[str] = []

    def play_prompt(self, prompt: str, language: str, escape: str) -> str | None:
        text = self.catalog.text(prompt, language) if self.catalog else f"[{prompt}]"
        self.out.write(f"  ♪ {prompt}: {text}\n")
        return self._type_ahead(escape) or super().play_prompt(prompt, language, "")

    def say(self, kind: str, value: str, language: str, escape: str) -> str | None:
        self.out.write(f"  ♪ ({kind}) {value}: {say_words(kind, value, language)}\n")
        return self._type_ahead(escape) or super().say(kind, value, language, "")

    def wait_for_key(self, timeout: float) -> str | None:
        self._alive()
        if self.typed:
            self.t += DEFAULT_GAP
            return self.typed.pop(0)
        while True:
            line = self.read(f"[{self.t:7.1f}s] keys> ").strip()
            if line in ("h", "hangup", "q", "quit"):
                self.hangup_now()
            if line == "?":
                self.out.write(HELP + "\n")
                continue
            if not line:
                self.t += timeout
                self.out.write(f"  (silence for {timeout:g}s)\n")
                return None
            if not KEYS.match(line):
                self.out.write(f"  '{line}' is not keys. {HELP}\n")
                continue
            self.typed.extend(line.upper())
            return self.typed.pop(0)

    def on_event(self, event: Event) -> None:
        """Show where the call is, so a designer can follow the flow."""
        if event.kind == "step" and not event.detail.get("dead"):
            self.out.write(f"→ {event.flow}.{event.step} ({event.detail.get('kind')})\n")
        elif event.kind in ("no_input", "invalid", "cancel", "handoff", "error"):
            details = ", ".join(f"{k}={v}" for k, v in event.detail.items() if v is not None)
            self.out.write(f"  [{event.kind}] {details}\n")
        super().on_event(event)

    def hangup_now(self) -> None:
        self.out.write("  (you hung up)\n")
        self._hung_up = True
        raise CallerHungUp()

    def _type_ahead(self, escape: str) -> str | None:
        if self.typed and self.typed[0] in escape:
            return self.typed.pop(0)
        return None
