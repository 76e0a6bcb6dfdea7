"""The flows a running server serves, reloaded on change without dropping calls.

Each session takes the engine current when it starts and keeps it to the end, so a reload never changes a
call midway. A flow whose file fails to load or check (a prompt it plays missing from its language's catalog
included) keeps its previous version serving; the errors are logged as ``file:line:col`` like ``ivrkit check``
prints them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ivrkit.engine.runner import Engine, first_language
from ivrkit.engine.world import StaticWorld, World
from ivrkit.flow.checks import check_flows
from ivrkit.flow.loader import flow_files, load_directory
from ivrkit.flow.model import Flow
from ivrkit.prompts.catalog import CATALOG_FILE, PromptCatalog
from ivrkit.prompts.languages import LANGUAGE_CODE

log = logging.getLogger("ivrkit.flows")

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass
class ReloadReport:
    loaded: list[str] = field(default_factory=list)  # flows now serving their newest version
    kept: list[str] = field(default_factory=list)  # flows that failed and keep serving their previous version
    failed: list[str] = field(default_factory=list)  # flows that failed and have no previous version
    removed: list[str] = field(default_factory=list)  # flows whose file is gone
    errors: list[str] = field(default_factory=list)  # rendered diagnostics

    @property
    def ok(self) -> bool:
        return not self.errors


class FlowLibrary:
    def __init__(self, flows_dir: Path, prompts_dir: Path | None = None, world: World | None = None):
        self.flows_dir = flows_dir
        self.prompts_dir = prompts_dir
        self.world = world or StaticWorld({}, {})
        self._engine = Engine({}, self.world)
        self._fingerprint: Fingerprint = ()
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The engine for a new session (a snapshot: later reloads do not change it)."""
        return self._engine

    @property
    def flows(self) -> dict[str, Flow]:
        return dict(self._engine.flows)

    def fingerprint(self) -> Fingerprint:
        """Names, sizes and modification times of the flow and catalog files, and of the language folders (a
        recording added or removed changes its folder): cheap to poll."""
        paths = flow_files(self.flows_dir) if self.flows_dir.is_dir() else []
        if self.prompts_dir is not None and self.prompts_dir.is_dir():
            folders = sorted(p for p in self.prompts_dir.iterdir() if p.is_dir() and LANGUAGE_CODE.match(p.name))
            paths += [path for folder in folders for path in (folder, folder / CATALOG_FILE)]
        entries = []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(entries)

    def changed(self) -> bool:
        return self.fingerprint() != self._fingerprint

    def reload(self) -> ReloadReport:
        """Load every flow file again and swap in what is good; log what is not."""
        with self._lock:
            fingerprint = self.fingerprint()
            result = load_directory(self.flows_dir)
            catalog = None
            if self.prompts_dir is not None and self.prompts_dir.is_dir():
                catalog = PromptCatalog.load(self.prompts_dir)
            check_flows(result.flows, result.diagnostics, catalog, result.unloaded)
            errors = result.diagnostics.errors
            bad_files = {diagnostic.location.file for diagnostic in errors}
            if catalog is not None:  # a catalog mistake is logged; the flows that play its prompts still load
                errors += catalog.diagnostics.errors
            previous = self._engine.flows
            report = ReloadReport(errors=[diagnostic.render() for diagnostic in errors])
            flows: dict[str, Flow] = {}
            for name, flow in result.flows.items():
                if flow.location.file in bad_files:
                    result.unloaded.add(name)
                else:
                    flows[name] = flow
                    report.loaded.append(name)
            for name in sorted(result.unloaded):
                if name in previous:
                    flows[name] = previous[name]
                    report.kept.append(name)
                else:
                    report.failed.append(name)
            report.removed = sorted(set(previous) - set(flows) - result.unloaded)
            # a prompt missing in the call's language plays in its base language, else the flow's (the catalog knows)
            self._engine = Engine(flows, self.world, catalog.language_for if catalog is not None else first_language)
            self._fingerprint = fingerprint
        self._log(report)
        return report

    def _log(self, report: ReloadReport) -> None:
        for error in report.errors:
            log.error("flow error: %s", error)
        if report.kept:
            log.error("flows keep their previous version until fixed: %s", ", ".join(report.kept))
        if report.failed:
            log.error("flows not served (they never loaded): %s", ", ".join(report.failed))
        if report.removed:
            log.warning("flows no longer served (file removed): %s", ", ".join(report.removed))
        log.info(
            "flows loaded: %s",
            ", ".join(sorted(self._engine.flows)) or "none",
            extra={"flows": len(self._engine.flows), "ok": report.ok},
        )
