"""``ivrkit schema``: the JSON Schema of flow files for editors, or the flow reference as Markdown."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "schema",
        help="print the JSON Schema of flow files (or the flow reference)",
        description="Print the JSON Schema (draft 2020-12) that editors use to check flow files while you type; "
        "see docs/editor-setup.md. With --markdown, print the flow reference (docs/flow-reference.md) instead.",
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--markdown", action="store_true", help="the flow reference in Markdown instead of the schema")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        from ivrkit.flow.reference import generate

        text = generate()
    else:
        from ivrkit.flow.schema import schema_text

        text = schema_text()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"ivrkit schema: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
