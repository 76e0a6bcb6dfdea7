"""The estimate log on a real SQLite file: joins, the waits that followed, and what the estimator learns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.engine.world import QueueExit, QueueJoin
from ivrkit.store import Database, open_database
from ivrkit.store.estimates import LoggedWait, Recent, SqliteEstimateLog

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def join(uniqueid: str, queue: str = "support", estimate: float | None = 240.0, when: float = 0) -> QueueJoin:
    return QueueJoin(uniqueid, "support", queue, 4, estimate, "number" if estimate is not None else "safe",
                     "position", at(when))


def leave(uniqueid: str, wait: float, result: str = "answered", talk: float | None = 180.0, queue: str = "support",
          when: float = 300) -> QueueExit:
    return QueueExit(uniqueid, "support", queue, wait, result, talk, at(when))


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path) as database:
        yield database


def test_a_join_and_the_wait_that_followed(database: Database) -> None:
    log = SqliteEstimateLog(database)
    joined = log.joined(join("call-1"))
    assert (joined.estimate, joined.said, joined.result, joined.wait) == (240.0, "number", None, None)
    done = log.left(leave("call-1", 300.0))
    assert done == LoggedWait(joined.id, "call-1", "support", "support", 4, 240.0, "number", "position",
                              T0.timestamp(), 300.0, 180.0, "answered", at(300).timestamp())
    assert done.error == 60.0
    assert log.entries() == [done]


def test_the_safe_phrase_is_logged_without_a_number(database: Database) -> None:
    log = SqliteEstimateLog(database)
    log.joined(join("call-1", estimate=None))
    done = log.left(leave("call-1", 90.0, "abandoned", None))
    assert done is not None and (done.estimate, done.said, done.error) == (None, "safe", None)


def test_a_wait_without_a_logged_join_is_not_recorded(database: Database) -> None:
    log = SqliteEstimateLog(database)
    log.joined(join("call-1", queue="billing"))
    assert log.left(leave("call-1", 60.0)) is None  # another queue
    assert log.left(leave("call-2", 60.0)) is None  # another call
    assert [row.result for row in log.entries()] == [None]


def test_a_call_that_queues_twice_completes_each_join_in_turn(database: Database) -> None:
    log = SqliteEstimateLog(database)
    first = log.joined(join("call-1", estimate=600.0))
    log.left(leave("call-1", 600.0, "timeout", None, when=600))
    second = log.joined(join("call-1", estimate=120.0, when=620))
    log.left(leave("call-1", 100.0, when=720))
    rows = {row.id: row for row in log.entries()}
    assert (rows[first.id].result, rows[first.id].wait) == ("timeout", 600.0)
    assert (rows[second.id].result, rows[second.id].wait, rows[second.id].error) == ("answered", 100.0, -20.0)
    assert log.left(leave("call-1", 5.0)) is None  # nothing open any more


def test_recent_answered_calls_of_a_queue(database: Database) -> None:
    log = SqliteEstimateLog(database)
    cases = [  # (uniqueid, queue, result, talk, left at)
        ("a", "support", "answered", 100.0, 1000), ("b", "support", "answered", 200.0, 2000),
        ("c", "support", "answered", None, 2500),  # answered, Asterisk did not say for how long
        ("d", "support", "abandoned", None, 2600), ("e", "support", "timeout", None, 2700),
        ("f", "billing", "answered", 900.0, 2800), ("g", "support", "answered", 600.0, 10),  # too old
    ]
    for uniqueid, queue, result, talk, when in cases:
        log.joined(join(uniqueid, queue))
        log.left(leave(uniqueid, 60.0, result, talk, queue, when))
    assert log.recent("support", at(500).timestamp()) == Recent(3, 150.0, 60.0)
    assert log.recent("billing", at(500).timestamp()) == Recent(1, 900.0, 60.0)
    assert log.recent("vip", at(0).timestamp()) == Recent(0, None, None)


def test_the_log_survives_reopening_the_file(tmp_path: Path) -> None:
    with open_database(tmp_path) as database:
        SqliteEstimateLog(database).joined(join("call-1"))
    with open_database(tmp_path) as database:
        log = SqliteEstimateLog(database)
        assert log.left(leave("call-1", 30.0)) is not None
        assert [row.uniqueid for row in log.entries(queue="support")] == ["call-1"]
        assert log.entries(queue="billing") == []
