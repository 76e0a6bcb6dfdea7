"""``ivrkit maintenance on|off|status|history``: put one flow or every flow into maintenance, for operators on the
PBX host.

It opens the store in the data directory the server uses (``--data-dir``, ``$IVRKIT_DATA_DIR``), beside a
running server: each change is one transaction with its audit row, recorded as done from the command line.
Times given without an offset, and text output, are in the host's time zone; ``--json`` gives the admin API's
JSON (UTC times). The admin API offers the same over HTTP.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ivrkit.cli.common import add_data_dir_option, open_server_store, store_failed
from ivrkit.flow.loader import load_directory
from ivrkit.maintenance.model import GLOBAL, AuditEntry, Mode, Source, Window
from ivrkit.ops import maintenance as views
from ivrkit.ops.requests import MAX_LIMIT
from ivrkit.store import SqliteMaintenance, StoreError, WindowDeclared, WindowNotFound

PROG = "ivrkit maintenance"


def clock() -> dt.datetime:
    """Now (tests replace it)."""
    return dt.datetime.now(dt.UTC)


def register(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "maintenance",
        help="switch maintenance mode on and off, show it and its history",
        description="Maintenance windows in the server's store: callers of a flow in maintenance hear the flow's "
        "announcement for the mode. Every change is recorded (who, when, why, until when, from where). The admin "
        "API offers the same: GET /v1/maintenance, GET /v1/maintenance/history, POST /v1/maintenance, "
        "POST /v1/maintenance/off.",
    )
    common = argparse.ArgumentParser(add_help=False)
    add_data_dir_option(common, "the server's data directory, holding the store")
    common.add_argument("--json", action="store_true", help="print JSON, as the admin API answers")
    actions = parser.add_subparsers(dest="action", required=True)

    on = actions.add_parser(
        "on",
        parents=[common],
        help="put a flow (or every flow) into maintenance",
        description="Open a maintenance window, now or from --from, until --until or until switched off. A new "
        "window replaces the running one of the same flow and mode. TIME is ISO 8601 (2026-12-01T14:00, in the "
        "host's time zone unless it has an offset), a time of day (14:00: the next one) or a duration (+2h, +30m, "
        "+1d); in --until a time of day or a duration counts from --from.",
    )
    on.add_argument("--mode", required=True, choices=[mode.value for mode in Mode], help="what callers hear")
    _add_scope(on)
    on.add_argument("--from", dest="start", metavar="TIME", help="start later (default: now)")
    on.add_argument("--until", metavar="TIME", help="end by itself then (required for closed: callers hear it)")
    on.add_argument("--reason", required=True, help="why, for the audit trail")
    on.add_argument("--by", required=True, help="who (your name or a ticket), for the audit trail")
    on.add_argument("--yes", action="store_true", help="confirm a global emergency (every flow stops)")
    on.add_argument(
        "--flows",
        type=Path,
        default=Path(os.environ.get("IVRKIT_FLOWS", "flows")),
        help="the server's flow directory, to check the --flow name against ($IVRKIT_FLOWS) (%(default)s)",
    )

    off = actions.add_parser(
        "off",
        parents=[common],
        help="end maintenance for a flow (or the global one)",
        description="End the running maintenance windows of a flow, or the global ones; scheduled windows stay "
        "(cancel one with --id). A global switch-off leaves the flows' own windows.",
    )
    _add_scope(off, window_id=True)
    off.add_argument("--mode", choices=[mode.value for mode in Mode], help="only this mode's window")
    off.add_argument("--by", required=True, help="who (your name or a ticket), for the audit trail")
    off.add_argument("--reason", default="", help="why, for the audit trail")

    actions.add_parser(
        "status",
        parents=[common],
        help="windows in force and scheduled",
        description="Windows in force, in the order they apply (emergency, planned, closed; a flow's own before "
        "the global one), then the scheduled ones.",
    )

    history = actions.add_parser(
        "history", parents=[common], help="the audit trail, newest first", description="Every change, newest first."
    )
    scope = history.add_mutually_exclusive_group()
    scope.add_argument("--flow", help="only this flow's changes")
    scope.add_argument("--global", dest="everywhere", action="store_true", help="only global changes")
    history.add_argument(
        "--limit",
        type=int,
        default=views.DEFAULT_LIMIT,
        help=f"at most this many, 1 to {MAX_LIMIT} (%(default)s)",
    )
    return parser


def _add_scope(parser: argparse.ArgumentParser, window_id: bool = False) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--flow", help="this flow (its `flow:` name)")
    scope.add_argument("--global", dest="everywhere", action="store_true", help="every flow")
    if window_id:
        scope.add_argument("--id", dest="window_id", help="this window (running or scheduled), as status shows it")


def run(args: argparse.Namespace) -> int:
    database = open_server_store(args.data_dir, PROG)
    try:
        store = SqliteMaintenance(database, clock)
        views.catch_up(store, store.now())
        if args.action == "on":
            return _on(store, args)
        if args.action == "off":
            return _off(store, args)
        if args.action == "status":
            return _status(store, args)
        return _history(store, args)
    except (StoreError, sqlite3.Error) as error:
        return _fail(store_failed(args.data_dir, error))
    finally:
        database.close()


def _on(store: SqliteMaintenance, args: argparse.Namespace) -> int:
    now = store.now()
    mode = Mode(args.mode)
    try:
        scope = GLOBAL if args.everywhere else views.check_flow(args.flow)
        by, reason = views.check_who(args.by, args.reason, reason_required=True)
        start = None if args.start is None else views.parse_time(args.start, now, naive_is_local=True)
        until = None if args.until is None else views.parse_time(args.until, start or now, naive_is_local=True)
        if mode is Mode.CLOSED and until is None:
            raise ValueError("closed needs --until: callers hear when you reopen (e.g. --until 2026-12-01T14:00)")
        if scope != GLOBAL:
            _check_known(scope, args.flows)
    except ValueError as error:
        return _fail(_options(error), status=2)
    if views.needs_confirmation(scope, mode) and not args.yes:
        if not sys.stdin.isatty():
            return _fail("a global emergency stops every flow: pass --yes to confirm", status=2)
        answer = input("a global emergency stops every flow; type yes to switch it on: ")
        if answer.strip().lower() != "yes":
            return _fail("not confirmed; nothing changed")
    try:
        window = store.switch_on(scope, mode, by=by, source=Source.CLI, reason=reason, starts_at=start, until=until)
    except ValueError as error:
        return _fail(_options(error), status=2)
    now = store.now()  # after the switch: a window that starts now has started
    replaced = store.replaced(window.id)
    note = views.precedence_note(store, window, now)
    if args.json:
        answer_json: dict[str, Any] = {
            "window": views.window_json(window, now),
            "replaced": [views.window_json(old, now) for old in replaced],
        }
        _print_json({**answer_json, "note": note} if note else answer_json)
        return 0
    who = "every flow" if scope == GLOBAL else scope
    when = f"scheduled from {local(window.starts_at)} {zone()}" if window.starts_at > now else "from now"
    end = f"until {local(window.ends_at)} {zone()}" if window.ends_at else "until switched off"
    print(f"{who}: {mode} maintenance {when} {end} (window {window.id})")
    for old in replaced:
        print(f"replaced window {old.id} ({old.mode} since {local(old.starts_at)} {zone()}, by {old.by})")
    if note:
        print(f"note: {note}")
    return 0


def _check_known(flow: str, directory: Path) -> None:
    """A typo in --flow would put no flow into maintenance: check the name against the flows, when they are here."""
    if not directory.is_dir():
        print(f"note: {flow!r} not checked against the flows: no flow directory {directory} (pass --flows or set "
              "$IVRKIT_FLOWS)", file=sys.stderr)  # fmt: skip
        return
    result = load_directory(directory)
    known = set(result.flows) | result.unloaded
    if flow not in known:
        names = ", ".join(sorted(known)) or "none"
        raise ValueError(f"no flow named {flow!r} in {directory} (flows: {names}); check --flow, or pass --flows")


def _off(store: SqliteMaintenance, args: argparse.Namespace) -> int:
    now = store.now()
    try:
        by, reason = views.check_who(args.by, args.reason, reason_required=False)
        scope = GLOBAL if args.everywhere else None if args.window_id else views.check_flow(args.flow)
    except ValueError as error:
        return _fail(_options(error), status=2)
    if scope is None:
        try:
            ended = [store.cancel(args.window_id, by=by, source=Source.CLI, reason=reason)]
        except (WindowNotFound, WindowDeclared) as error:
            return _fail(str(error))
        scope = ended[0].scope
    else:
        mode = None if args.mode is None else Mode(args.mode)
        ended = store.switch_off(scope, by=by, source=Source.CLI, reason=reason, mode=mode)
        if not ended:
            return _fail(views.nothing_to_end(store, scope, mode, now, views.CLI_WORDS))
    now = store.now()
    note = views.still_in_force_note(store, scope, now)
    if args.json:
        answer: dict[str, Any] = {"ended": [views.window_json(window, now) for window in ended], "count": len(ended)}
        _print_json({**answer, "note": note} if note else answer)
        return 0
    for window in ended:
        who = "every flow" if window.scope == GLOBAL else window.scope
        if window.starts_at > now:
            print(f"{who}: cancelled the {window.mode} maintenance scheduled from {local(window.starts_at)} "
                  f"{zone()} (window {window.id})")  # fmt: skip
        else:
            print(f"{who}: {window.mode} maintenance switched off; it ran since {local(window.starts_at)} {zone()}, "
                  f"switched on by {window.by} (window {window.id})")  # fmt: skip
    if note:
        print(f"note: {note}")
    return 0


def _status(store: SqliteMaintenance, args: argparse.Namespace) -> int:
    now = store.now()
    windows = store.status(now)
    if args.json:
        _print_json(views.status_json(windows, now))
        return 0
    if not windows:
        print("no maintenance: no window is in force or scheduled")
        return 0
    print(_window_table(windows, now))
    running = sum(1 for window in windows if window.starts_at <= now)
    parts = [f"{running} in force, in the order they apply"] if running else ["nothing in force"]
    if len(windows) > running:
        parts.append(f"{len(windows) - running} scheduled")
    print(f"\n{'; '.join(parts)}")
    return 0


def _history(store: SqliteMaintenance, args: argparse.Namespace) -> int:
    try:
        limit = views.parse_limit(args.limit)
        scope = GLOBAL if args.everywhere else None if args.flow is None else views.check_flow(args.flow)
    except ValueError as error:
        return _fail(_options(error), status=2)
    entries = store.history(scope, limit)
    if args.json:
        _print_json(views.history_json(entries, limit))
        return 0
    if not entries:
        print("no maintenance changes recorded" + ("" if scope is None else f" for {views.scope_name(scope)}"))
        return 0
    print(_history_table(entries))
    more = f"; there may be more: pass --limit (at most {MAX_LIMIT})" if len(entries) >= limit else ""
    print(f"\n{len(entries)} change{'' if len(entries) == 1 else 's'}, newest first{more}")
    return 0


# -- text output ------------------------------------------------------------------------------------


def local(at: dt.datetime | None) -> str:
    """A time as the host shows it (local time zone), to the minute."""
    if at is None:
        return "-"
    return at.astimezone().strftime("%Y-%m-%d %H:%M")


def zone() -> str:
    """The host's time zone abbreviation (CET, UTC…): text output says which local time it shows."""
    return time.strftime("%Z")


