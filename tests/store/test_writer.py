"""BackgroundWriter: writes queued by calls, committed by a thread of their own, on a real SQLite file."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.store import Database, StoreError, open_database
from ivrkit.store.writer import BackgroundWriter


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path) as database:
        with database.transaction() as conn:
            conn.execute("CREATE TABLE notes (text TEXT NOT NULL)")
        yield database


def note(text: str | None):  # type: ignore[no-untyped-def]
    return lambda conn: conn.execute("INSERT INTO notes (text) VALUES (?)", (text,))


def notes(database: Database) -> list[str]:
    return [row["text"] for row in database.read("SELECT text FROM notes ORDER BY rowid")]


def test_writes_are_committed_in_order_by_the_writer_thread(database: Database) -> None:
    writer = BackgroundWriter(database)
    threads: set[str] = set()
    writer.submit(lambda conn: threads.add(threading.current_thread().name), "noted")
    for index in range(50):
        writer.submit(note(f"n{index}"), "not noted")
    assert writer.flush(10)
    assert notes(database) == [f"n{index}" for index in range(50)]
    assert threads == {"store-writer"}
    assert writer.close(10)


def test_a_failing_write_loses_only_itself(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    writer = BackgroundWriter(database)
    gate = threading.Event()
    writer.submit(lambda conn: gate.wait(10), "gate")  # holds the writer so the next three form one batch
    writer.submit(note("before"), "before not noted")
    writer.submit(note(None), "the bad note was not noted")  # NOT NULL fails
    writer.submit(note("after"), "after not noted")
    gate.set()
    assert writer.close(10)
    assert notes(database) == ["before", "after"]
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.levelno >= logging.WARNING] == [
        "the bad note was not noted"
    ]


def test_close_commits_what_is_queued_and_refuses_more(database: Database) -> None:
    writer = BackgroundWriter(database)
    for index in range(3):
        writer.submit(note(str(index)), "not noted")
    assert writer.close(10)
    assert notes(database) == ["0", "1", "2"]
    with pytest.raises(StoreError, match="closed"):
        writer.submit(note("late"), "late")


def test_the_writer_closes_its_own_connection(database: Database) -> None:
    writer = BackgroundWriter(database)
    seen: list[sqlite3.Connection] = []
    writer.submit(seen.append, "seen")
    assert writer.close(10)
    with pytest.raises(sqlite3.ProgrammingError):
        seen[0].execute("SELECT 1")


def test_a_writer_that_never_wrote_closes_at_once(database: Database) -> None:
    assert BackgroundWriter(database).close(0)
