"""The retry schedule and the reading of Asterisk's answers (OriginateResponse Reason, DIALSTATUS)."""

from __future__ import annotations

import doctest

import pytest

from ivrkit.callbacks import policy
from ivrkit.callbacks.model import Callback, Origin, Result, State
from ivrkit.callbacks.policy import describe, dial_result, next_attempt, originate_result
from ivrkit.callbacks.settings import CallbackSettings

NOW = 1_800_000_000.0


def after(attempts: int) -> Callback:
    return Callback(
        id="a" * 32, number="+4930123456", queue="support", flow="main", origin=Origin.REQUEST, state=State.DIALING,
        joined_at=NOW - 600, requested_at=NOW - 500, updated_at=NOW, attempts=attempts,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(1, NOW + 120), (2, NOW + 600), (3, None)],  # the defaults: 3 attempts, 120 s then 600 s apart
)
def test_the_default_schedule_retries_twice_then_gives_up(attempts: int, expected: float | None) -> None:
    assert next_attempt(after(attempts), Result.BUSY, CallbackSettings(), NOW) == expected


def test_the_last_delay_repeats_for_later_attempts() -> None:
    settings = CallbackSettings(attempts=5, retry_after=(60.0, 300.0))
    assert [next_attempt(after(n), Result.NO_ANSWER, settings, NOW) for n in range(1, 6)] == [
        NOW + 60, NOW + 300, NOW + 300, NOW + 300, None
    ]  # fmt: skip


def test_without_delays_the_next_attempt_is_due_at_once() -> None:
    assert next_attempt(after(1), Result.FAILED, CallbackSettings(retry_after=()), NOW) == NOW


def test_an_answered_attempt_is_never_retried() -> None:
    assert next_attempt(after(1), Result.ANSWERED, CallbackSettings(), NOW) is None


def test_a_callback_over_its_attempts_is_not_retried() -> None:
    """Settings lowered by a reload while a callback already used more attempts: give up, do not count on."""
    assert next_attempt(after(4), Result.BUSY, CallbackSettings(attempts=2), NOW) is None


def test_a_callback_that_never_started_waits_the_first_delay() -> None:
    assert next_attempt(after(0), Result.INTERRUPTED, CallbackSettings(), NOW) == NOW + 120


@pytest.mark.parametrize("result", [result for result in Result if result is not Result.ANSWERED])
def test_every_unsuccessful_result_is_retried(result: Result) -> None:
    assert next_attempt(after(1), result, CallbackSettings(), NOW) == NOW + 120


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (0, Result.FAILED),
        (1, Result.NO_ANSWER),
        (3, Result.NO_ANSWER),
        (5, Result.BUSY),
        (8, Result.FAILED),
        ("5", Result.BUSY),
        (" 3 ", Result.NO_ANSWER),
        ("1", Result.NO_ANSWER),
        (4, Result.FAILED),  # answered is no failure reason: a Failure that carries it still failed
        (2, Result.FAILED),
        ("", Result.FAILED),
        (None, Result.FAILED),
        ("busy", Result.FAILED),
    ],
)
def test_originate_reasons(reason: int | str | None, expected: Result) -> None:
    assert originate_result(reason) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ANSWER", Result.ANSWERED),
        ("BUSY", Result.BUSY),
        ("NOANSWER", Result.NO_ANSWER),
        ("CANCEL", Result.NO_ANSWER),
        ("CONGESTION", Result.FAILED),
        ("CHANUNAVAIL", Result.FAILED),
        ("DONTCALL", Result.FAILED),
        ("", Result.FAILED),
        (" answer\r\n", Result.ANSWERED),
    ],
)
def test_dial_statuses(status: str, expected: Result) -> None:
    assert dial_result(status) is expected


def test_every_result_has_words_and_the_detail_follows_in_brackets() -> None:
    words = {result: describe(result) for result in Result}
    assert all(words.values()) and len(set(words.values())) == len(Result)
    assert describe(Result.NO_ANSWER, "Originate reason 3") == "no answer (Originate reason 3)"
    assert describe(Result.MACHINE) == "answered by a machine"


def test_doctests() -> None:
    failures, tried = doctest.testmod(policy)
    assert (failures, tried > 0) == (0, True)
