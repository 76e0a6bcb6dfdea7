"""``ivrkit test``: run flow tests (``*.test.yaml``) against simulated calls, optionally with coverage.

Exit status: 0 when every case passed; 1 when a case failed, a test file or the flows have errors, or no
case was found (a CI job that tests nothing should not look green); 2 for a path that does not exist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ivrkit.cli.common import add_project_options
from ivrkit.qa.coverage import Coverage
from ivrkit.qa.runner import CaseResult, Project, case_line, discover, failure_report, run_suites, suite_errors, summary

DEFAULT_PATH = Path("flows/tests")


def register(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "test",
        help="run flow tests (*.test.yaml) on simulated calls",
        description="Run flow tests: each case is a simulated call checked against its `expect:`.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help=f"test files or directories searched for *.test.yaml (default: {DEFAULT_PATH}/)")
    add_project_options(parser)
    parser.add_argument("--coverage", action="store_true",
                        help="print steps, menu choices and prompts reached per flow, and those never reached")
    parser.add_argument("-k", dest="keyword", metavar="SUBSTRING",
                        help="run only cases whose 'file::case name' contains SUBSTRING (any letter case)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="time each case and print the transcript of passing cases too")
    return parser


def run(args: argparse.Namespace) -> int:
    files, missing = discover(args.paths or [DEFAULT_PATH])
    for path in missing:
        print(f"ivrkit test: {path}: no such file or directory", file=sys.stderr)
    if missing:
        return 2
    project = Project.load(args.flows, args.prompts)
    if not project.ok:
        print(project.diagnostics.render())
        print(f"the flows in {args.flows} have errors: no flow test can run (see `ivrkit check`)")
        return 1
    suites = [project.suite(path) for path in files]
    broken = [suite for suite in suites if suite.broken]
    results: list[CaseResult] = []
    coverage = Coverage(project.flows) if args.coverage else None
    for suite in suites:
        if suite.broken:
            print(f"ERROR {suite.file}")
    for result in run_suites(project, suites, args.keyword):
        results.append(result)
        print(case_line(result, timing=args.verbose))
        if coverage is not None and result.result is not None:
            coverage.add(result.result)
        if args.verbose and result.passed and result.result is not None:
            print(_indent(result.result.transcript()))
    reports = [suite_errors(suite) for suite in broken] + [failure_report(r) for r in results if not r.passed]
    for report in reports:
        print()
        print(report)
    if coverage is not None:
        print()
        print(coverage.table())
    if not results and not broken:
        where = ", ".join(str(p) for p in args.paths or [DEFAULT_PATH])
        print(f"no flow test {'matches -k ' + repr(args.keyword) if args.keyword else 'found'} in {where}")
        return 1
    print()
    if args.verbose:
        total = sum(r.seconds for r in results)
        print(f"{len(results)} case(s) in {total * 1000:.1f} ms")
    print(summary(results, len(broken)))
    return 0 if len(reports) == 0 else 1


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
