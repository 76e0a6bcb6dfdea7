"""One SQLite file in the data directory, safe to use from several threads and processes.

Why SQLite: the store must survive a crash mid-call without a database server to run. WAL mode lets readers
work while one writer commits; ``BEGIN IMMEDIATE`` takes the write lock at the start of a transaction, so
two processes never deadlock upgrading a read lock; ``busy_timeout`` makes a writer wait for the other
instead of failing. Each thread gets its own connection (sqlite3 connections must not be shared between
threads mid-transaction).

Schema changes are *migrations*: each concern registers its own numbered list (``register_schema``), and
``open_database`` applies what a file has not seen yet, recorded in the table ``schema_versions``. A file
written by a newer ivrkit (a version we do not know) is refused rather than misread.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATABASE_FILE = "ivrkit.sqlite3"
BUSY_TIMEOUT_MS = 10_000


class StoreError(Exception):
    """The store cannot be opened or used; the message says what to do."""


@dataclass(frozen=True)
class Schema:
    """The tables of one concern: ``migrations[i]`` takes the concern from version i to i + 1."""

    name: str
    migrations: tuple[str, ...]


_SCHEMAS: dict[str, Schema] = {}


def register_schema(name: str, *migrations: str) -> Schema:
    """Declare a concern's tables; called at import time by the module that owns them."""
    schema = Schema(name, migrations)
    _SCHEMAS[name] = schema
    return schema


class Database:
    """A store file. Use :meth:`transaction` for every change and :meth:`read` for queries."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def read(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def release(self) -> None:
        """Close this thread's connection, if it has one: a thread that is about to end calls it."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        conn.close()

    def close(self) -> None:
        """Close every thread's connection (call once the threads using it are done)."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the store ({exc}); check that the data directory is writable") from exc
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a commit survives a process crash
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting like ``busy_timeout`` would: SQLite answers "database is locked" at once, without
    its busy handler, when two processes switch a new file at the same moment."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def open_database(data_dir: Path) -> Database:
    """Open (creating if needed) the store in ``data_dir`` and bring every registered schema up to date."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{data_dir}: cannot create the data directory ({exc.strerror}); pass --data-dir") from exc
    database = Database(data_dir / DATABASE_FILE)
    try:
        migrate(database)
    except BaseException:
        database.close()
        raise
    return database


def migrate(database: Database) -> None:
    """Apply the migrations a file has not seen, each concern in its own transaction."""
    with database.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    for schema in list(_SCHEMAS.values()):
        with database.transaction() as conn:
            row = conn.execute("SELECT version FROM schema_versions WHERE name = ?", (schema.name,)).fetchone()
            version = row["version"] if row else 0
            if version > len(schema.migrations):
                raise StoreError(
                    f"{database.path}: the {schema.name!r} tables are at version {version}, newer than this ivrkit "
                    f"knows ({len(schema.migrations)}); upgrade ivrkit or point --data-dir elsewhere"
                )
            for sql in schema.migrations[version:]:
                for statement in _statements(sql):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_versions (name, version) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET version = excluded.version",
                (schema.name, len(schema.migrations)),
            )


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements, current = [], ""
    for piece in sql.split(";"):  # at each ';', not at line ends: two statements may share a line
        current += piece + ";"
        if sqlite3.complete_statement(current):  # False while the ';' is inside a string or a trigger body
            if current.strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    if current.strip(" \t\r\n;"):  # unterminated (an open quote): let SQLite report it
        statements.append(current.strip())
    return statements
