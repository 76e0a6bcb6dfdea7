"""What an attempt's end means: when to try again, and how Asterisk's answers map onto attempt results.

Pure functions, so the dispatcher, the answered leg and the operators' tools agree on one reading of an
OriginateResponse ``Reason`` or a ``DIALSTATUS``, and the retry schedule lives in one place.
"""

from __future__ import annotations

from ivrkit.callbacks.model import Callback, Result
from ivrkit.callbacks.settings import CallbackSettings

# OriginateResponse ``Reason``: the last control frame Asterisk saw while dialling (frame.h AST_CONTROL_*).
# 4 (answered) is a success, never a failure's reason: a Failure carrying it counts as failed like any unknown.
_ORIGINATE_REASONS = {
    0: Result.FAILED,  # failed before any signalling (no such channel, nothing to dial)
    1: Result.NO_ANSWER,  # hung up before answering
    3: Result.NO_ANSWER,  # rang until the Originate's Timeout
    5: Result.BUSY,
    8: Result.FAILED,  # congestion (also "number incomplete")
}

_DIAL_STATUSES = {
    "ANSWER": Result.ANSWERED,
    "BUSY": Result.BUSY,
    "NOANSWER": Result.NO_ANSWER,
    "CANCEL": Result.NO_ANSWER,  # the calling side gave up while it rang
}

_WORDS = {
    Result.ANSWERED: "answered",
    Result.BUSY: "busy",
    Result.NO_ANSWER: "no answer",
    Result.FAILED: "could not be dialled",
    Result.MACHINE: "answered by a machine",
    Result.UNCONFIRMED: "answered but not confirmed",
    Result.NO_AGENT: "no agent took it in time",
    Result.INTERRUPTED: "interrupted (no trace of the attempt in Asterisk)",
}


def next_attempt(callback: Callback, result: Result, settings: CallbackSettings, now: float) -> float | None:
    """When to try again after ``callback``'s latest attempt ended with ``result``; None: give up (failed).

    ``callback.attempts`` already counts the attempt that just ended (``start_attempt`` added it). ANSWERED
    never retries: the callback is completed, whatever this returns.
    """
    if result is Result.ANSWERED or callback.attempts >= settings.attempts:
        return None
    return now + settings.retry_delay(max(callback.attempts, 1))


def originate_result(reason: int | str | None) -> Result:
    """The result of an Originate that failed, from its OriginateResponse ``Reason`` header.

    >>> originate_result("5"), originate_result(3), originate_result(8)
    (<Result.BUSY: 'busy'>, <Result.NO_ANSWER: 'no-answer'>, <Result.FAILED: 'failed'>)
    >>> originate_result(None), originate_result("garbled")
    (<Result.FAILED: 'failed'>, <Result.FAILED: 'failed'>)
    """
    try:
        code = int(str(reason).strip())
    except ValueError:
        return Result.FAILED
    return _ORIGINATE_REASONS.get(code, Result.FAILED)


def dial_result(dialstatus: str) -> Result:
    """The result of a ``Dial()`` from its ``DIALSTATUS`` (or a ``DialEnd`` event's ``DialStatus``).

    >>> dial_result("ANSWER"), dial_result("noanswer"), dial_result("CANCEL")
    (<Result.ANSWERED: 'answered'>, <Result.NO_ANSWER: 'no-answer'>, <Result.NO_ANSWER: 'no-answer'>)
    >>> dial_result("BUSY"), dial_result("CHANUNAVAIL"), dial_result("")
    (<Result.BUSY: 'busy'>, <Result.FAILED: 'failed'>, <Result.FAILED: 'failed'>)
    """
    return _DIAL_STATUSES.get(dialstatus.strip().upper(), Result.FAILED)


def describe(result: Result, detail: str = "") -> str:
    """Words for an attempt's end, for the callback's events and the logs.

    >>> describe(Result.BUSY, "Originate reason 5")
    'busy (Originate reason 5)'
    >>> describe(Result.UNCONFIRMED)
    'answered but not confirmed'
    """
    words = _WORDS[result]
    return f"{words} ({detail})" if detail else words
