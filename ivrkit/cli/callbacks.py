"""``ivrkit callbacks list|show|cancel``: the callbacks in a server's store, for operators on the PBX host.

It opens the store in the data directory the server uses (``--data-dir``, ``$IVRKIT_DATA_DIR``), beside a
running server and dispatcher: SQLite lets it read while they write, and a cancel is one transaction that
the dispatcher respects (it never dials a cancelled callback). The admin API offers the same over HTTP.
Text output shows local times; ``--json`` gives the admin API's JSON (UTC times).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import Any

from ivrkit.callbacks.model import Callback, CallbackEvent, State
from ivrkit.cli.common import add_data_dir_option, open_server_store, store_failed
from ivrkit.ops import callbacks as views
from ivrkit.ops.requests import MAX_LIMIT
from ivrkit.store import CallbackFinished, CallbackNotFound, SqliteCallbacks, StoreError

PROG = "ivrkit callbacks"


def register(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "callbacks",
        help="list, show and cancel callbacks in the server's store",
        description="Callbacks the flows registered, from the store in the server's data directory. "
        "The admin API offers the same: GET /v1/callbacks, GET /v1/callbacks/<id>, POST /v1/callbacks/<id>/cancel.",
    )
    common = argparse.ArgumentParser(add_help=False)
    add_data_dir_option(common, "the server's data directory, holding the store")
    common.add_argument("--json", action="store_true", help="print JSON, as the admin API answers")
    actions = parser.add_subparsers(dest="action", required=True)

    listing = actions.add_parser(
        "list",
        parents=[common],
        help="callbacks, newest first",
        description="Callbacks, newest first (by request time).",
    )
    listing.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help=f"only these states, repeatable or comma-separated: {', '.join(views.STATE_FILTERS)} "
        "(active: pending, dialing and connected)",
    )
    listing.add_argument("--queue", help="only this queue")
    listing.add_argument(
        "--limit",
        type=int,
        default=views.DEFAULT_LIMIT,
        help=f"at most this many, 1 to {MAX_LIMIT} (%(default)s)",
    )

    show = actions.add_parser(
        "show", parents=[common], help="one callback and its history", description="One callback with its events."
    )
    show.add_argument("id", help="the callback's id, as `list` shows it")

    cancel = actions.add_parser(
        "cancel",
        parents=[common],
        help="cancel an active callback",
        description="Cancel a pending, dialing or connected callback: it is not dialled (again). A call already "
        "in progress is not hung up.",
    )
    cancel.add_argument("id", help="the callback's id, as `list` shows it")
    cancel.add_argument("--by", required=True, help="who cancels (your name or a ticket), for the audit trail")
    cancel.add_argument("--reason", default="", help="why, for the audit trail")
    return parser


def run(args: argparse.Namespace) -> int:
    database = open_server_store(args.data_dir, PROG)
    try:
        store = SqliteCallbacks(database)
        if args.action == "list":
            return _list(store, args)
        if args.action == "show":
            return _show(store, args)
        return _cancel(store, args)
    except (StoreError, sqlite3.Error) as error:
        return _fail(store_failed(args.data_dir, error))
    finally:
        database.close()


def _list(store: SqliteCallbacks, args: argparse.Namespace) -> int:
    try:
        states = views.parse_states(args.state)
        limit = views.parse_limit(args.limit)
    except ValueError as error:
        return _fail(str(error), status=2)
    found = store.list(states=states, queue=args.queue, limit=limit)
    if args.json:
        _print_json(views.list_json(found, limit))
        return 0
    if not found:
        print(f"no {_what(states, args.queue)}")
        return 0
    print(_table(found))
    more = f"; there may be more: pass --limit (at most {MAX_LIMIT})" if len(found) >= limit else ""
    print(f"\n{len(found)} {_what(states, args.queue, len(found))}, newest first{more}")
    return 0


def _show(store: SqliteCallbacks, args: argparse.Namespace) -> int:
    callback = store.get(args.id)
    if callback is None:
        return _fail(_not_found(args.id))
    events = store.events(callback.id)
    if args.json:
        _print_json(views.detail_json(callback, events))
    else:
        print(describe(callback, events))
    return 0


def _cancel(store: SqliteCallbacks, args: argparse.Namespace) -> int:
    try:
        by, reason = views.check_cancel(args.by, args.reason)
    except ValueError as error:
        return _fail(str(error).replace("'by'", "--by").replace("'reason'", "--reason"), status=2)
    before = store.get(args.id)
    try:
        cancelled = store.cancel(args.id, by=f"{by} (command line)", reason=reason)
    except CallbackNotFound:
        return _fail(_not_found(args.id))
    except CallbackFinished as finished:
        return _fail(
            f"callback {args.id} is already {finished.callback.state}: nothing to cancel "
            f"(`{PROG} show {args.id}` shows what happened)"
        )
    note = views.in_flight_note(before) if before is not None else None
    if args.json:
        detail = views.detail_json(cancelled, store.events(cancelled.id))
        _print_json({**detail, "note": note} if note else detail)
        return 0
    was = before.state.value if before is not None else "active"
    print(f"cancelled callback {cancelled.id} ({cancelled.number}, queue {cancelled.queue}); it was {was}")
    if note:
        print(f"note: {note}")
    return 0


# -- text output ------------------------------------------------------------------------------------


def local(at: float | None) -> str:
    """A time as the host shows it (local time zone), to the second."""
    if at is None:
        return "-"
    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def zone() -> str:
    """The host's time zone abbreviation (CET, UTC…): text output says which local time it shows."""
    return time.strftime("%Z")


