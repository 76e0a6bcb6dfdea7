"""``ivrkit simulate FLOW``: run a flow without a PBX, interactively or from a key script."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import sys
from typing import Any

import yaml

from ivrkit.cli.common import add_project_options, load_project
from ivrkit.engine.transitions import CallerHungUp
from ivrkit.engine.world import StaticWorld
from ivrkit.sim.interactive import HELP, InteractiveChannel
from ivrkit.sim.script import CallerScript, ScriptError, parse_keys
from ivrkit.sim.session import DEFAULT_START, HandoffResult, Simulation


def register(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "simulate",
        help="run a flow without a PBX (interactively, or with --keys)",
        description="Run a flow on a simulated call. Without --keys you are the caller: type keys at the prompt.",
    )
    parser.add_argument("flow", help="flow name (the `flow:` in the file)")
    parser.add_argument(
        "--keys", help='caller script, e.g. "1 123# s w10 h" (keys, s = silence, w<sec> = wait, h = hang up)'
    )
    parser.add_argument("--caller", default="+4930123456", help="caller number (default %(default)s)")
    parser.add_argument("--caller-name", default="Test Caller", help="caller name")
    parser.add_argument("--language", default="",
                        help="the language of the caller's line, e.g. de (the call speaks it if the flow does)")
    parser.add_argument(
        "--now", help="simulated start time, ISO 8601 with offset (default: Monday 2026-11-23 10:00 UTC)"
    )
    parser.add_argument("--state", help="faked external state as YAML/JSON, e.g. '{queues: {support: {waiting: 9}}}'")
    parser.add_argument(
        "--handoff",
        action="append",
        default=[],
        metavar="OUTCOME",
        help="dialplan result after each hand-off, in order (timeout, busy, …; default answered)",
    )
    parser.add_argument("--json", action="store_true", help="print the journal as JSON instead of a transcript")
    add_project_options(parser)
    return parser


def _start(text: str | None) -> dt.datetime:
    if not text:
        return DEFAULT_START
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def run(args: argparse.Namespace) -> int:
    flows, catalog, diagnostics = load_project(args)
    if diagnostics.errors:
        print(diagnostics.render(), file=sys.stderr)
        print("the flows have errors; fix them first (ivrkit check)", file=sys.stderr)
        return 1
    if args.flow not in flows:
        print(f"no flow named '{args.flow}'; flows: {', '.join(sorted(flows)) or 'none'}", file=sys.stderr)
        return 2
    try:
        script = parse_keys(args.keys) if args.keys is not None else CallerScript()
        world = StaticWorld.from_mapping(yaml.safe_load(args.state) if args.state else None)
        start = _start(args.now)
    except (ScriptError, ValueError, yaml.YAMLError) as exc:
        print(f"ivrkit simulate: {exc}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {
        "caller_number": args.caller,
        "caller_name": args.caller_name,
        "language": args.language,
        "start": start,
        "handoffs": [HandoffResult(outcome) for outcome in args.handoff],
        "world": world,
    }
    interactive = args.keys is None
    if interactive:
        print(f"Calling flow '{args.flow}' as {args.caller}. {HELP}")
        options["channel_factory"] = functools.partial(InteractiveChannel, read=_reader(), out=sys.stdout)
    result = Simulation(flows, catalog, world).run(args.flow, script, **options)
    if args.json:
        print(
            json.dumps(
                {"outcome": result.outcome, "vars": result.vars, "journal": result.journal.to_dicts()},
                indent=2,
                default=str,
            )
        )
        return 0
    if not interactive:
        print(result.transcript())
    print(f"outcome: {result.outcome}   duration: {result.seconds:.1f}s   vars: {json.dumps(result.vars, default=str)}")
    return 0


def _reader() -> Any:
    def read(prompt: str) -> str:
        try:
            return input(prompt)
        except EOFError:
            print("\n  (end of input: you hung up)")
            raise CallerHungUp() from None

    return read
