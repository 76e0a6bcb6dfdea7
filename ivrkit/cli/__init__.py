"""The ``ivrkit`` command. Each sub-command lives in its own module with ``register`` and ``run``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from ivrkit import __version__
from ivrkit.cli import callbacks, check, compile, dispatcher, graph, maintenance, prompts, schema, serve, simulate, test

COMMANDS: list[ModuleType] = [
    check, prompts, simulate, serve, dispatcher, callbacks, maintenance, compile, schema, graph, test,
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivrkit", description="Call flows in YAML for Asterisk.")
    parser.add_argument("--version", action="version", version=f"ivrkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        sub = module.register(commands)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
