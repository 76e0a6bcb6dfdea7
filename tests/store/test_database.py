"""The SQLite store: migrations per concern, refusal of newer files, transactions, several writers at once."""

from __future__ import annotations

import sqlite3
import textwrap
import threading
from pathlib import Path

import pytest

from ivrkit.store import database
from ivrkit.store.database import DATABASE_FILE, StoreError, open_database, register_schema
from tests.store.processes import run_together


@pytest.fixture
def schemas(monkeypatch: pytest.MonkeyPatch) -> dict[str, database.Schema]:
    """A private schema registry, so the test's tables never reach other tests' files."""
    registry: dict[str, database.Schema] = {}
    monkeypatch.setattr(database, "_SCHEMAS", registry)
    return registry


NOTES_V1 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL); INSERT INTO notes (text) VALUES ('v1');"
NOTES_V2 = "ALTER TABLE notes ADD COLUMN author TEXT; INSERT INTO notes (text, author) VALUES ('v2', 'me');"


def versions(path: Path) -> dict[str, int]:
    with sqlite3.connect(path / DATABASE_FILE) as conn:
        return dict(conn.execute("SELECT name, version FROM schema_versions").fetchall())


def test_migrations_run_once_and_only_the_new_ones_later(tmp_path: Path, schemas: object) -> None:
    register_schema("notes", NOTES_V1)
    for _ in range(2):  # the second open must not run CREATE TABLE or the INSERT again
        open_database(tmp_path).close()
    register_schema("notes", NOTES_V1, NOTES_V2)
    with open_database(tmp_path) as db:
        rows = [tuple(row) for row in db.read("SELECT text, author FROM notes ORDER BY id")]
    assert rows == [("v1", None), ("v2", "me")]
    assert versions(tmp_path) == {"notes": 2}


def test_each_concern_has_its_own_version(tmp_path: Path, schemas: object) -> None:
    register_schema("notes", NOTES_V1)
    register_schema("tags", "CREATE TABLE tags (name TEXT PRIMARY KEY);")
    open_database(tmp_path).close()
    assert versions(tmp_path) == {"notes": 1, "tags": 1}


def test_a_file_from_a_newer_ivrkit_is_refused(tmp_path: Path, schemas: object) -> None:
    register_schema("notes", NOTES_V1)
    open_database(tmp_path).close()
    with sqlite3.connect(tmp_path / DATABASE_FILE) as conn:
        conn.execute("UPDATE schema_versions SET version = 3 WHERE name = 'notes'")
    conn.close()
    with pytest.raises(StoreError) as error:
        open_database(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / DATABASE_FILE}: the 'notes' tables are at version 3, newer than this ivrkit knows (1); "
        "upgrade ivrkit or point --data-dir elsewhere"
    )


def test_a_failing_migration_leaves_the_concern_at_its_old_version(tmp_path: Path, schemas: object) -> None:
    register_schema("notes", NOTES_V1)
    open_database(tmp_path).close()
    register_schema("notes", NOTES_V1, "ALTER TABLE notes ADD COLUMN author TEXT; INSERT INTO nowhere VALUES (1);")
    with pytest.raises(sqlite3.OperationalError, match="no such table: nowhere"):
        open_database(tmp_path)
    assert versions(tmp_path) == {"notes": 1}
    with database.Database(tmp_path / DATABASE_FILE) as db:  # the half-done ALTER is gone
        assert [row["name"] for row in db.read("PRAGMA table_info(notes)")] == ["id", "text"]


def test_a_transaction_that_raises_is_rolled_back(tmp_path: Path, schemas: object) -> None:
    register_schema("notes", NOTES_V1)
    with open_database(tmp_path) as db:
        with pytest.raises(RuntimeError), db.transaction() as conn:
            conn.execute("INSERT INTO notes (text) VALUES ('lost')")
            raise RuntimeError("the caller hung up")
        with db.transaction() as conn:
            conn.execute("INSERT INTO notes (text) VALUES ('kept')")
        assert [row["text"] for row in db.read("SELECT text FROM notes ORDER BY id")] == ["v1", "kept"]


def test_a_data_directory_that_cannot_be_created_says_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=r"cannot create the data directory .*; pass --data-dir"):
        open_database(blocker / "data")


def test_threads_share_a_database_each_with_its_own_connection(tmp_path: Path, schemas: object) -> None:
    register_schema("notes", NOTES_V1)
    with open_database(tmp_path) as db:

        def write(name: str) -> None:
            for index in range(50):
                with db.transaction() as conn:
                    conn.execute("INSERT INTO notes (text) VALUES (?)", (f"{name}-{index}",))

        threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert db.read("SELECT COUNT(*) AS n FROM notes")[0]["n"] == 1 + 4 * 50


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ivrkit.store import SqliteOutbox, open_database

    data, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    with open_database(data) as db:
        outbox = SqliteOutbox(db)
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        for index in range(count):
            outbox.enqueue(f"{name}-{index}", "+4915112345678", "own")
            outbox.enqueue(f"shared-{index}", "+4915112345678", name)  # both processes: one row per key
    """
)


def test_two_processes_writing_one_file_lose_no_rows(tmp_path: Path) -> None:
    count = 150
    run_together(WRITER, [str(tmp_path), "a", str(count)], [str(tmp_path), "b", str(count)])
    with open_database(tmp_path) as db:
        keys = [row["key"] for row in db.read("SELECT key FROM outbox")]
    assert len(keys) == len(set(keys)) == 3 * count
    assert {key.split("-")[0] for key in keys} == {"a", "b", "shared"}
