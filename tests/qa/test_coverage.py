"""Coverage: steps entered, menu choices taken and prompts heard per flow, and what was never reached."""

from __future__ import annotations

import textwrap

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_text
from ivrkit.qa.coverage import Coverage
from ivrkit.qa.runner import Project
from tests.qa.conftest import Run


def coverage_of(demo: Project, run: Run, *presses: str) -> Coverage:
    cases = "\n".join(f"  c{i}: {{press: {keys}, expect: {{outcome: x}}}}" for i, keys in enumerate(presses))
    coverage = Coverage(demo.flows)
    for result in run(f"flow: demo\ncases:\n{cases}\n").values():
        assert result.result is not None
        coverage.add(result.result)
    return coverage


def test_one_call_reaches_what_it_entered_chose_and_heard(demo: Project, run: Run) -> None:
    demo_cover = coverage_of(demo, run, "[1]").flows["demo"]
    assert demo_cover.steps.reached == {"hours_check", "menu", "thanks", "thanks_play"}
    assert (demo_cover.steps.hits, len(demo_cover.steps.items)) == (4, 9)
    assert demo_cover.choices.items == ["menu 1→thanks", "menu 2→queue_it", "menu 3→account", "menu 4→busy_check"]
    assert demo_cover.choices.reached == {"menu 1→thanks"}
    assert demo_cover.prompts.items == ["demo-menu", "demo-invalid", "demo-account", "demo-thanks", "demo-closed"]
    assert demo_cover.prompts.unreached == ["demo-invalid", "demo-account", "demo-closed"]


def test_calls_add_up_and_invalid_keys_are_not_choices(demo: Project, run: Run) -> None:
    coverage = coverage_of(demo, run, "[1]", "[7, 2]", "[1]")
    cover = coverage.flows["demo"]
    assert coverage.calls == 3
    assert cover.choices.unreached == ["menu 3→account", "menu 4→busy_check"]  # key 7 is not a choice
    assert cover.steps.unreached == ["account", "busy_check", "closed", "note_left"]
    assert cover.prompts.unreached == ["demo-account", "demo-closed"]


def test_the_table_lists_every_flow_and_everything_unreached(demo: Project, run: Run) -> None:
    table = coverage_of(demo, run, "[1]", "[7, 2]").table()
    assert table == textwrap.dedent("""\
        coverage over 2 simulated call(s)
        flow  steps           menu choices    prompts
        demo    5/9    55.6%    2/4    50.0%    3/5    60.0%
        demo: steps never entered: account, busy_check, closed, note_left
        demo: menu choices never taken: menu 3→account, menu 4→busy_check
        demo: prompts never heard: demo-account, demo-closed""")


def test_untested_flows_show_zero_and_flows_without_menus_show_a_dash(demo: Project) -> None:
    diagnostics = Diagnostics()
    plain = load_text("flow: plain\nstart: bye\nsteps:\n  bye: {hangup: true}\n", "plain.yaml", diagnostics)
    assert plain is not None, diagnostics.render()
    coverage = Coverage({**demo.flows, "plain": plain})
    lines = coverage.table().splitlines()
    assert lines[2].split() == ["demo", "0/9", "0.0%", "0/4", "0.0%", "0/5", "0.0%"]
    assert lines[3].split() == ["plain", "0/1", "0.0%", "-", "-"]
    assert "plain: steps never entered: bye" in lines
