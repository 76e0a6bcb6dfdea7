"""``ivrkit serve``: the FastAGI server that runs flows for live calls.

Every option has a default that is safe on a PBX host (loopback only, admin endpoint on localhost behind a
token) and an ``IVRKIT_*`` environment variable, so a service unit needs no command line at all. State that must
survive a restart (the store, the admin token, the link-signing key) lives in the data directory.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ivrkit.cli.common import add_ami_options, add_data_dir_option, add_log_options, add_project_options, ami_settings
from ivrkit.ops.admin import load_or_create_token
from ivrkit.ops.logs import configure
from ivrkit.server.listener import LOOPBACK, ListenerSettings
from ivrkit.server.service import Service, ServiceSettings
from ivrkit.server.session import SessionSettings
from ivrkit.sms.settings import SmsConfigError, load_sms_settings
from ivrkit.store import StoreError

TOKEN_FILE = "admin-token"  # in the data directory unless --admin-token-file says otherwise


def _env(name: str, default: str) -> str:
    return os.environ.get(f"IVRKIT_{name}", default)


def _env_path(name: str) -> Path | None:
    value = _env(name, "")
    return Path(value) if value else None


def register(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "serve",
        help="run the FastAGI server: AGI(agi://host:4573/<flow>) runs the flow for a live call",
        description="Serve flows over FastAGI. In the dialplan: same => n,AGI(agi://127.0.0.1:4573/support). "
        "SIGTERM drains (running calls finish), SIGHUP reloads the flows.",
    )
    add_project_options(parser)
    parser.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=int(_env("PORT", "4573")), help="FastAGI port (%(default)s)")
    parser.add_argument(
        "--allow",
        action="append",
        default=None,
        metavar="NETWORK",
        help="client address or network allowed to connect, repeatable (default: loopback only; "
        "$IVRKIT_ALLOW, comma-separated)",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=int(_env("MAX_SESSIONS", "2500")),
        help="calls served at once; more are refused with IVRKIT_OUTCOME=busy (%(default)s)",
    )
    parser.add_argument(
        "--audio-timeout",
        type=float,
        default=float(_env("AUDIO_TIMEOUT", "600")),
        help="seconds a prompt or other audio command may take before the peer counts as silent (%(default)s)",
    )
    parser.add_argument(
        "--sounds",
        default=_env("SOUNDS", "ivrkit"),
        help="folder under each language's sounds folder that holds the prompts (%(default)s)",
    )
    parser.add_argument("--no-answer", action="store_true", help="do not answer the channel (the dialplan answers it)")
    parser.add_argument("--admin-host", default=_env("ADMIN_HOST", "127.0.0.1"), help="admin address (%(default)s)")
    parser.add_argument(
        "--admin-port",
        type=int,
        default=int(_env("ADMIN_PORT", "4574")),
        help="admin HTTP port for /healthz and /metrics; 0 turns it off (%(default)s)",
    )
    parser.add_argument(
        "--admin-token-file",
        type=Path,
        default=_env_path("ADMIN_TOKEN_FILE"),
        help="where the admin token is kept (created, mode 0600, when missing; "
        "$IVRKIT_ADMIN_TOKEN overrides it) (default: admin-token in the data directory)",
    )
    add_data_dir_option(
        parser,
        "where the server keeps its state: the store (outbox of text messages, estimate log, callbacks), the admin "
        "token and the link-signing key; share it between processes of one server",
    )
    parser.add_argument(
        "--sms-config",
        type=Path,
        default=_env_path("SMS_CONFIG"),
        help="YAML file with the SMS gateway, link lifetime and retry policy ($IVRKIT_SMS_CONFIG); "
        "without it texts are printed on standard output (development)",
    )
    parser.add_argument(
        "--reload-interval",
        type=float,
        default=float(_env("RELOAD_INTERVAL", "2")),
        help="seconds between checks for changed flow files; 0: reload on SIGHUP only (%(default)s)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="on SIGTERM, wait at most this many seconds for running calls (default: as long as they last)",
    )
    add_log_options(parser, "debug logs every step, prompt and key of every call")
    add_ami_options(parser, None)  # without --ami callbacks are stored but not dialled (`ivrkit dispatcher`)
    return parser


def settings_from(args: argparse.Namespace) -> ServiceSettings:
    allow = args.allow or [spec for spec in _env("ALLOW", "").split(",") if spec.strip()] or list(LOOPBACK)
    token = ""
    if args.admin_port:
        token_file = args.admin_token_file or args.data_dir / TOKEN_FILE
        token = os.environ.get("IVRKIT_ADMIN_TOKEN") or load_or_create_token(token_file)
    return ServiceSettings(
        flows=args.flows,
        prompts=args.prompts if args.prompts.is_dir() else None,
        listener=ListenerSettings(args.host, args.port, args.max_sessions, tuple(allow)),
        session=SessionSettings(sounds=args.sounds, audio_seconds=args.audio_timeout, answer=not args.no_answer),
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        admin_token=token,
        reload_seconds=args.reload_interval,
        drain_seconds=args.drain_timeout,
        data_dir=args.data_dir,
        sms=load_sms_settings(args.sms_config),
        ami=ami_settings(args) if args.ami else None,
    )


def run(args: argparse.Namespace) -> int:
    configure(args.log_format, args.log_level)
    try:
        service = Service(settings_from(args))
    except (ValueError, StoreError, SmsConfigError) as error:
        raise SystemExit(f"ivrkit serve: {error}") from None
    try:
        return service.run()
    except OSError as error:
        raise SystemExit(f"ivrkit serve: {error}") from None
