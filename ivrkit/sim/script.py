"""The simulated caller: what they press, when they stay silent, when they hang up.

Actions are consumed in order. By default an action happens when the IVR next *listens* (waits for a key
after its prompt), which is how a tester thinks: "at the menu, press 1". Timing can be made explicit:

* ``press: "1"``: press when the IVR next listens (several keys: one every ``gap`` seconds, default 0.3 s).
* ``press: "2", during: main-menu``: press half a second into that prompt (barge-in).
* ``press: "2", after: 4s``: press 4 s after the previous action, whatever the IVR is doing then.
* ``silence``: say nothing the next time the IVR listens (it times out).
* ``wait: 10s``: stay silent for 10 s before the next action.
* ``hangup`` (with the same ``during``/``after`` options, or ``in_step: name``): hang up.

The compact form used on the command line: ``"1 123# s w10 h"`` (keys, ``s`` silence, ``w<seconds>`` wait,
``h`` hang up).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

KEYS = re.compile(r"^[0-9*#A-Da-d]+$")
DEFAULT_GAP = 0.3
BARGE_IN_OFFSET = 0.5


@dataclass(frozen=True)
class Action:
    kind: str  # press, silence, wait, hangup
    keys: str = ""
    seconds: float = 0.0  # wait length, or `after` delay
    after: float | None = None
    during: str | None = None
    in_step: str | None = None
    gap: float = DEFAULT_GAP

    @property
    def on_listen(self) -> bool:
        """True when the action waits for the IVR to listen (no explicit timing)."""
        return self.after is None and self.during is None and self.in_step is None

    def describe(self) -> str:
        when = f" after {self.after:g}s" if self.after is not None else ""
        when += f" during {self.during}" if self.during else ""
        when += f" in step {self.in_step}" if self.in_step else ""
        if self.kind == "press":
            return f"press {self.keys}{when}"
        if self.kind == "wait":
            return f"wait {self.seconds:g}s"
        return f"{self.kind}{when}"


@dataclass
class CallerScript:
    actions: list[Action] = field(default_factory=list)

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions)


class ScriptError(ValueError):
    """A caller script that cannot be understood; the message says which token and why."""


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text.strip())
    if not match:
        raise ScriptError(f"'{text}' is not a duration such as 5, 5s, 500ms or 2m")
    scale = {"ms": 0.001, "m": 60.0}.get(match.group(2) or "s", 1.0)
    return float(match.group(1)) * scale


def parse_keys(text: str) -> CallerScript:
    """Parse the compact form: ``"1 123# s w10 h"``."""
    actions = []
    for token in text.split():
        lowered = token.lower()
        if lowered in ("h", "hangup"):
            actions.append(Action("hangup"))
        elif lowered in ("s", "silence"):
            actions.append(Action("silence"))
        elif lowered.startswith("w") and len(lowered) > 1:
            actions.append(Action("wait", seconds=_seconds(lowered[1:])))
        elif KEYS.match(token):
            actions.append(Action("press", keys=token.upper()))
        else:
            raise ScriptError(f"'{token}' is not keys (0-9 * #), s (silence), w<seconds> (wait) or h (hang up)")
    return CallerScript(actions)


def action_from(data: object) -> Action:
    """One action from its YAML form (see the module docstring)."""
    if isinstance(data, str) and data in ("silence", "hangup"):
        return Action(data)
    if not isinstance(data, dict):
        raise ScriptError(f"expected press/silence/wait/hangup, got {data!r}")
    options = dict(data)
    after = _seconds(str(options.pop("after"))) if "after" in options else None
    during = str(options.pop("during")) if "during" in options else None
    in_step = str(options.pop("in_step")) if "in_step" in options else None
    gap = _seconds(str(options.pop("gap"))) if "gap" in options else DEFAULT_GAP
    if "press" in options:
        keys = str(options.pop("press"))
        if not KEYS.match(keys):
            raise ScriptError(f"'{keys}' is not a key sequence (0-9, *, #, A-D)")
        action = Action("press", keys=keys.upper(), after=after, during=during, in_step=in_step, gap=gap)
    elif "wait" in options:
        action = Action("wait", seconds=_seconds(str(options.pop("wait"))))
    elif "hangup" in options:
        options.pop("hangup")
        action = Action("hangup", after=after, during=during, in_step=in_step)
    elif "silence" in options:
        options.pop("silence")
        action = Action("silence")
    else:
        raise ScriptError(f"expected one of press, silence, wait, hangup in {data!r}")
    if options:
        raise ScriptError(f"unknown option(s) {', '.join(map(str, options))} in caller action {data!r}")
    return action
