"""Maintenance windows as stored, with their audit trail: each change is one transaction with its audit row.

Why in the store: the operator's command, the admin API, the server's calls and (next) the circuit breaker and
the AstDB mirror are different threads and processes on one file; a window must survive a restart, and "who
did what, when, why, until when, from where" must be answerable afterwards. Every change is a single
``BEGIN IMMEDIATE`` transaction that reads the state it changes and writes its ``maintenance_audit`` row, so
two operators switching at once never leave two running windows of one mode for a scope, and an expiry is
recorded once however many processes notice it.

Times are stored as Unix seconds and returned as aware UTC datetimes. A window is *running* at ``now`` when it
has started, has not reached its ``ends_at`` and was not switched off; *scheduled* when it starts later.

Audit actions: ``on`` (starts now, or a scheduled start reached: ``start_due``), ``scheduled`` (created with a
later start), ``off`` (switched off, replaced, or a scheduled window cancelled), ``expired`` (its end reached:
``expire``), ``tripped`` / ``cleared`` (switched on by the circuit breaker / a breaker's window switched off).

Windows declared in a flow file (``maintenance: windows:``) are stored too, from the ``schedule`` and by the
flow file, under an id made from what the file says (:func:`~ivrkit.maintenance.model.declared_id`):
:meth:`SqliteMaintenance.sync_declared` makes the stored ones equal to the file's each time a server loads it.
The file is their only switch: operators' switches leave them alone and they replace no operator's window.

:class:`MaintenanceStore` is the interface; :class:`SqliteMaintenance` the SQLite implementation.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from ivrkit.maintenance.model import (
    GLOBAL,
    PRECEDENCE,
    AuditEntry,
    Maintenance,
    Mode,
    Source,
    Window,
    declared_id,
    in_force,
)
from ivrkit.store.database import Database, StoreError, register_schema

SYSTEM = "system"  # who expiries and scheduled starts are recorded as done by
REMOVED = "removed from the flow file"  # why a declared window was cancelled

register_schema(
    "maintenance",
    """
    CREATE TABLE maintenance_windows (
        id TEXT PRIMARY KEY,
        scope TEXT NOT NULL CHECK (scope <> ''),
        mode TEXT NOT NULL CHECK (mode IN ('planned', 'emergency', 'closed')),
        starts_at REAL NOT NULL,
        ends_at REAL CHECK (ends_at IS NULL OR ends_at > starts_at),
        reason TEXT NOT NULL DEFAULT '',
        by TEXT NOT NULL CHECK (by <> ''),
        source TEXT NOT NULL CHECK (source IN ('cli', 'api', 'schedule', 'breaker')),
        created_at REAL NOT NULL,
        ended_at REAL,
        replaced_by TEXT,
        start_recorded INTEGER NOT NULL DEFAULT 0,
        end_recorded INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX maintenance_windows_live ON maintenance_windows (scope, starts_at) WHERE ended_at IS NULL;
    CREATE TABLE maintenance_audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('on', 'off', 'expired', 'scheduled', 'tripped', 'cleared')),
        window_id TEXT REFERENCES maintenance_windows (id),
        scope TEXT NOT NULL,
        mode TEXT CHECK (mode IS NULL OR mode IN ('planned', 'emergency', 'closed')),
        by TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('cli', 'api', 'schedule', 'breaker')),
        reason TEXT NOT NULL DEFAULT '',
        until REAL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX maintenance_audit_scope ON maintenance_audit (scope, at);
    CREATE INDEX maintenance_audit_at ON maintenance_audit (at);
    """,
)

_LIVE = "ended_at IS NULL AND (ends_at IS NULL OR ends_at > :now)"  # not switched off, not past its end
_RUNNING = f"{_LIVE} AND starts_at <= :now"
_SWITCHED = "source <> 'schedule'"  # what operators' switches act on: not the windows declared in flow files


class WindowNotFound(StoreError):
    """No window has this id, or it is no longer running or scheduled."""

    def __init__(self, window_id: str):
        super().__init__(
            f"no running or scheduled maintenance window has the id {window_id!r}; "
            "`ivrkit maintenance status` shows them with their ids"
        )
        self.window_id = window_id


class WindowDeclared(StoreError):
    """The window is declared in a flow file: it ends when it is taken out of the file, not by a switch."""

    def __init__(self, window: Window):
        super().__init__(
            f"maintenance window {window.id} is declared in {window.by}: take it out of that file (or change its "
            "`until`) to end it; a running server stores the change when it reloads the file"
        )
        self.window = window


@dataclass(frozen=True)
class DeclaredChanges:
    """What :meth:`SqliteMaintenance.sync_declared` wrote: windows stored (new, or written back into the file
    after their removal) and windows cancelled (taken out of the file), each with its audit row."""

    added: tuple[Window, ...] = ()
    removed: tuple[Window, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


class MaintenanceStore(Protocol):
    """What operators (CLI, admin API), the live world and the breaker need from the maintenance store."""

    def now(self) -> dt.datetime:
        """The store's clock (aware)."""
        ...

    def switch_on(
        self,
        scope: str,
        mode: Mode,
        *,
        by: str,
        source: Source,
        reason: str = "",
        starts_at: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> Window:
        """Open a window (now, or scheduled at ``starts_at``); it replaces the scope's running one of its mode."""
        ...

    def replaced(self, window_id: str) -> list[Window]:
        """The windows that ``window_id`` replaced when it was switched on."""
        ...

    def switch_off(
        self, scope: str, *, by: str, source: Source, reason: str = "", mode: Mode | None = None
    ) -> list[Window]:
        """End the scope's running windows (of ``mode`` only, if given); [] when none was running."""
        ...

    def cancel(self, window_id: str, *, by: str, source: Source, reason: str = "") -> Window:
        """End one running or scheduled window by its id; WindowNotFound otherwise, WindowDeclared for a window
        declared in a flow file."""
        ...

    def sync_declared(self, flow: str, windows: Iterable[Window], *, by: str) -> DeclaredChanges:
        """Make the flow's stored declared windows those its flow file ``by`` declares now."""
        ...

    def windows(self, now: dt.datetime | None = None, include_future: bool = True) -> list[Window]: ...

    def status(self, now: dt.datetime | None = None) -> list[Window]: ...

    def in_force(self, flow: str, now: dt.datetime | None = None) -> Maintenance | None: ...

    def start_due(self, now: dt.datetime | None = None) -> list[Window]: ...

    def expire(self, now: dt.datetime | None = None) -> list[Window]: ...

    def history(self, scope: str | None = None, limit: int = 100) -> list[AuditEntry]: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SqliteMaintenance:
    """:class:`MaintenanceStore` on the SQLite store; safe from several threads and processes on one file.

    ``clock`` gives the current aware time (tests pass a fixed one); every ``now`` argument defaults to it.
    """

    def __init__(self, database: Database, clock: Callable[[], dt.datetime] = _utcnow):
        self.database = database
        self.clock = clock

    def now(self) -> dt.datetime:
        return _aware(self.clock(), "the clock")

    # -- changes --------------------------------------------------------------------------------------

    def switch_on(
        self,
        scope: str,
        mode: Mode,
        *,
        by: str,
        source: Source,
        reason: str = "",
        starts_at: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> Window:
        """Open a window for ``scope`` (a flow name or GLOBAL) in ``mode``, from now or from ``starts_at``
        (a start in the past means now) until ``until`` (None: until switched off).

        A window that starts now replaces the scope's running window of the same mode (it is ended and audited
        as ``off``, "replaced by …"), unless that one is declared in a flow file; a scheduled one replaces
        nothing. ``closed`` needs ``until``: its reopening time is spoken. Windows from the ``schedule`` come
        from flow files only (:meth:`sync_declared`). ValueError says what is wrong; nothing is written then.
        """
        mode, source = Mode(mode), Source(source)
        if source is Source.SCHEDULE:
            raise ValueError("windows from the schedule are declared in a flow file (`maintenance: windows:`) and "
                             "stored with sync_declared; switch on from cli, api or breaker")
        _check_scope(scope)
        by = _check_by(by)
        now = self.now()
        start = now if starts_at is None else max(_aware(starts_at, "the start"), now)
        end = None if until is None else _aware(until, "the end")
        if mode is Mode.CLOSED and end is None:
            raise ValueError("closed needs an end time (the reopening time callers hear); give until")
        if end is not None and end <= now:
            raise ValueError(f"the end {_text(end)} is not in the future (now {_text(now)}); give a later end")
        if end is not None and end <= start:
            raise ValueError(f"the end {_text(end)} is not after the start {_text(start)}; give a later end")
        scheduled = start > now
        action = "tripped" if source is Source.BREAKER else "scheduled" if scheduled else "on"
        window = Window(uuid.uuid4().hex[:12], scope, mode, start, end, reason.strip(), by, source)
        replaced: list[Window] = []
        with self.database.transaction() as conn:
            if not scheduled:
                rows = conn.execute(
                    f"UPDATE maintenance_windows SET ended_at = :now, replaced_by = :id WHERE scope = :scope "
                    f"AND mode = :mode AND {_SWITCHED} AND {_RUNNING} RETURNING *",
                    {"now": _ts(now), "scope": scope, "mode": mode.value, "id": window.id},
                ).fetchall()
                replaced = sorted((_window(row) for row in rows), key=lambda w: w.starts_at)
                for old in replaced:
                    _audit(conn, now, _off_action(old), old, by, source, reason, f"replaced by {window.id}")
            conn.execute(
                "INSERT INTO maintenance_windows (id, scope, mode, starts_at, ends_at, reason, by, source, "
                "created_at, start_recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (window.id, scope, mode.value, _ts(start), _ts(end), window.reason, by, source.value, _ts(now),
                 int(not scheduled)),
            )  # fmt: skip
            detail = f"starts {_text(start)}" if scheduled else ""  # the audit row's own time is now
            if replaced:
                detail = f"replaces {', '.join(old.id for old in replaced)}"
            _audit(conn, now, action, window, by, source, window.reason, detail)
        return window

    def replaced(self, window_id: str) -> list[Window]:
        rows = self.database.read(
            "SELECT * FROM maintenance_windows WHERE replaced_by = ? ORDER BY starts_at, rowid", (window_id,)
        )
        return [_window(row) for row in rows]

    def switch_off(
        self, scope: str, *, by: str, source: Source, reason: str = "", mode: Mode | None = None
    ) -> list[Window]:
        """End the scope's running windows (only those of ``mode`` when given), each audited as ``off`` (or
        ``cleared`` for a window the breaker opened); scheduled windows stay (see :meth:`cancel`), and so do
        windows declared in a flow file. A global switch-off ends global windows only, not the flows' own."""
        source = Source(source)
        _check_scope(scope)
        by = _check_by(by)
        now = self.now()
        where, params = f"scope = :scope AND {_SWITCHED} AND {_RUNNING}", {"now": _ts(now), "scope": scope}
        if mode is not None:
            where, params["mode"] = where + " AND mode = :mode", Mode(mode).value
        with self.database.transaction() as conn:
            rows = conn.execute(f"UPDATE maintenance_windows SET ended_at = :now WHERE {where} RETURNING *", params)
            ended = sorted((_window(row) for row in rows.fetchall()), key=_order)
            for window in ended:
                _audit(conn, now, _off_action(window), window, by, source, reason)
        return ended

    def cancel(self, window_id: str, *, by: str, source: Source, reason: str = "") -> Window:
        """End one window that is running or still scheduled (a scheduled one then never starts). A window
        declared in a flow file is refused (WindowDeclared): the file declares it again at the next reload."""
        source = Source(source)
        by = _check_by(by)
        now = self.now()
        with self.database.transaction() as conn:
            row = conn.execute(
                f"SELECT * FROM maintenance_windows WHERE id = :id AND {_LIVE}", {"now": _ts(now), "id": window_id}
            ).fetchone()
            if row is None:
                raise WindowNotFound(window_id)
            if row["source"] == Source.SCHEDULE.value:
                raise WindowDeclared(_window(row))
            conn.execute("UPDATE maintenance_windows SET ended_at = ? WHERE id = ?", (_ts(now), window_id))
            window = replace(_window(row), ended_at=now)
            detail = "cancelled before its start" if window.starts_at > now else ""
            _audit(conn, now, _off_action(window), window, by, source, reason, detail)
        return window

    def sync_declared(self, flow: str, windows: Iterable[Window], *, by: str) -> DeclaredChanges:
        """Make the flow's windows declared in its flow file, as stored, equal to ``windows`` (the flow's
        ``maintenance.windows`` as loaded now; ``[]`` for a flow whose file is gone), in one transaction.

        Each window is stored once, under an id made from the flow, its mode, times and reason (its own id is not
        used), from the ``schedule`` and by ``by``, the flow file. A window not stored yet is audited
        ``scheduled``, or ``on`` when it has started already; one taken out of the file earlier and written back
        is stored again the same way. A stored one that the file no longer declares is cancelled (``off``,
        "removed from the flow file") if it is running or scheduled. Windows already over are left alone: a
        window of the file's past is not stored, an ended one is not cancelled. The same file again writes
        nothing. Operators' and the breaker's windows are never touched: a declared window replaces none of
        them (it runs beside one of the same mode, and callers hear the one that started last). Returns what
        changed; ValueError says what is wrong, and nothing is written then.
        """
        _check_scope(flow)
        if flow == GLOBAL:
            raise ValueError("a flow file declares windows of its own flow, not global ones; give the flow's name")
        by = _check_by(by)
        declared: dict[str, Window] = {}
        for given in windows:
            if given.scope != flow:
                raise ValueError(f"window {given.id} is a window of {given.scope!r}, not of {flow!r}")
            start = _aware(given.starts_at, "the start")
            if given.ends_at is None:
                raise ValueError(f"the window from {_text(start)} has no end; a declared window has an `until`")
            end = _aware(given.ends_at, "the end")
            if end <= start:
                raise ValueError(f"the end {_text(end)} is not after the start {_text(start)}; give a later end")
            mode, reason = Mode(given.mode), given.reason.strip()
            window_id = declared_id(flow, mode, start, end, reason)
            declared[window_id] = Window(window_id, flow, mode, start, end, reason, by, Source.SCHEDULE)
        now = self.now()
        added: list[Window] = []
        removed: list[Window] = []
        with self.database.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM maintenance_windows WHERE scope = ? AND source = ? ORDER BY starts_at, rowid",
                (flow, Source.SCHEDULE.value),
            ).fetchall()
            stored = {row["id"]: _window(row) for row in rows}
            for window in sorted(declared.values(), key=lambda w: (w.starts_at, w.id)):
                old = stored.get(window.id)
                over = window.ends_at is not None and window.ends_at <= now
                if over or (old is not None and old.ended_at is None):
                    continue  # of the file's past, or stored already
                started = window.starts_at <= now
                if old is None:
                    conn.execute(
                        "INSERT INTO maintenance_windows (id, scope, mode, starts_at, ends_at, reason, by, source, "
                        "created_at, start_recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (window.id, flow, window.mode.value, _ts(window.starts_at), _ts(window.ends_at),
                         window.reason, by, Source.SCHEDULE.value, _ts(now), int(started)),
                    )  # fmt: skip
                else:  # only a sync ends a declared window: it was taken out of the file, and is back
                    conn.execute(
                        "UPDATE maintenance_windows SET ended_at = NULL, by = ?, start_recorded = ?, end_recorded = 0 "
                        "WHERE id = ?",
                        (by, int(started), window.id),
                    )
                if not started:
                    when = f"starts {_text(window.starts_at)}"
                else:
                    when = f"from {_text(window.starts_at)}" if window.starts_at < now else ""
                detail = "; ".join(part for part in ("declared again" if old is not None else "", when) if part)
                action = "on" if started else "scheduled"
                _audit(conn, now, action, window, by, Source.SCHEDULE, window.reason, detail)
                added.append(window)
            for old in stored.values():
                over = old.ended_at is not None or (old.ends_at is not None and old.ends_at <= now)
                if old.id in declared or over:
                    continue
                conn.execute("UPDATE maintenance_windows SET ended_at = ? WHERE id = ?", (_ts(now), old.id))
                ended = replace(old, ended_at=now)
                detail = "cancelled before its start" if old.starts_at > now else ""
                _audit(conn, now, "off", ended, by, Source.SCHEDULE, REMOVED, detail)
                removed.append(ended)
        return DeclaredChanges(tuple(added), tuple(removed))

    def start_due(self, now: dt.datetime | None = None) -> list[Window]:
        """Record (once) the start of scheduled windows whose start has come: an ``on`` row at their start time,
        by "system" from the schedule. Returns the windows recorded now."""
        at = self._at(now)
        with self.database.transaction() as conn:
            rows = conn.execute(
                "UPDATE maintenance_windows SET start_recorded = 1 WHERE start_recorded = 0 AND starts_at <= :now "
                "AND (ended_at IS NULL OR ended_at > starts_at) RETURNING *",  # it ran, even if it has ended since
                {"now": _ts(at)},
            ).fetchall()
            started = sorted((_window(row) for row in rows), key=lambda w: w.starts_at)
            for window in started:
                detail = f"scheduled by {window.by} ({window.source})"
                _audit(conn, window.starts_at, "on", window, SYSTEM, Source.SCHEDULE, window.reason, detail)
        return started

    def expire(self, now: dt.datetime | None = None) -> list[Window]:
        """Record (once) the end of windows whose ``ends_at`` has passed: an ``expired`` row at their end time,
        by "system" from the schedule. Returns the windows recorded now."""
        at = self._at(now)
        with self.database.transaction() as conn:
            rows = conn.execute(
                "UPDATE maintenance_windows SET end_recorded = 1 WHERE end_recorded = 0 AND ended_at IS NULL "
                "AND ends_at IS NOT NULL AND ends_at <= ? RETURNING *",
                (_ts(at),),
            ).fetchall()
            expired = sorted((_window(row) for row in rows), key=lambda w: (w.ends_at, w.starts_at))
            for window in expired:
                _audit(conn, window.ends_at or at, "expired", window, SYSTEM, Source.SCHEDULE, window.reason)
        return expired

    # -- reading --------------------------------------------------------------------------------------

    def windows(self, now: dt.datetime | None = None, include_future: bool = True) -> list[Window]:
        """Windows running at ``now`` and, with ``include_future``, those scheduled later; by start time."""
        at = _ts(self._at(now))
        where = _LIVE if include_future else _RUNNING
        rows = self.database.read(
            f"SELECT * FROM maintenance_windows WHERE {where} ORDER BY starts_at, rowid", {"now": at}
        )
        return [_window(row) for row in rows]

    def status(self, now: dt.datetime | None = None) -> list[Window]:
        """What an operator looks at: the running windows in the order they apply (mode precedence, then the
        latest start), then the scheduled ones by start time."""
        at = self._at(now)
        found = self.windows(at)
        running = sorted((w for w in found if w.starts_at <= at), key=_order)
        return running + [w for w in found if w.starts_at > at]

    def in_force(self, flow: str, now: dt.datetime | None = None) -> Maintenance | None:
        """The maintenance a call to ``flow`` meets at ``now`` (its own windows and the global ones)."""
        at = self._at(now)
        rows = self.database.read(
            f"SELECT * FROM maintenance_windows WHERE scope IN (:flow, :global) AND {_RUNNING}",
            {"flow": flow, "global": GLOBAL, "now": _ts(at)},
        )
        return in_force((_window(row) for row in rows), flow, at)

    def history(self, scope: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The audit trail, newest first; only ``scope``'s rows (a flow name, or GLOBAL) when given."""
        if limit < 1:
            raise ValueError(f"limit {limit} is out of range; give at least 1")
        where, params = ("WHERE scope = ?", (scope, limit)) if scope is not None else ("", (limit,))
        rows = self.database.read(f"SELECT * FROM maintenance_audit {where} ORDER BY at DESC, id DESC LIMIT ?", params)
        return [_entry(row) for row in rows]

    def _at(self, now: dt.datetime | None) -> dt.datetime:
        return self.now() if now is None else _aware(now, "now")


def _audit(
    conn: sqlite3.Connection,
    at: dt.datetime,
    action: str,
    window: Window,
    by: str,
    source: Source,
    reason: str,
    detail: str = "",
) -> None:
    """The audit row of a change, written in the change's own transaction."""
    conn.execute(
        "INSERT INTO maintenance_audit (at, action, window_id, scope, mode, by, source, reason, until, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (_ts(at), action, window.id, window.scope, window.mode.value, by, source.value, reason.strip(),
         _ts(window.ends_at), detail),
    )  # fmt: skip


