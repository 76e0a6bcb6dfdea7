"""Benchmark: how fast flow tests run, next to baselines measured in the same process.

Runs every case of the example suites (``flows/tests/*.test.yaml``) N times and prints tests per second and
milliseconds per test. Two baselines are timed in the same run, so the numbers mean something on any
machine: the same caller scripts simulated directly (no expectations, no reports: the runner's own cost is
the difference) and a trivial one-step flow (``hangup``) simulated the same number of times (the fixed cost
of one simulated call). Prints numbers only; it asserts nothing.

    python tools/bench/flow_tests.py [N] [--flows DIR] [--prompts DIR] [--tests DIR]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_text
from ivrkit.qa.model import FlowTest
from ivrkit.qa.runner import Project, discover, run_case, start_time
from ivrkit.sim.script import CallerScript
from ivrkit.sim.session import Simulation

ROOT = Path(__file__).resolve().parents[2]
TRIVIAL_FLOW = "flow: trivial\nstart: bye\nsteps:\n  bye: {hangup: true}\n"


def timed(repeat: int, work: Callable[[], object], trials: int = 3) -> float:
    """Seconds for ``repeat`` rounds of ``work``: the best of ``trials``, with garbage collection paused."""
    best = float("inf")
    for _ in range(trials):
        gc.collect()
        gc.disable()
        try:
            began = time.perf_counter()
            for _ in range(repeat):
                work()
            best = min(best, time.perf_counter() - began)
        finally:
            gc.enable()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=20, help="times each suite is run (default 20)")
    parser.add_argument("--flows", type=Path, default=ROOT / "flows")
    parser.add_argument("--prompts", type=Path, default=ROOT / "prompts")
    parser.add_argument("--tests", type=Path, default=ROOT / "flows" / "tests")
    args = parser.parse_args(argv)
    rounds = max(1, args.rounds)

    began = time.perf_counter()
    project = Project.load(args.flows, args.prompts)
    load_ms = (time.perf_counter() - began) * 1000
    if not project.ok:
        print(project.diagnostics.render(), file=sys.stderr)
        return 1
    began = time.perf_counter()
    files, _ = discover([args.tests])
    cases: list[FlowTest] = [case for path in files for case in project.suite(path).cases if not case.broken]
    parse_ms = (time.perf_counter() - began) * 1000
    if not cases:
        print(f"no runnable flow test in {args.tests}", file=sys.stderr)
        return 1

    def run_suites() -> None:
        for case in cases:
            run_case(project, case)

    def simulate_directly() -> None:
        for case in cases:
            setup = case.setup
            project.simulation.run(
                case.flow, CallerScript([step.action for step in case.script]),
                start=start_time(case, project.flows[case.flow]),
                handoffs=list(setup.handoffs.value) if setup.handoffs else None, world=setup.world,
            )

    trivial = load_text(TRIVIAL_FLOW, "trivial.yaml", Diagnostics())
    assert trivial is not None  # a constant, known-good flow
    trivial_sim = Simulation({"trivial": trivial})

    def simulate_trivial() -> None:
        for _ in cases:
            trivial_sim.run("trivial", CallerScript([]))

    for work in (run_suites, simulate_directly, simulate_trivial):  # warm-up: imports, caches
        work()
    calls = rounds * len(cases)
    rows = [
        ("flow tests (simulate + expectations)", timed(rounds, run_suites)),
        ("same scripts simulated directly", timed(rounds, simulate_directly)),
        ("trivial one-step flow (baseline)", timed(rounds, simulate_trivial)),
    ]
    print(f"suites: {len(files)} file(s), {len(cases)} case(s), {rounds} round(s) = {calls} runs each")
    print(f"load flows + prompts: {load_ms:.1f} ms; read test files: {parse_ms:.1f} ms")
    for label, seconds in rows:
        print(f"{label:<38} {calls / seconds:>9.0f} /s  {seconds * 1000 / calls:>8.3f} ms each")
    tests, direct, baseline = (seconds for _, seconds in rows)
    print(f"{'flow test / trivial call':<38} {tests / baseline:>9.1f} x")
    print(f"{'flow test / direct simulation':<38} {tests / direct:>9.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
