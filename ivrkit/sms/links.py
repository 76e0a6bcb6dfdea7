"""Signed, expiring link tokens: the call's context travels in the link, so a web chat can pick up where the
call left off without reaching into the IVR's store.

A token is ``<payload>.<signature>``, both base64url without padding: the payload is compact JSON
(``c`` caller, ``f`` flow, ``q`` queue, ``p`` position, ``t`` issue time, ``e`` expiry; Unix seconds), the
signature HMAC-SHA256 over the payload text with a key kept in the data directory (created 0600 on first
use). The payload is readable by whoever holds the link, so it carries nothing more than the call's own
context. :meth:`LinkSigner.verify` tells apart a malformed token, a bad signature (forged or another key) and
an expired one, which the admin endpoint answers with 400, 401 and 410.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from ivrkit.ops.secrets import load_or_create_secret

KEY_FILE = "link-key"
MAX_TOKEN_LENGTH = 2048
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_FIELDS = {"c": "caller", "f": "flow", "q": "queue", "p": "position", "t": "time", "e": "exp"}


class TokenError(Exception):
    """A token that does not verify; ``status`` is the HTTP answer for it."""

    status: ClassVar[int] = 400


class MalformedToken(TokenError):
    """Not a token at all (truncated link, wrong characters, not our format)."""

    status = 400


class BadSignature(TokenError):
    """Well formed but not signed with our key: forged, altered, or from another installation."""

    status = 401


class ExpiredToken(TokenError):
    """Genuine but past its expiry."""

    status = 410


@dataclass(frozen=True)
class LinkContext:
    """What a link says about the call it came from."""

    caller: str
    flow: str
    queue: str | None
    position: int | None
    time: int  # issued, Unix seconds
    exp: int  # expires, Unix seconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _BASE64URL.match(text):
        raise MalformedToken("the token is not base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken("the token is not base64url text") from None


class LinkSigner:
    """Signs and verifies link tokens with one secret key."""

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("a link-signing key needs at least 16 bytes")
        self._key = key

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> LinkSigner:
        """The signer with the key in ``data_dir/link-key`` (created, mode 0600, on first use). Every server
        process sharing the data directory signs alike, so any of them verifies any link."""
        return cls(load_or_create_secret(data_dir / KEY_FILE, "link-signing key").encode("ascii"))

    def sign(self, context: LinkContext) -> str:
        data = {short: getattr(context, name) for short, name in _FIELDS.items()}
        payload = _b64encode(json.dumps({k: v for k, v in data.items() if v is not None},
                                        separators=(",", ":"), ensure_ascii=True).encode("ascii"))
        return f"{payload}.{_b64encode(self._mac(payload))}"

    def issue(
        self, caller: str, flow: str, queue: str | None, position: int | None, at: float, ttl: float
    ) -> str:
        """A token for a call's context, valid for ``ttl`` seconds from ``at``."""
        return self.sign(LinkContext(caller, flow, queue, position, int(at), int(at + ttl)))

    def verify(self, token: str, now: float | None = None) -> LinkContext:
        """The context of a genuine, unexpired token; raises MalformedToken, BadSignature or ExpiredToken."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise MalformedToken("a link token is two base64url parts joined by '.'")
        payload, signature = token.split(".")
        data, given = _b64decode(payload), _b64decode(signature)
        if not hmac.compare_digest(given, self._mac(payload)):
            raise BadSignature("the token's signature does not match: it was altered or signed with another key")
        context = _context(data)
        if (time.time() if now is None else now) >= context.exp:
            raise ExpiredToken("the link has expired")
        return context

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()


def _context(payload: bytes) -> LinkContext:
    try:
        data = json.loads(payload)
    except ValueError:
        raise MalformedToken("the token's payload is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedToken("the token's payload is not a JSON object")
    values: dict[str, Any] = {name: data.get(short) for short, name in _FIELDS.items()}
    types: dict[str, type | tuple[type, ...]] = {
        "caller": str, "flow": str, "queue": (str, type(None)), "position": (int, type(None)), "time": int, "exp": int,
    }  # fmt: skip
    for name, expected in types.items():
        if not isinstance(values[name], expected) or isinstance(values[name], bool):
            raise MalformedToken(f"the token's payload has no valid '{name}'")
    return LinkContext(**values)
