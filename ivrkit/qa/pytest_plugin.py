"""pytest plugin: every ``*.test.yaml`` file is a test module and every case in it a test.

Registered through the ``pytest11`` entry point, so ``pytest`` in a project with flow tests runs them next
to its Python tests, with ``-k``, ``-x`` and the usual reports. Failures show the same report as
``ivrkit test``. The flows and prompts are loaded once per session (per directory pair).

Options: ``--ivrkit-flows DIR`` / ``--ivrkit-prompts DIR`` on the command line (relative to where pytest
runs), or ``ivrkit_flows`` / ``ivrkit_prompts`` in the ini file (relative to the rootdir); defaults
``flows`` and ``prompts``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ivrkit.qa import TEST_SUFFIXES

if TYPE_CHECKING:  # the runner (flows, engine, Jinja2) is imported only once a flow test is collected
    from ivrkit.qa.model import FlowTest
    from ivrkit.qa.runner import CaseResult, Project

_PROJECTS = pytest.StashKey[dict[tuple[Path, Path], "Project"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ivrkit", "ivrkit flow tests (*.test.yaml)")
    group.addoption("--ivrkit-flows", dest="ivrkit_flows", metavar="DIR", default=None,
                    help="flow directory for *.test.yaml files (default: ini ivrkit_flows, else flows/)")
    group.addoption("--ivrkit-prompts", dest="ivrkit_prompts", metavar="DIR", default=None,
                    help="prompt catalog directory (default: ini ivrkit_prompts, else prompts/)")
    parser.addini("ivrkit_flows", "flow directory for *.test.yaml files, relative to the rootdir", default="flows")
    parser.addini("ivrkit_prompts", "prompt catalog directory, relative to the rootdir", default="prompts")


def _directory(config: pytest.Config, name: str) -> Path:
    given = config.getoption(name)
    if given:
        return (config.invocation_params.dir / given).resolve()
    return (config.rootpath / str(config.getini(name))).resolve()


def project_for(config: pytest.Config) -> Project:
    """The session's project for the configured directories, loaded on first use."""
    from ivrkit.qa.runner import Project

    flows, prompts = _directory(config, "ivrkit_flows"), _directory(config, "ivrkit_prompts")
    projects = config.stash.setdefault(_PROJECTS, {})
    if (flows, prompts) not in projects:
        projects[(flows, prompts)] = Project.load(flows, prompts)
    return projects[(flows, prompts)]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(TEST_SUFFIXES):
        return FlowTestFile.from_parent(parent, path=file_path)
    return None


class FlowTestFile(pytest.File):
    """A ``*.test.yaml`` file; its problems are collection errors, shown at their line and column."""

    def collect(self) -> Iterator[FlowTestItem]:
        project = project_for(self.config)
        if not project.ok:
            raise self.CollectError(
                f"the flows in {project.flows_dir} have errors, so no flow test can run:\n"
                + project.diagnostics.render()
            )
        suite = project.suite(self.path)
        if suite.broken:
            raise self.CollectError(suite.diagnostics.render())
        for case in suite.cases:
            yield FlowTestItem.from_parent(self, name=case.name, case=case)


class FlowTestFailed(Exception):
    """Raised by a failing case; carries the result for the report."""

    def __init__(self, result: CaseResult):
        super().__init__(result.case.id)
        self.result = result


class FlowTestItem(pytest.Item):
    """One case: a simulated call and its expectations."""

    def __init__(self, *, case: FlowTest, **kwargs: Any):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        from ivrkit.qa.runner import run_case

        result = run_case(project_for(self.config), self.case)
        if not result.passed:
            raise FlowTestFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, FlowTestFailed):
            from ivrkit.qa.runner import failure_report

            return failure_report(excinfo.value.result)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.location.line - 1, f"{self.case.flow}: {self.case.name}"
