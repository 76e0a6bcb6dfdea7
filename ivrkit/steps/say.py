"""``say``: a number, digits, letters or a date/time spoken by the PBX in the caller's language."""

from __future__ import annotations

from typing import Any, ClassVar

from ivrkit.flow.fields import Field, ListOf
from ivrkit.flow.segments import SayField
from ivrkit.steps.play import Play


class Say(Play):
    kind = "say"
    summary = (
        "Speaks a value: `number`, `digits`, `alpha` (letters), `date`, `time` or `datetime` "
        "(dates from an ISO text or a Unix time). `play` lists accept the same items between prompts."
    )
    body: ClassVar[Field[Any]] = ListOf(SayField(), single=True, min_items=1)
    example = """\
read_back:
  say: {digits: "{{ vars.account }}"}
  next: confirm_menu
"""
