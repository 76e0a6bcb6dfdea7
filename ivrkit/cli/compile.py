"""``ivrkit compile``: the Asterisk side of every flow, as files an admin can ``#include`` as they are.

Writes ``extensions-ivrkit.conf`` (an entry context per flow, hang-up handlers) and ``queues-ivrkit.conf``
into ``--out``. ``--show`` prints them instead, ``--check`` says whether the files on disk are current (for
CI), ``--reload`` applies them to a running Asterisk over AMI and verifies that they loaded. The files go to
standard output (``--show``) or disk; progress and problems go to standard error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from ivrkit.cli.common import add_project_options, load_project
from ivrkit.compiler import compile_flows
from ivrkit.compiler.dialplan import AgiUrl, parse_agi_url
from ivrkit.compiler.output import compare_files, diff, write_files
from ivrkit.compiler.plan import DEFAULT_AGI_URL, DEFAULT_SOUNDS

SOUNDS = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"IVRKIT_{name}") or default


def register(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "compile",
        help="write the Asterisk dialplan and queues for the flows",
        description="Compile the flows into extensions-ivrkit.conf (an entry context ivrkit-<flow> per flow) and "
        "queues-ivrkit.conf, for extensions.conf and queues.conf to #include. Exit status 1 when the flows have "
        "errors, when --check finds stale files, or when --reload could not verify the load.",
    )
    add_project_options(parser)
    parser.add_argument("--out", type=Path, metavar="DIR", help="directory to write the files into")
    parser.add_argument(
        "--agi-url",
        default=_env("AGI_URL", DEFAULT_AGI_URL),
        metavar="URL",
        help="where Asterisk reaches the FastAGI server: agi://HOST[:PORT], or hagi://HOST for DNS SRV "
        "(a port turns SRV off) (default: %(default)s, or $IVRKIT_AGI_URL)",
    )
    parser.add_argument(
        "--sounds",
        default=_env("SOUNDS", DEFAULT_SOUNDS),
        help="folder under each language's sounds folder that holds the prompts, as for ivrkit serve "
        "(default: %(default)s)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--show", action="store_true", help="print what would be written; write nothing")
    mode.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file in --out is missing or stale"
    )
    mode.add_argument(
        "--reload", action="store_true", help="after writing, reload Asterisk over AMI and verify what loaded"
    )
    parser.add_argument("--ami-host", default=_env("AMI_HOST", "127.0.0.1"), help="(default: %(default)s)")
    parser.add_argument("--ami-port", type=int, default=int(_env("AMI_PORT", "5038")), help="(default: %(default)s)")
    parser.add_argument("--ami-user", default=_env("AMI_USER", ""), help="AMI user (default: $IVRKIT_AMI_USER)")
    parser.add_argument(
        "--ami-secret",
        default=_env("AMI_SECRET", ""),
        help="AMI secret (default: $IVRKIT_AMI_SECRET; prefer the variable: arguments show in ps)",
    )
    return parser


def _fail(message: str) -> int:
    print(f"ivrkit compile: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    try:
        agi = parse_agi_url(args.agi_url)
    except ValueError as error:
        return _fail(f"--agi-url: {error}")
    if not SOUNDS.fullmatch(args.sounds):
        return _fail(f"--sounds: {args.sounds!r} must be a folder name such as ivrkit (letters, digits, _, -, /)")
    if args.out is None and not args.show:
        return _fail("say where the files go with --out DIR (or print them with --show)")
    if args.reload and not (args.ami_user and args.ami_secret):
        return _fail("--reload needs --ami-user and --ami-secret (or $IVRKIT_AMI_USER and $IVRKIT_AMI_SECRET)")
    files = _compile(args, agi)
    if files is None:
        return 1
    if args.show:
        for name, text in files.items():
            sys.stdout.write(f"==> {args.out / name if args.out else name} <==\n{text}")
        return 0
    if args.check:
        return _check(args.out, files)
    for state in write_files(args.out, files):
        print(f"{state.state}: {state.path}", file=sys.stderr)
    if args.reload:
        return _reload(args, files)
    return 0


def _compile(args: argparse.Namespace, agi: AgiUrl) -> dict[str, str] | None:
    flows, catalog, diagnostics = load_project(args)
    if not args.flows.is_dir() or (not flows and not diagnostics.errors):
        _fail(f"no flows to compile in {args.flows}")
        return None
    files = compile_flows(flows, diagnostics, catalog if args.prompts.is_dir() else None, agi, args.sounds)
    if diagnostics.items:
        print(diagnostics.render(), file=sys.stderr)
    if files is None:
        errors = len(diagnostics.errors)
        _fail(f"{errors} error{'s' if errors != 1 else ''}: nothing written (`ivrkit check` shows the same)")
    return files


def _check(out: Path, files: dict[str, str]) -> int:
    stale = [state for state in compare_files(out, files) if state.stale]
    for state in stale:
        sys.stdout.write(diff(state.path, files[state.path.name]))
    for state in stale:
        print(f"{state.state}: {state.path}", file=sys.stderr)
    if stale:
        return _fail(f"{len(stale)} file(s) in {out} do not match the flows: run `ivrkit compile --out {out}`")
    print(f"up to date: {', '.join(str(out / name) for name in files)}", file=sys.stderr)
    return 0


def _reload(args: argparse.Namespace, files: dict[str, str]) -> int:
    from ivrkit.ami.client import AmiClient, AmiError
    from ivrkit.compiler.reload import apply, expected_from
    from ivrkit.compiler.render import EXTENSIONS_FILE, QUEUES_FILE

    client = AmiClient(timeout=30.0)
    try:
        client.connect(args.ami_host, args.ami_port)
        client.login(args.ami_user, args.ami_secret, events=False)
        report = apply(client, expected_from(files[EXTENSIONS_FILE], files[QUEUES_FILE]))
    except AmiError as error:
        return _fail(f"--reload: {error}")
    finally:
        client.close()
    print(report.render(), file=sys.stderr)
    return 0 if report.ok else 1
