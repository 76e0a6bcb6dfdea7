"""The registry of step kinds. Adding a kind: one module here and one line below."""

from __future__ import annotations

from ivrkit.steps.base import COMMON_OPTIONS, Step
from ivrkit.steps.branch import Branch
from ivrkit.steps.callback import Callback
from ivrkit.steps.collect import Collect
from ivrkit.steps.goto import Goto
from ivrkit.steps.hangup import Hangup
from ivrkit.steps.hours import Hours
from ivrkit.steps.language import Language
from ivrkit.steps.menu import Menu
from ivrkit.steps.play import Play
from ivrkit.steps.queue import Queue
from ivrkit.steps.say import Say
from ivrkit.steps.set import Set
from ivrkit.steps.sms import Sms
from ivrkit.steps.transfer import Transfer

STEP_KINDS: dict[str, type[Step]] = {
    kind.kind: kind
    for kind in (Play, Say, Menu, Language, Collect, Set, Branch, Hours, Goto, Queue, Transfer, Sms, Callback, Hangup)
}

__all__ = ["COMMON_OPTIONS", "STEP_KINDS", "Step"]
