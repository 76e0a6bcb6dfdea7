"""The worker's decisions on a fixed clock: back-off with jitter and a cap, Retry-After, unexpected errors,
and a claim lost to another process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.sms.gateway import Gateway, PermanentError, TemporaryError
from ivrkit.sms.message import Message
from ivrkit.sms.worker import FAILED, LOST, RETRY, SENT, OutboxWorker, RetryPolicy
from ivrkit.store import OutboxEntry, SqliteOutbox, open_database

T0 = 1_800_000_000.0


class Scripted(Gateway):
    """A provider in a few lines: raises or answers what the test says, and keeps what it was given."""

    kind = "scripted"

    def __init__(self, *results: Exception | str):
        self.results = list(results)
        self.sent: list[Message] = []

    def send(self, message: Message) -> str:
        self.sent.append(message)
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SqliteOutbox]:
    with open_database(tmp_path) as db:
        yield SqliteOutbox(db)


def test_back_off_doubles_up_to_the_cap_and_jitter_only_shortens() -> None:
    policy = RetryPolicy(first_delay=10, max_delay=100, jitter=0.5)
    assert [policy.delay(n, 0.0) for n in range(1, 7)] == [10, 20, 40, 80, 100, 100]
    assert policy.delay(3, 0.5) == 30  # 40 less a quarter
    assert policy.delay(1000, 0.0) == 100  # no overflow however many attempts


def worker(outbox: SqliteOutbox, gateway: Gateway, policy: RetryPolicy | None = None,
           chance: float = 0.0) -> OutboxWorker:
    return OutboxWorker(outbox, gateway, policy, clock=lambda: T0, chance=lambda: chance)


def claim(outbox: SqliteOutbox, key: str = "k") -> OutboxEntry:
    outbox.enqueue(key, "+4915112345678", "hello", now=T0)
    [entry] = outbox.claim(60, now=T0)
    return entry


def test_a_temporary_error_is_retried_after_the_back_off(outbox: SqliteOutbox) -> None:
    gateway = Scripted(TemporaryError("HTTP 503"), "p-1")
    w = worker(outbox, gateway, RetryPolicy(first_delay=30, jitter=0.5), chance=0.5)
    first = w.deliver(claim(outbox))
    assert (first.outcome, first.due_at, first.error) == (RETRY, T0 + 22.5, "HTTP 503")
    [again] = outbox.claim(60, now=T0 + 22.5)
    second = w.deliver(again)
    assert (second.outcome, second.provider_id) == (SENT, "p-1")
    assert [(m.key, m.attempt) for m in gateway.sent] == [("k", 1), ("k", 2)]


def test_retry_after_is_honoured_up_to_the_cap(outbox: SqliteOutbox) -> None:
    w = worker(outbox, Scripted(TemporaryError("429", retry_after=90)), RetryPolicy(first_delay=1, max_delay=3600))
    assert w.deliver(claim(outbox)).due_at == T0 + 90
    late = Scripted(TemporaryError("429", retry_after=99999))
    capped = worker(outbox, late, RetryPolicy(first_delay=1, max_delay=600))
    assert capped.deliver(claim(outbox, "k2")).due_at == T0 + 600


def test_a_provider_bug_is_logged_and_retried(outbox: SqliteOutbox, caplog: pytest.LogCaptureFixture) -> None:
    w = worker(outbox, Scripted(KeyError("oops")))
    with caplog.at_level(logging.WARNING, logger="ivrkit.sms"):
        delivery = w.deliver(claim(outbox))
    assert (delivery.outcome, delivery.error) == (RETRY, "'oops'")
    assert "gateway scripted raised an unexpected error; treating it as temporary" in caplog.text


def test_a_permanent_error_fails_without_retry(outbox: SqliteOutbox) -> None:
    delivery = worker(outbox, Scripted(PermanentError("HTTP 401"))).deliver(claim(outbox))
    assert (delivery.outcome, delivery.error) == (FAILED, "HTTP 401")


def test_a_claim_lost_to_another_process_is_not_overwritten(outbox: SqliteOutbox,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    entry = claim(outbox)
    [taken] = outbox.claim(60, now=T0 + 61)  # our lease ran out: another process has it
    with caplog.at_level(logging.WARNING, logger="ivrkit.sms"):
        delivery = worker(outbox, Scripted("p-late")).deliver(entry)
    assert delivery.outcome == LOST
    assert "make the retry lease longer than the gateway timeout" in caplog.text
    assert outbox.mark_sent(taken, "p-new")
