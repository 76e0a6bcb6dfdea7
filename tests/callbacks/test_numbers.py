"""Callback numbers: caller IDs and typed keys to E.164, with the queue's country, and what is refused and why."""

from __future__ import annotations

import doctest

import pytest

import ivrkit.callbacks.numbers
from ivrkit.callbacks.numbers import (
    ANONYMOUS,
    INVALID,
    NEEDS_COUNTRY,
    PREMIUM_RATE,
    UnusableNumber,
    from_caller_id,
    from_keys,
    is_region,
    spoken_digits,
)


def test_doctests() -> None:
    failures, tried = doctest.testmod(ivrkit.callbacks.numbers, optionflags=doctest.ELLIPSIS)
    assert (failures, tried > 0) == (0, True)


@pytest.mark.parametrize(
    ("caller_id", "country", "number"),
    [
        ("+4930123456", None, "+4930123456"),  # already E.164: no country needed
        ("+4930123456", "GB", "+4930123456"),  # a country never changes a number that has its own
        ("030123456", "DE", "+4930123456"),  # national, as German trunks often deliver it
        ("004930123456", "DE", "+4930123456"),  # with the international prefix
        ("004930123456", None, "+4930123456"),
        ("4930123456", "DE", "+4930123456"),  # the country code without a plus
        (" +4915112345678 ", None, "+4915112345678"),
        ("02079460123", "GB", "+442079460123"),
    ],
)
def test_usable_caller_ids_become_e164(caller_id: str, country: str | None, number: str) -> None:
    assert from_caller_id(caller_id, country) == number


@pytest.mark.parametrize(
    ("caller_id", "country", "reason"),
    [
        ("anonymous", "DE", ANONYMOUS),
        ("Restricted", "DE", ANONYMOUS),
        ("", "DE", ANONYMOUS),
        (None, "DE", ANONYMOUS),
        ("0", "DE", ANONYMOUS),
        ("+", None, ANONYMOUS),
        ("030 123456", "DE", ANONYMOUS),  # not a plain number: taken for a network placeholder
        ("030123456", None, NEEDS_COUNTRY),  # national, and nothing says which country
        ("+4912", None, INVALID),  # too short for Germany
        ("+49301234567890123", None, INVALID),  # too long
        ("+499001234567", None, PREMIUM_RATE),
        ("09001234567", "DE", PREMIUM_RATE),
    ],
)
def test_unusable_caller_ids_say_why(caller_id: str | None, country: str | None, reason: str) -> None:
    with pytest.raises(UnusableNumber) as raised:
        from_caller_id(caller_id, country)
    assert raised.value.reason == reason


def test_the_error_message_names_the_number_and_what_is_wrong() -> None:
    with pytest.raises(UnusableNumber) as raised:
        from_caller_id("030123456", None)
    assert str(raised.value) == ("'030123456' cannot be called back: it has no country code and the queue's "
                                 "callback settings name no `country`")
    with pytest.raises(UnusableNumber) as raised:
        from_keys("09001234567", "DE")
    assert str(raised.value) == "'09001234567' cannot be called back: premium-rate numbers are never called back"


@pytest.mark.parametrize(
    ("digits", "country", "number"),
    [
        ("030123456", "DE", "+4930123456"),
        ("004930123456", "DE", "+4930123456"),
        ("00442079460123", "DE", "+442079460123"),  # abroad with 00, whatever the country
        ("4930123456", None, "+4930123456"),  # without a country: the country code, with or without 00
        ("004930123456", None, "+4930123456"),
        ("015112345678", "DE", "+4915112345678"),
    ],
)
def test_typed_numbers_become_e164(digits: str, country: str | None, number: str) -> None:
    assert from_keys(digits, country) == number


@pytest.mark.parametrize(
    ("digits", "country", "reason"),
    [
        ("030123456", None, NEEDS_COUNTRY),  # a trunk prefix: never guessed as the country code 30 (Greece)
        ("12", "DE", INVALID),
        ("000", "DE", INVALID),
        ("", "DE", INVALID),
        ("0301234*6", "DE", INVALID),
        ("0900123", "DE", INVALID),
        ("09001234567", "DE", PREMIUM_RATE),
    ],
)
def test_unusable_typed_numbers_say_why(digits: str, country: str | None, reason: str) -> None:
    with pytest.raises(UnusableNumber) as raised:
        from_keys(digits, country)
    assert raised.value.reason == reason


def test_numbers_are_read_back_as_the_caller_knows_them() -> None:
    assert spoken_digits("+4930123456", "DE") == "030123456"  # at home: the national form
    assert spoken_digits("+442079460123", "DE") == "442079460123"  # abroad: the international digits
    assert spoken_digits("+442079460123", "GB") == "02079460123"
    assert spoken_digits("+4930123456", None) == "4930123456"
    assert spoken_digits("not a number", "DE") == ""


def test_regions_are_the_iso_codes_phonenumbers_knows() -> None:
    assert is_region("DE") and is_region("US") and is_region("GB")
    assert not is_region("UK") and not is_region("de") and not is_region("ZZ")
