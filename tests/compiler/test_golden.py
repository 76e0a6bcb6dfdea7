"""Golden files: the compiled output of the example flows in ``flows/``, byte for byte.

Any change to the templates, the plan or the example flows shows up here as a diff to review. After a change
you meant, regenerate them from the repository root and commit them with it::

    IVRKIT_UPDATE_GOLDEN=1 python3 -m pytest tests/compiler/test_golden.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from ivrkit.compiler import compile_flows
from ivrkit.flow.checks import check_flows
from ivrkit.flow.loader import load_directory
from tests.compiler.helpers import AGI, ROOT, catalog

GOLDEN = Path(__file__).parent / "golden"
UPDATE = "IVRKIT_UPDATE_GOLDEN"


def example_output() -> dict[str, str]:
    result = load_directory(ROOT / "flows")
    check_flows(result.flows, result.diagnostics, catalog())
    files = compile_flows(result.flows, result.diagnostics, catalog(), AGI)
    assert files is not None, result.diagnostics.render()
    return files


@pytest.mark.parametrize("name", ["extensions-ivrkit.conf", "queues-ivrkit.conf"])
def test_the_example_flows_compile_to_the_golden_files(name: str) -> None:
    text = example_output()[name]
    golden = GOLDEN / name
    if os.environ.get(UPDATE):
        golden.write_text(text, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8") if golden.is_file() else ""
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(golden), "compiled"))
        pytest.fail(f"{name} differs from its golden file; if the change is meant, run `{UPDATE}=1 python3 -m "
                    f"pytest tests/compiler/test_golden.py` and commit the result:\n{diff}", pytrace=False)


def test_no_stray_golden_files() -> None:
    assert sorted(path.name for path in GOLDEN.iterdir()) == sorted(example_output())
