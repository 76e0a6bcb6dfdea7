"""Digit collection: lengths, terminator, timeouts, validation, confirmation."""

from __future__ import annotations

from tests.calls import Call, of_kind

COLLECT = """
flow: c
start: ask
steps:
  ask:
    collect:
      into: pin
      prompt: enter-pin
      min_digits: 4
      max_digits: 6
      first_digit_timeout: 4s
      inter_digit_timeout: 2s
      invalid: {reprompt: bad-pin}
      failed: gave_up
    next: ok
  ok: {hangup: {outcome: accepted}}
  gave_up: {hangup: {outcome: failed}}
"""


def test_terminator_ends_the_entry(call: Call) -> None:
    result = call(COLLECT, "1234#")
    assert result.outcome == "accepted"
    assert result.vars["pin"] == "1234"


def test_max_digits_ends_the_entry_without_terminator(call: Call) -> None:
    result = call(COLLECT, "123456")
    assert result.vars["pin"] == "123456"
    assert of_kind(result, "silence") == []


def test_inter_digit_timeout_ends_the_entry(call: Call) -> None:
    result = call(COLLECT, "12345")
    silence = of_kind(result, "silence")
    assert silence == [{"key": None, "timeout": 2.0}]
    assert result.vars["pin"] == "12345"


def test_first_digit_timeout_is_no_input(call: Call) -> None:
    result = call(COLLECT, "s 1234#")
    assert of_kind(result, "silence")[0]["timeout"] == 4.0
    assert len(of_kind(result, "no_input")) == 1
    assert result.vars["pin"] == "1234"


def test_too_short_entry_is_invalid_and_reprompted(call: Call) -> None:
    result = call(COLLECT, "12# 4321#")
    assert result.heard == ["enter-pin", "bad-pin"]
    assert of_kind(result, "invalid")[0]["digits"] == "12"
    assert result.vars["pin"] == "4321"


def test_pattern_and_valid_if(call: Call) -> None:
    flows = COLLECT.replace(
        "min_digits: 4\n", 'min_digits: 4\n      pattern: "^[1-5]+$"\n      valid_if: "digits != \'1111\'"\n'
    )
    result = call(flows, "9999# 1111# 1234#")
    assert [d["digits"] for d in of_kind(result, "invalid")] == ["9999", "1111"]
    assert result.outcome == "accepted"  # the third try, allowed by the default of two retries
    assert result.vars["pin"] == "1234"


def test_retries_used_up_go_to_failed(call: Call) -> None:
    result = call(COLLECT, "1# 2# 3#")
    assert result.outcome == "failed"
    assert len(of_kind(result, "invalid")) == 3


def test_confirmation_accept_and_reject(call: Call) -> None:
    flows = COLLECT.replace(
        "      failed: gave_up\n",
        "      failed: gave_up\n      confirm: {prompt: [you-entered, {digits: '{{ vars.pin }}'}]}\n",
    )
    accepted = call(flows, "1234# 1")
    assert accepted.heard == ["enter-pin", "you-entered", "digits:1234"]
    assert accepted.vars["pin"] == "1234"
    rejected = call(flows, "1234# 2 5678# 1")
    assert rejected.vars["pin"] == "5678"
    assert rejected.heard.count("you-entered") == 2


def test_no_terminator_means_hash_is_a_digit(call: Call) -> None:
    flows = COLLECT.replace("max_digits: 6\n", "max_digits: 6\n      terminator: none\n")
    result = call(flows, "12#4")
    assert result.vars["pin"] == "12#4"