def _off_action(window: Window) -> str:
    return "cleared" if window.source is Source.BREAKER else "off"


def _order(window: Window) -> tuple[int, float]:
    """Running windows in the order they apply: mode precedence, then the latest start first."""
    return PRECEDENCE.index(window.mode), -window.starts_at.timestamp()


def _window(row: sqlite3.Row) -> Window:
    return Window(
        id=row["id"],
        scope=row["scope"],
        mode=Mode(row["mode"]),
        starts_at=_dt(row["starts_at"]),
        ends_at=_opt_dt(row["ends_at"]),
        reason=row["reason"],
        by=row["by"],
        source=Source(row["source"]),
        ended_at=_opt_dt(row["ended_at"]),
    )


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        at=_dt(row["at"]),
        action=row["action"],
        scope=row["scope"],
        mode=None if row["mode"] is None else Mode(row["mode"]),
        by=row["by"],
        source=Source(row["source"]),
        reason=row["reason"],
        until=_opt_dt(row["until"]),
        detail=row["detail"],
        window_id=row["window_id"] or "",
    )


def _check_scope(scope: str) -> None:
    if not isinstance(scope, str) or not scope.strip() or scope != scope.strip():
        raise ValueError(f"a maintenance scope is a flow name or {GLOBAL!r} (global); got {scope!r}")


def _check_by(by: str) -> str:
    if not isinstance(by, str) or not by.strip():
        raise ValueError("say who makes the change (by=…): an operator's name, a ticket, 'system'")
    return by.strip()


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} {value.isoformat()} has no time zone; give an aware datetime (e.g. with tz=UTC)")
    return value.astimezone(dt.UTC)


def _ts(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _opt_dt(value: float | None) -> dt.datetime | None:
    return None if value is None else _dt(value)


def _text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
