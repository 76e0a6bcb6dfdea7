"""The outbox on a real SQLite file: once per key, claims under a lease, settling only by the claim holder."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.store import SqliteOutbox, open_database
from ivrkit.store.outbox import FAILED, PENDING, SENDING, SENT
from tests.store.processes import run_together

T0 = 1_800_000_000.0
LEASE = 60.0


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SqliteOutbox]:
    with open_database(tmp_path) as db:
        yield SqliteOutbox(db)


def test_the_same_key_queues_one_message(outbox: SqliteOutbox) -> None:
    first = outbox.enqueue("call-1/support/send_link", "+4915112345678", "Hello", now=T0)
    again = outbox.enqueue("call-1/support/send_link", "+4915199999999", "Other text", now=T0 + 5)
    assert first.created and not again.created
    assert again.entry == first.entry
    assert (first.entry.recipient, first.entry.body, first.entry.state) == ("+4915112345678", "Hello", PENDING)
    assert outbox.counts() == {PENDING: 1, SENDING: 0, SENT: 0, FAILED: 0}


def test_a_claim_leases_due_messages_to_one_holder(outbox: SqliteOutbox) -> None:
    outbox.enqueue("a", "+491", "first", now=T0)
    outbox.enqueue("b", "+492", "second", now=T0 + 1)
    assert outbox.claim(LEASE, now=T0 - 1) == []  # nothing is due yet
    [claimed] = outbox.claim(LEASE, now=T0 + 2)
    assert (claimed.key, claimed.state, claimed.attempts, claimed.due_at) == ("a", SENDING, 1, T0 + 2 + LEASE)
    assert [entry.key for entry in outbox.claim(LEASE, limit=5, now=T0 + 2)] == ["b"]  # a is leased
    assert outbox.claim(LEASE, limit=5, now=T0 + 3) == []
    assert outbox.next_due() == T0 + 2 + LEASE


def test_a_message_whose_holder_died_is_claimed_again_after_the_lease(outbox: SqliteOutbox) -> None:
    outbox.enqueue("a", "+491", "text", now=T0)
    [dead] = outbox.claim(LEASE, now=T0)  # ... and the process is killed here
    assert outbox.claim(LEASE, now=T0 + LEASE - 1) == []
    [again] = outbox.claim(LEASE, now=T0 + LEASE)
    assert (again.id, again.attempts) == (dead.id, 2)
    assert not outbox.mark_sent(dead, "late", now=T0 + LEASE + 1)  # the old holder lost its claim
    assert outbox.mark_sent(again, "provider-42", now=T0 + LEASE + 1)
    entry = outbox.get("a")
    assert entry is not None
    assert (entry.state, entry.provider_id, entry.claim) == (SENT, "provider-42", None)
    assert outbox.claim(LEASE, now=T0 + 10 * LEASE) == []
    assert outbox.next_due() is None


def test_retry_puts_the_message_back_for_later_with_the_error(outbox: SqliteOutbox) -> None:
    outbox.enqueue("a", "+491", "text", now=T0)
    [claimed] = outbox.claim(LEASE, now=T0)
    assert outbox.retry_at(claimed, T0 + 30, "HTTP 503: try later", now=T0 + 1)
    entry = outbox.get("a")
    assert entry is not None
    assert (entry.state, entry.due_at, entry.attempts, entry.last_error) == (PENDING, T0 + 30, 1, "HTTP 503: try later")
    assert outbox.claim(LEASE, now=T0 + 29) == []
    [second] = outbox.claim(LEASE, now=T0 + 30)
    assert second.attempts == 2
    assert outbox.mark_failed(second, "HTTP 400: " + "x" * 1000, now=T0 + 31)
    failed = outbox.get("a")
    assert failed is not None and failed.state == FAILED
    assert failed.last_error is not None and len(failed.last_error) == 500 and failed.last_error.endswith("…")
    assert not outbox.retry_at(second, T0 + 60, "again")  # settled: nothing changes any more


def test_operators_list_messages_newest_first(outbox: SqliteOutbox) -> None:
    for key in ("a", "b", "c"):
        outbox.enqueue(key, "+491", key, now=T0)
    [claimed] = outbox.claim(LEASE, now=T0)
    outbox.mark_sent(claimed, "id-a", now=T0)
    assert [entry.key for entry in outbox.entries()] == ["c", "b", "a"]
    assert [entry.key for entry in outbox.entries(PENDING, limit=1)] == ["c"]
    assert [entry.key for entry in outbox.entries(SENT)] == ["a"]
    with pytest.raises(ValueError, match="unknown outbox state 'done': use one of pending, sending, sent, failed"):
        outbox.entries("done")


CLAIMER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ivrkit.store import SqliteOutbox, open_database

    with open_database(Path(sys.argv[1])) as db:
        outbox = SqliteOutbox(db)
        print("ready", flush=True)
        sys.stdin.readline()
        while batch := outbox.claim(3600, limit=3):
            for entry in batch:
                print(entry.key, flush=True)
    """
)


def test_two_processes_never_claim_the_same_message(tmp_path: Path) -> None:
    with open_database(tmp_path) as db:
        outbox = SqliteOutbox(db)
        for index in range(300):
            outbox.enqueue(f"m{index}", "+491", "text")
    outputs = run_together(CLAIMER, [str(tmp_path)], [str(tmp_path)])
    claimed = [key for out in outputs for key in out.split()]
    assert sorted(claimed) == sorted(f"m{index}" for index in range(300))
