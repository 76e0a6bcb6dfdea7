"""The QA suites in tests/queueing/suites against the flows in tests/queueing/flows.

The suites are not named ``*.test.yaml``: pytest's plugin would read them against the project's own flows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrkit.qa.runner import Project, failure_report, run_suites

HERE = Path(__file__).parent
SUITES = sorted((HERE / "suites").glob("*.yaml"))


@pytest.fixture(scope="module")
def project() -> Project:
    project = Project.load(HERE / "flows", HERE / "prompts")
    assert project.ok, project.diagnostics.render()
    return project


@pytest.mark.parametrize("path", SUITES, ids=lambda path: path.stem)
def test_every_case_passes(project: Project, path: Path) -> None:
    suite = project.suite(path)
    assert not suite.broken, suite.diagnostics.render()
    results = list(run_suites(project, [suite]))
    assert len(results) == len(suite.cases) > 0
    failed = [result for result in results if not result.passed]
    assert not failed, "\n\n".join(failure_report(result) for result in failed)
