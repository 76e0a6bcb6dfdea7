"""The number a callback goes to, validated and normalised to E.164 (``+4930123456``) with ``phonenumbers``.

Two sources, with the queue's ``callback.country`` (an ISO 3166 region such as ``DE``) for numbers written
without a country code:

* the caller ID (:func:`from_caller_id`): whatever the network sent, ``+4930123456``, ``030123456``,
  ``004930123456``, or ``anonymous``, ``Restricted``, ``0``, nothing. Anything that is not a plain number (an
  optional ``+`` and digits) counts as anonymous;
* the keys a caller typed (:func:`from_keys`): national (``030123456`` with country ``DE``) or international
  with ``00`` (``004930123456``). Without a country only international numbers are understood, with or
  without the ``00``; a national one (a single leading ``0``) is refused rather than guessed.

A number must be valid for its country (length and ranges, as ``phonenumbers`` knows them) and have at most the
15 digits E.164 allows. Premium-rate numbers are refused: calling one back would cost the company money (a
known toll-fraud trick).
"""

from __future__ import annotations

import re

import phonenumbers

ANONYMOUS = "anonymous"  # no number at all (withheld, unknown, empty)
NEEDS_COUNTRY = "needs-country"  # a national number, and no country to read it with
INVALID = "invalid"  # not a number of any country
PREMIUM_RATE = "premium-rate"  # a number that costs the caller (here: us) extra

REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
WHY = {
    ANONYMOUS: "the caller ID is withheld or not a number",
    NEEDS_COUNTRY: "it has no country code and the queue's callback settings name no `country`",
    INVALID: "it is not a valid phone number",
    PREMIUM_RATE: "premium-rate numbers are never called back",
}
_PLAIN = re.compile(r"^\+?[0-9]+$")
MAX_E164_DIGITS = 15  # ITU-T E.164: country code and number together
_E164 = phonenumbers.PhoneNumberFormat.E164


class UnusableNumber(Exception):
    """A number that cannot be called back; ``reason`` is one of the constants above."""

    def __init__(self, reason: str, number: str):
        super().__init__(f"'{number}' cannot be called back: {WHY[reason]}")
        self.reason = reason
        self.number = number


def is_region(code: str) -> bool:
    """True for a region ``phonenumbers`` knows (upper case, as ISO 3166 writes it).

    >>> is_region("DE"), is_region("GB"), is_region("UK"), is_region("de")
    (True, True, False, False)
    """
    return code in REGIONS


def from_caller_id(caller_id: str | None, country: str | None) -> str:
    """The caller's own number in E.164, or :class:`UnusableNumber`.

    >>> from_caller_id("+4930123456", None), from_caller_id("030123456", "DE")
    ('+4930123456', '+4930123456')
    >>> from_caller_id("anonymous", "DE")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ivrkit.callbacks.numbers.UnusableNumber: 'anonymous' cannot be called back: the caller ID is withheld...
    """
    text = (caller_id or "").strip()
    if not _PLAIN.match(text) or not text.strip("+0"):
        raise UnusableNumber(ANONYMOUS, text)
    if text.startswith("+"):
        return _checked(text, None, text)
    if country is None:
        if text.startswith("00"):
            return _checked("+" + text[2:], None, text)
        raise UnusableNumber(NEEDS_COUNTRY, text)
    return _checked(text, country, text)


def from_keys(digits: str, country: str | None) -> str:
    """A number the caller typed, in E.164, or :class:`UnusableNumber`.

    >>> from_keys("030123456", "DE"), from_keys("004930123456", "DE"), from_keys("4930123456", None)
    ('+4930123456', '+4930123456', '+4930123456')
    >>> from_keys("030123456", None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ivrkit.callbacks.numbers.UnusableNumber: '030123456' cannot be called back: it has no country code...
    """
    text = digits.strip()
    if not text.isdigit() or not text.strip("0"):
        raise UnusableNumber(INVALID, text)
    if country is not None:
        return _checked(text, country, text)
    if text.startswith("00"):
        return _checked("+" + text[2:], None, text)
    if text.startswith("0"):
        raise UnusableNumber(NEEDS_COUNTRY, text)
    return _checked("+" + text, None, text)


def spoken_digits(number: str, country: str | None) -> str:
    """The digits a caller recognises: the national form for a number of ``country``, else the international
    digits (without the plus, which cannot be spoken as a digit).

    >>> spoken_digits("+4930123456", "DE"), spoken_digits("+4930123456", "GB"), spoken_digits("+4930123456", None)
    ('030123456', '4930123456', '4930123456')
    """
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return "".join(char for char in number if char.isdigit())
    if country is not None and phonenumbers.region_code_for_number(parsed) == country:
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        return "".join(char for char in national if char.isdigit())
    return phonenumbers.format_number(parsed, _E164).lstrip("+")


def _checked(text: str, country: str | None, original: str) -> str:
    try:
        parsed = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        raise UnusableNumber(INVALID, original) from None
    number = phonenumbers.format_number(parsed, _E164)
    if not phonenumbers.is_valid_number(parsed) or len(number) - 1 > MAX_E164_DIGITS:
        raise UnusableNumber(INVALID, original)
    if phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.PREMIUM_RATE:
        raise UnusableNumber(PREMIUM_RATE, original)
    return number
