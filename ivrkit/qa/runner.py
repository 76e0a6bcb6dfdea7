"""Running flow tests: load the project once, run each case as a simulated call, compare, report.

A :class:`Project` holds the checked flows, the prompt catalog and one :class:`Simulation`, so a case costs
one simulated call (well under a millisecond for a typical flow) and nothing is re-read between cases. Two
checks come for free with every case: caller actions that never happened (the call ended before the script
did) and hand-off results that were never asked for, because both mean the test is not testing what its
author thinks.

The reports (shared by ``ivrkit test`` and the pytest plugin) are written for the person who has to fix a
failure without re-running anything: every unmet expectation at its YAML line with expected against actual,
then what the case set up, then the whole transcript of the simulated call, which is usually where the
answer is.
"""

from __future__ import annotations

import datetime as dt
import textwrap
import time
import traceback
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivrkit.engine.world import QueueStats
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_directory
from ivrkit.flow.model import Flow
from ivrkit.maintenance.model import GLOBAL
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.qa import TEST_SUFFIXES
from ivrkit.qa.expect import Failure, Observed
from ivrkit.qa.format import load_suite, resolve
from ivrkit.qa.model import FlowTest, Suite
from ivrkit.sim.channel import SimulatedChannel
from ivrkit.sim.script import CallerScript
from ivrkit.sim.session import DEFAULT_START, HandoffResult, Simulation, SimulationResult

PASSED, FAILED, BROKEN, CRASHED = "passed", "failed", "broken", "error"


@dataclass
class Project:
    """Flows, prompts and a simulator, loaded once for any number of cases."""

    flows: dict[str, Flow]
    catalog: PromptCatalog | None
    diagnostics: Diagnostics
    flows_dir: Path | None = None

    def __post_init__(self) -> None:
        self.simulation = Simulation(self.flows, self.catalog)

    @classmethod
    def load(cls, flows_dir: Path, prompts_dir: Path | None = None) -> Project:
        """Load and check the flows as ``ivrkit check`` does; problems are in ``diagnostics``."""
        from ivrkit.flow.checks import check_flows

        result = load_directory(flows_dir)
        catalog = PromptCatalog.load(prompts_dir) if prompts_dir is not None and prompts_dir.is_dir() else None
        check_flows(result.flows, result.diagnostics, catalog, result.unloaded)
        return cls(result.flows, catalog, result.diagnostics, flows_dir)

    @property
    def ok(self) -> bool:
        return not self.diagnostics.errors

    def suite(self, path: Path) -> Suite:
        """A test file, read and checked against the flows."""
        suite = load_suite(path)
        resolve(suite, self.flows, self.catalog)
        return suite


@dataclass
class CaseResult:
    case: FlowTest
    status: str
    failures: list[Failure] = field(default_factory=list)
    result: SimulationResult | None = None
    error: str | None = None  # the traceback when the simulation itself crashed
    seconds: float = 0.0  # wall-clock time the case took

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def start_time(case: FlowTest, flow: Flow) -> dt.datetime:
    """The case's ``now``; a time without offset is in the tested flow's timezone."""
    now = case.setup.now
    if now is None:
        return DEFAULT_START
    return now if now.tzinfo is not None else now.replace(tzinfo=zoneinfo.ZoneInfo(flow.timezone))


def run_case(project: Project, case: FlowTest) -> CaseResult:
    """Run one case; never raises for a failing or broken case (the result says what went wrong)."""
    began = time.perf_counter()
    if case.broken:
        return CaseResult(case, BROKEN, seconds=time.perf_counter() - began)
    channels: list[SimulatedChannel] = []

    def channel(*args: Any) -> SimulatedChannel:
        channels.append(SimulatedChannel(*args))
        return channels[-1]

    setup = case.setup
    options: dict[str, Any] = {"channel_factory": channel}
    for option, value in (("caller_number", setup.caller_number), ("caller_name", setup.caller_name),
                          ("language", setup.language)):
        if value is not None:
            options[option] = value
    if setup.handoffs is not None:
        options["handoffs"] = list(setup.handoffs.value)
    try:
        flow = project.flows[case.flow]
        if setup.world is not None:
            options["world"] = setup.world.fresh(flow.timezone)  # maintenance times are in the flow's timezone
        options["start"] = start_time(case, flow)
        result = project.simulation.run(case.flow, CallerScript([step.action for step in case.script]), **options)
    except Exception:  # a bug in the engine or simulator, or a case not checked with `resolve`: report it
        return CaseResult(case, CRASHED, error=traceback.format_exc(), seconds=time.perf_counter() - began)
    observed = Observed.of(result, case.flow)
    failures = [failure for expectation in case.expectations for failure in expectation.check(observed)]
    failures.extend(_leftovers(case, result, channels[0] if channels else None))
    status = FAILED if failures else PASSED
    return CaseResult(case, status, failures, result, seconds=time.perf_counter() - began)


