"""``ivrkit dispatcher``: the callback dispatcher on its own, next to (or instead of) the one in ``ivrkit serve``.

It reads the callbacks from the data directory's store (the one ``ivrkit serve`` writes them to), the flows
for each queue's ``callback:`` settings, and talks to Asterisk over AMI. Only one dispatcher may run per data
directory (a lock file says which). SIGTERM or Ctrl-C stop it at once: an attempt in flight stays recorded
and the next start checks it against Asterisk, never dialling it again blindly. SIGHUP reloads the flows;
they are also reloaded when their files change, and the maintenance windows they declare are stored, as
``ivrkit serve`` does (:mod:`ivrkit.maintenance.declared`).

The AMI user needs ``read = call,agent`` and ``write = originate,reporting`` (``reporting`` for
``CoreShowChannels``), plus ``call`` to hang up a stray callback channel; see the README's callback section.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from ivrkit.callbacks.dispatcher import DispatcherLocked
from ivrkit.callbacks.running import SECRET_ENV, CallbackDispatch
from ivrkit.cli.common import add_ami_options, add_data_dir_option, add_log_options, add_project_options, ami_settings
from ivrkit.engine.maintenance import mode_now
from ivrkit.maintenance.declared import store_declared
from ivrkit.ops.logs import configure
from ivrkit.server.library import FlowLibrary
from ivrkit.server.world import LiveMaintenance
from ivrkit.store import SqliteCallbacks, SqliteMaintenance, StoreError, open_database

log = logging.getLogger("ivrkit.dispatcher")

DEFAULT_AMI = "127.0.0.1:5038"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"IVRKIT_{name}", default)


def register(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "dispatcher",
        help="call back the callers who asked for it, when an agent is free (talks to Asterisk over AMI)",
        description="Run the callback dispatcher on the data directory's store. The AMI secret comes from "
        f"${SECRET_ENV} or --ami-secret-file. SIGTERM stops it (calls in flight are checked at the next start), "
        "SIGHUP reloads the flows.",
    )
    add_project_options(parser)
    add_data_dir_option(parser, "the data directory of `ivrkit serve`, where the callbacks are stored")
    add_ami_options(parser, DEFAULT_AMI)
    parser.add_argument(
        "--poll",
        type=float,
        default=float(_env("DISPATCH_POLL", "1")),
        help="seconds between looks for due callbacks and free agents ($IVRKIT_DISPATCH_POLL) (%(default)s)",
    )
    parser.add_argument(
        "--reload-interval",
        type=float,
        default=float(_env("RELOAD_INTERVAL", "2")),
        help="seconds between checks for changed flow files; 0: reload on SIGHUP only (%(default)s)",
    )
    add_log_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    configure(args.log_format, args.log_level)
    try:
        ami = ami_settings(args)
        database = open_database(args.data_dir)
    except (ValueError, StoreError) as error:
        raise SystemExit(f"ivrkit dispatcher: {error}") from None
    wake, stopping, reload_now = threading.Event(), threading.Event(), threading.Event()

    def on_signal(flag: threading.Event) -> Callable[[int, FrameType | None], None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            flag.set()
            wake.set()

        return handler

    signal.signal(signal.SIGTERM, on_signal(stopping))
    signal.signal(signal.SIGINT, on_signal(stopping))
    signal.signal(signal.SIGHUP, on_signal(reload_now))
    library = FlowLibrary(args.flows, args.prompts if args.prompts.is_dir() else None)
    store = SqliteMaintenance(database)
    maintenance = LiveMaintenance(store)
    dispatch = CallbackDispatch(
        args.data_dir,
        SqliteCallbacks(database),
        lambda: library.flows,
        ami,
        maintenance=lambda flow: mode_now(maintenance, library.flows, flow),
        poll=args.poll,
    )
    try:
        dispatch.start()
    except (DispatcherLocked, OSError) as error:
        database.close()
        raise SystemExit(f"ivrkit dispatcher: {error}") from None
    try:
        _reload(library, store, "at start")
        log.info("store in %s", database.path)
        interval = args.reload_interval if args.reload_interval > 0 else None
        while True:
            wake.wait(interval)
            wake.clear()
            if stopping.is_set():
                break
            if reload_now.is_set():
                reload_now.clear()
                _reload(library, store, "SIGHUP")
            elif library.changed():
                _reload(library, store, "files changed")
        log.info("stopping: attempts in flight stay recorded for the next start")
    finally:
        if dispatch.stop():
            database.close()
    return 0


def _reload(library: FlowLibrary, store: SqliteMaintenance, why: str) -> None:
    """Load the flows again and store the maintenance windows they declare; a failure keeps the previous flows
    (the dispatcher must not stop over it)."""
    log.info("loading flows (%s)", why)
    previous = library.flows
    try:
        report = library.reload()
    except Exception:
        log.exception("flow reload failed; the previous flows stay in use")
        return
    store_declared(store, library.flows.values(), [previous[name] for name in report.removed if name in previous])
