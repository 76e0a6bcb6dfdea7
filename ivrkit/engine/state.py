"""The part of a call's state that must outlive one AGI session, kept on the call itself.

When a flow hands the caller to the dialplan (a queue, a transfer) the AGI session ends. The dialplan later
starts a new session to resume the flow, possibly on another server process, so nothing may live only in
server memory: the engine writes this state to the channel variable ``IVRKIT_STATE`` and reads it back on resume.
On the channel it is compact JSON, base64url-encoded without padding: that alphabet is one MSet reads safely, so
the state travels in the same one command as the dialplan's result variables (one round trip fewer per call).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from ivrkit.prompts.languages import LANGUAGE_CODE

STATE_VARIABLE = "IVRKIT_STATE"
MAX_STATE_BYTES = (
    4000  # a channel variable read over AGI is cut at about 1 KiB by GET VARIABLE; we use GET FULL VARIABLE
)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=True)  # built once, not per call


@dataclass(frozen=True)
class CallbackOptIn:
    """A caller's wish to be called back if they hang up while waiting in ``queue`` (a ``callback`` step with
    ``when: on_hangup``); the queue step registers it only then. Nothing is stored before."""

    queue: str
    number: str  # E.164
    reason: str | None = None


@dataclass
class CallState:
    flow: str
    step: str | None = None  # the hand-off step to resume at (None after a maintenance action's hand-off)
    vars: dict[str, Any] = field(default_factory=dict)
    menus: list[str] = field(default_factory=list)  # menus visited, for the cancel key's default target
    sessions: int = 0
    position: int | None = None  # the last queue position the caller heard (a later one may not be higher)
    queue: str | None = None  # the queue the call was handed to, until the wait there is recorded
    queued_at: float | None = None  # when (Unix time): the wait when Asterisk does not say
    joined: dict[str, float] = field(default_factory=dict)  # queue → first join in this call: a callback's place
    callback: CallbackOptIn | None = None  # the caller opted in to a callback on hang-up
    maintenance: str | None = None  # the maintenance mode whose transfer or queue handed the call off (no step)
    language: str | None = None  # the call's language (chosen when the call starts, or by a `language` step)

    def to_json(self) -> str:
        data: dict[str, Any] = {"f": self.flow, "s": self.step, "v": self.vars, "m": self.menus[-8:]}
        data["n"] = self.sessions
        if self.position is not None:
            data["p"] = self.position
        if self.queue is not None:
            data["q"] = [self.queue, self.queued_at]
        if self.joined:
            data["j"] = self.joined
        if self.callback is not None:
            opt_in = self.callback
            data["c"] = [opt_in.queue, opt_in.number] + ([opt_in.reason] if opt_in.reason is not None else [])
        if self.maintenance is not None:
            data["x"] = self.maintenance
        if self.language is not None:
            data["l"] = self.language
        text = _ENCODER.encode(data)
        if len(text) > MAX_STATE_BYTES:
            raise ValueError(f"call state is {len(text)} bytes, more than {MAX_STATE_BYTES}: keep flow variables small")
        return text

    def to_channel(self) -> str:
        """The state as the channel keeps it: :meth:`to_json`, base64url-encoded without padding."""
        return base64.urlsafe_b64encode(self.to_json().encode("utf-8")).rstrip(b"=").decode("ascii")

    @classmethod
    def from_channel(cls, text: str) -> CallState:
        """What :meth:`to_channel` wrote, or the plain JSON earlier versions wrote (a call handed off while the
        server was upgraded resumes all the same)."""
        text = text.strip()
        if text.startswith("{"):
            return cls.from_json(text)
        try:
            return cls.from_json(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError) as error:
            raise ValueError(f"not an ivrkit call state: {error}") from error

    @classmethod
    def from_json(cls, text: str) -> CallState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not an ivrkit call state: {error}") from None
        if not isinstance(data, dict) or not isinstance(data.get("f"), str):
            raise ValueError("not an ivrkit call state")
        queued = data.get("q") or [None, None]
        opt_in = data.get("c")
        return cls(
            flow=data["f"],
            step=data.get("s"),
            vars=dict(data.get("v") or {}),
            menus=list(data.get("m") or []),
            sessions=int(data.get("n") or 0),
            position=None if data.get("p") is None else int(data["p"]),
            queue=None if queued[0] is None else str(queued[0]),
            queued_at=None if queued[1] is None else float(queued[1]),
            joined={str(queue): float(at) for queue, at in (data.get("j") or {}).items()},
            callback=CallbackOptIn(*(str(part) for part in opt_in[:3])) if opt_in else None,
            maintenance=None if data.get("x") is None else str(data["x"]),
            language=_language(data.get("l")),
        )

    def enter_menu(self, name: str) -> None:
        """Remember a menu; coming back to an earlier menu forgets the ones after it."""
        if name in self.menus:
            del self.menus[self.menus.index(name) + 1 :]
        else:
            self.menus.append(name)

    def previous_menu(self, current: str) -> str | None:
        menus = [m for m in self.menus if m != current]
        return menus[-1] if menus else None


def _language(value: Any) -> str | None:
    """The saved language, if it is one (it goes back to the PBX as CHANNEL(language))."""
    return value if isinstance(value, str) and LANGUAGE_CODE.fullmatch(value) else None