def _leftovers(case: FlowTest, result: SimulationResult, channel: SimulatedChannel | None) -> list[Failure]:
    failures = []
    remaining = channel.remaining_actions if channel is not None else []
    if remaining:
        first = case.script[len(case.script) - len(remaining)]
        actions = ", ".join(action.describe() for action in remaining)
        failures.append(Failure(first.location, "script", f"the call ended before {len(remaining)} caller "
                                f"action(s) happened: {actions}", actual=f"outcome {result.outcome!r}"))
    given = case.setup.handoffs
    if given is not None and len(given.value) > len(result.handoffs):
        failures.append(Failure(given.location, "handoffs",
                                f"{len(given.value)} hand-off result(s) given, but the flow handed off "
                                f"{len(result.handoffs)} time(s)",
                                actual=", ".join(f"{a}:{t} → {o}" for a, t, o in result.handoffs) or "no hand-off"))
    return failures


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Test files under ``paths`` (files as given, directories searched recursively), and paths not found."""
    found: list[Path] = []
    missing: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(TEST_SUFFIXES)))
        elif path.is_file():
            found.append(path)
        else:
            missing.append(path)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)  # a file named twice runs once, as first named
    return list(unique.values()), missing


def matches(case: FlowTest, keyword: str | None) -> bool:
    """``-k``: a case-insensitive substring of ``file::case name``."""
    return keyword is None or keyword.lower() in case.id.lower()


def run_suites(project: Project, suites: Iterable[Suite], keyword: str | None = None) -> Iterator[CaseResult]:
    for suite in suites:
        if suite.broken:
            continue
        for case in suite.cases:
            if matches(case, keyword):
                yield run_case(project, case)


# -- reports -------------------------------------------------------------------------------------------------

LABELS = {PASSED: "PASS", FAILED: "FAIL", BROKEN: "ERROR", CRASHED: "ERROR"}


def case_line(result: CaseResult, timing: bool = False) -> str:
    line = f"{LABELS[result.status]:<5} {result.case.id}"
    return line + f"  ({result.seconds * 1000:.2f} ms)" if timing else line


def _source(case: FlowTest) -> list[str]:
    return case.problems.sources.get(case.file, [])


def describe_setup(case: FlowTest) -> str:
    setup = case.setup
    parts = [f"flow {case.flow}"]
    if setup.now is not None:
        parts.append(f"now {setup.now.isoformat()}")
    if setup.caller_number is not None or setup.caller_name is not None:
        parts.append(f"caller {setup.caller_number or ''} {setup.caller_name or ''}".rstrip())
    if setup.language:
        parts.append(f"language {setup.language}")
    if setup.world is not None:
        for name, stats in setup.world.queues.items():
            parts.append(f"queue {name} ({_stats(vars(stats)) or 'all 0'})")
        for scope, preset in setup.world.maintenance_presets.items():
            parts.append(f"maintenance {preset.mode}" + ("" if scope == GLOBAL else f" in {scope}")
                         + (f" from {preset.since.isoformat(' ')}" if preset.since else "")
                         + (f" until {preset.until.isoformat(' ')}" if preset.until else ""))
        for callback in setup.world.preset_callbacks:
            parts.append(f"callback {callback.id} to {callback.number} for {callback.queue} ({callback.state})")
        if setup.world.callbacks_down:
            parts.append("callback store unavailable")
    if setup.handoffs is not None:
        handoffs = (f"{h.outcome} after {h.after:g}s{_changes(h)}" for h in setup.handoffs.value)
        parts.append("handoffs " + ", ".join(handoffs))
    script = ", ".join(step.action.describe() for step in case.script) or "(silent caller)"
    return "; ".join(parts) + f"\n  caller script: {script}"


def _stats(stats: dict[str, Any]) -> str:
    """Queue statistics that differ from an empty queue's, as ``waiting=3, ready=1``."""
    return ", ".join(f"{stat}={value:g}" for stat, value in stats.items() if value != getattr(QueueStats, stat))


def _changes(handoff: HandoffResult) -> str:
    """What a hand-off result says changed in the queues meanwhile: `` (then support: waiting=6)``."""
    return "".join(
        f" (then {queue}: {', '.join(f'{stat}={value:g}' for stat, value in stats.items())})"
        for queue, stats in handoff.queues.items()
    )


def failure_report(result: CaseResult, transcript: bool = True) -> str:
    """The full story of a case that did not pass; empty for a passed case."""
    case = result.case
    if result.passed:
        return ""
    head = f"{LABELS[result.status]} {case.id} ({case.location})"
    if case.description:
        head += f"\n  {case.description}"
    if result.status == BROKEN:
        return f"{head}\n  the case cannot run:\n{textwrap.indent(case.problems.render(), '  ')}"
    if result.status == CRASHED:
        return f"{head}\n  the simulation crashed:\n{textwrap.indent(result.error or '', '    ')}"
    lines = [head]
    lines.extend(textwrap.indent(failure.render(_source(case)), "  ") for failure in result.failures)
    lines.append(f"  setup: {describe_setup(case)}")
    if result.result is not None:
        sim = result.result
        lines.append(f"  outcome: {sim.outcome} after {sim.seconds:.1f}s; vars: {sim.vars}")
        if transcript:
            lines.append("  transcript:")
            lines.append(textwrap.indent(sim.transcript(), "    "))
    return "\n".join(lines)


def suite_errors(suite: Suite) -> str:
    return f"ERROR {suite.file}: the file cannot run\n{textwrap.indent(suite.diagnostics.render(), '  ')}"


def summary(results: Sequence[CaseResult], broken_files: int = 0) -> str:
    """``N passed, M failed``: broken cases, crashes and broken files count as failed."""
    passed = sum(1 for r in results if r.passed)
    return f"{passed} passed, {len(results) - passed + broken_files} failed"
