"""Link tokens: what they carry, and the three ways a token can be wrong."""

from __future__ import annotations

import base64
import doctest
import re
import stat
from pathlib import Path

import pytest

import ivrkit.sms.numbers
from ivrkit.sms.links import BadSignature, ExpiredToken, LinkContext, LinkSigner, MalformedToken
from ivrkit.sms.numbers import ANONYMOUS, NOT_MOBILE, unreachable_reason

T0 = 1_795_428_000
SIGNER = LinkSigner(b"k" * 32)
CONTEXT = LinkContext("+4915112345678", "support", "support", 7, T0, T0 + 600)


def test_a_token_carries_the_call_context_until_it_expires() -> None:
    token = SIGNER.sign(CONTEXT)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", token)  # base64url, no padding: safe in a URL
    assert SIGNER.verify(token, now=T0 + 599) == CONTEXT
    with pytest.raises(ExpiredToken):
        SIGNER.verify(token, now=T0 + 600)
    assert SIGNER.issue("+491", "f", None, None, T0 + 0.9, 60.5) == SIGNER.sign(LinkContext("+491", "f", None, None,
                                                                                             T0, T0 + 61))


def test_a_token_signed_with_another_key_or_altered_has_a_bad_signature() -> None:
    token = SIGNER.sign(CONTEXT)
    with pytest.raises(BadSignature):
        LinkSigner(b"x" * 32).verify(token, now=T0)
    payload, signature = token.split(".")
    forged = base64.urlsafe_b64encode(base64.urlsafe_b64decode(payload + "==").replace(b'"p":7', b'"p":1'))
    with pytest.raises(BadSignature):
        SIGNER.verify(forged.decode().rstrip("=") + "." + signature, now=T0)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "not base64!.abc", "é.abc", "x" * 3000 + ".y"])
def test_what_is_not_a_token_is_malformed(token: str) -> None:
    with pytest.raises(MalformedToken):
        SIGNER.verify(token, now=T0)


def test_a_genuine_signature_over_a_payload_that_is_not_ours_is_malformed() -> None:
    payload = base64.urlsafe_b64encode(b'{"c": 5}').decode().rstrip("=")
    signature = base64.urlsafe_b64encode(SIGNER._mac(payload)).decode().rstrip("=")
    with pytest.raises(MalformedToken, match="no valid 'caller'"):
        SIGNER.verify(f"{payload}.{signature}", now=T0)


def test_the_key_is_created_private_in_the_data_directory_and_reused(tmp_path: Path) -> None:
    signer = LinkSigner.from_data_dir(tmp_path / "data")
    key_file = tmp_path / "data" / "link-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert LinkSigner.from_data_dir(tmp_path / "data").verify(signer.sign(CONTEXT), now=T0) == CONTEXT


@pytest.mark.parametrize(
    ("number", "reason"),
    [("anonymous", ANONYMOUS), ("Anonymous", ANONYMOUS), ("unknown", ANONYMOUS), ("Restricted", ANONYMOUS),
     ("", ANONYMOUS), (" ", ANONYMOUS), ("0", ANONYMOUS), ("+", ANONYMOUS), ("+49 151 1234", ANONYMOUS),
     ("<unknown>", ANONYMOUS), ("+4930123456", None), ("+4915112345678", None), ("12345", NOT_MOBILE)],
)  # fmt: skip
def test_only_real_numbers_can_receive_texts(number: str, reason: str | None) -> None:
    assert unreachable_reason(number) == reason


def test_numbers_doctests() -> None:
    assert doctest.testmod(ivrkit.sms.numbers).failed == 0