def _table(callbacks: Sequence[Callback]) -> str:
    header = ("ID", "STATE", "QUEUE", "NUMBER", "ORIGIN", "ATTEMPTS", "LAST RESULT", f"REQUESTED ({zone()})")
    rows = [
        (
            c.id,
            c.state.value,
            c.queue,
            c.number,
            c.origin.value,
            str(c.attempts),
            c.last_result.value if c.last_result is not None else "-",
            local(c.requested_at),
        )
        for c in callbacks
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (header, *rows)
    )


def describe(callback: Callback, events: Sequence[CallbackEvent]) -> str:
    """A callback and its history, for a person."""
    lines = [
        f"callback {callback.id}: {callback.state} (times in {zone()})",
        f"  number       {callback.number}",
        f"  queue        {callback.queue} (flow {callback.flow}, priority {callback.priority})",
        f"  origin       {callback.origin}" + (f", reason {callback.reason}" if callback.reason else ""),
        f"  joined       {local(callback.joined_at)}",
        f"  requested    {local(callback.requested_at)}"
        + (f" (call {callback.uniqueid})" if callback.uniqueid else ""),
        f"  attempts     {callback.attempts}" + (f", last: {callback.last_result}" if callback.last_result else ""),
    ]
    if callback.state is State.PENDING:
        lines.append(
            f"  next attempt not before {local(callback.next_attempt_at)}, once an agent is free in the calling hours"
        )
    if callback.channel_id:
        lines.append(f"  channel      {callback.channel_id}")
    if callback.language:
        lines.append(f"  language     {callback.language}")
    lines.append("events:")
    for event in events:
        change = f"{event.from_state or '-'} -> {event.to_state}"
        lines.append(f"  {local(event.at)}  {change:<22}  {event.reason}")
    return "\n".join(lines)


def _what(states: frozenset[State] | None, queue: str | None, count: int = 0) -> str:
    """ "pending callbacks in queue support", for the summary line."""
    noun = "callback" if count == 1 else "callbacks"
    if states is not None:
        names = sorted(state.value for state in states)
        noun = f"{'/'.join(names)} {noun}"
    return f"{noun} in queue {queue}" if queue else noun


def _not_found(ident: str) -> str:
    return f"no callback has the id {ident!r}; `{PROG} list` shows the ids"


def _fail(message: str, status: int = 1) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return status


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2))