def _window_table(windows: Sequence[Window], now: dt.datetime) -> str:
    header = ("ID", "STATE", "SCOPE", "MODE", f"FROM ({zone()})", "UNTIL", "BY", "SOURCE", "REASON")
    rows = [
        (
            w.id,
            "in force" if w.starts_at <= now else "scheduled",
            views.scope_name(w.scope),
            w.mode.value,
            local(w.starts_at),
            local(w.ends_at) if w.ends_at else "switched off",
            w.by,
            w.source.value,
            w.reason,
        )
        for w in windows
    ]
    return _table(header, rows)


def _history_table(entries: Sequence[AuditEntry]) -> str:
    header = ("AT (" + zone() + ")", "ACTION", "SCOPE", "MODE", "UNTIL", "BY", "SOURCE", "REASON")
    rows = [
        (
            local(e.at),
            e.action,
            views.scope_name(e.scope),
            e.mode.value if e.mode else "-",
            local(e.until),
            e.by,
            e.source.value,
            e.reason + (f" ({e.detail})" if e.detail else "") if e.reason or e.detail else "-",
        )
        for e in entries
    ]
    return _table(header, rows)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (header, *rows)
    )


def _options(error: ValueError) -> str:
    """A view's message in the command line's words."""
    text = str(error)
    for field in ("by", "reason"):
        text = text.replace(f"'{field}'", f"--{field}")
    return text


def _fail(message: str, status: int = 1) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return status


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2))
