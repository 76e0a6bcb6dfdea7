#!/usr/bin/env python3
"""The private Asterisk 22 root used by the end-to-end tests (tests/asterisk, tests/ami).

    python3 tools/asterisk_sandbox.py build                      # debootstrap Debian sid + asterisk (as root)
    python3 tools/asterisk_sandbox.py status                     # built? usable? why not?
    python3 tools/asterisk_sandbox.py start --extensions FILE    # run one instance until Ctrl-C
    python3 tools/asterisk_sandbox.py path                       # print the root's location

The root is ``$IVRKIT_ASTERISK_ROOT`` or ``/var/cache/ivrkit/asterisk-sid``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from ivrkit.qa.asterisk.sandbox import (
    AsteriskBuildError,
    AsteriskInstance,
    AsteriskRoot,
    AsteriskStartError,
    AsteriskUnavailable,
    find_debian_mirror,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asterisk_sandbox.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, help="where the root is (default: $IVRKIT_ASTERISK_ROOT, else /var/cache/ivrkit/...)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the root unless it is already built (needs root, debootstrap)")
    build.add_argument("--mirror", help="Debian mirror URL (default: the one apt uses here, else debootstrap's)")
    commands.add_parser("status", help="say whether the root is built and usable, and how to fix it if not")
    start = commands.add_parser("start", help="run one Asterisk instance in the foreground until Ctrl-C")
    start.add_argument("--extensions", type=Path, help="extensions.conf to load (default: empty dialplan)")
    commands.add_parser("path", help="print the root's location")
    args = parser.parse_args(argv)
    root = AsteriskRoot(args.root)
    try:
        if args.command == "build":
            return _build(root, args.mirror)
        if args.command == "status":
            return _status(root)
        if args.command == "start":
            return _start(root, args.extensions)
        print(root.path)
        return 0
    except (AsteriskUnavailable, AsteriskBuildError, AsteriskStartError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _build(root: AsteriskRoot, mirror: str | None) -> int:
    started = time.monotonic()
    ran = root.build(lambda line: print(line, flush=True), mirror=mirror)
    if ran:
        print(f"built in {time.monotonic() - started:.0f} s")
    return 0


def _status(root: AsteriskRoot) -> int:
    print(f"root: {root.path}")
    if root.is_built():
        for key, value in root.info().items():
            print(f"  {key}: {value}")
    problem = root.why_unavailable()
    print(f"mirror apt uses here: {find_debian_mirror() or '(none found; debootstrap default)'}")
    print("usable: yes" if problem is None else f"usable: no: {problem}")
    return 0 if problem is None else 1


def _start(root: AsteriskRoot, extensions: Path | None) -> int:
    text = extensions.read_text() if extensions else ""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with AsteriskInstance(root, text) as instance:
        print(f"Asterisk is up ({instance.startup_seconds:.1f} s); private directory {instance.private_dir}")
        print(f"AMI: {instance.ami_host}:{instance.ami_port} user {instance.ami_username} secret {instance.ami_secret}")
        print(f"log: {instance.log_path}")
        print("Ctrl-C stops it.", flush=True)
        try:
            while instance.running and not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            print("stopping")
        if not instance.running:
            print("Asterisk exited on its own; last log lines:", file=sys.stderr)
            print("\n".join(instance.log_text().splitlines()[-20:]), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
