"""``play``: one or more prompts, and spoken values, in order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ivrkit.engine.transitions import Finish, GoTo, Transition
from ivrkit.flow.fields import DTMF_KEYS, Boolean, Field, Option
from ivrkit.flow.segments import segments
from ivrkit.steps.base import Step, next_option

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext


class Play(Step):
    kind = "play"
    summary = "Plays prompts (and spoken values) one after another, then goes to `next`."
    body: ClassVar[Field[Any]] = segments()
    options = {
        "next": next_option(),
        "barge_in": Option(
            Boolean(), "Let a key press skip the rest of the prompts (the key is then discarded).", False
        ),
    }
    example = """\
greeting:
  play: [welcome, calls-recorded]
  next: main_menu
"""

    def run(self, call: CallContext) -> Transition:
        escape = DTMF_KEYS if self.settings["barge_in"] else ""
        call.play(self.value, escape=escape)
        return GoTo(self.next) if self.next else Finish("end-of-flow")
