"""``ivrkit check`` on the deliberately broken flows in ``tests/flow/broken/``: the exact text a designer sees.

Each directory holds one mistake (``several`` holds a few); the expected lines below are the complete list of
``file:line:col: severity: message`` lines for it, so a missing, extra or moved report fails the test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.flow.helpers import CheckRun

BROKEN = Path(__file__).parent / "broken"
PROMPTS = "tests/flow/prompts"
HEADER = re.compile(r"^\S+:\d+:\d+: (error|warning): ")

CASES: dict[str, list[str]] = {
    "unknown_step": ["flow.yaml:7:11: error: unknown step 'main_mnu'"],
    "unknown_start": ["flow.yaml:3:8: error: unknown step 'greting'"],
    "unknown_flow": ["support.yaml:11:18: error: unknown flow 'biling'"],
    "error_in_a_named_flow": ["billing.yaml:6:5: error: unknown step kind 'hangpu'"],
    "unknown_flow_step": [
        "billing.yaml:5:3: warning: step 'identify' is never reached",
        "support.yaml:11:33: error: flow 'billing' has no step 'identfy'",
    ],
    "unknown_schedule": ["flow.yaml:10:12: error: unknown schedule 'ofice'"],
    "unreachable_step": ["flow.yaml:8:3: warning: step 'old_menu' is never reached"],
    "no_way_out": ["flow.yaml:5:3: error: step 'greeting' has no way out: add `next: <step>`"],
    "trapped": [
        "flow.yaml:5:3: error: callers can never leave steps 'main_menu', 'greeting': no hangup, queue, transfer "
        "or other flow can be reached from here"
    ],
    "loop_without_input": ["flow.yaml:8:3: error: steps loop without waiting for the caller: count -> check -> count"],
    "cancel_key_clash": ["flow.yaml:10:9: error: key '*' is the cancel key here, so this choice can never be made"],
    "terminator_clash": [
        "flow.yaml:9:19: error: the terminator '*' is also the cancel key here: pressing it would cancel the entry "
        "instead of ending it"
    ],
    "confirm_keys": ["flow.yaml:9:102: error: the confirmation keys for yes and no are both '1'"],
    "menu_without_failed": ["flow.yaml:5:3: warning: callers who fail this menu are disconnected"],
    "hangup_handler": [
        "flow.yaml:10:11: error: the on_hangup handler leads to step 'sorry', but a play step cannot run after the "
        "caller hung up"
    ],
    "missing_prompt": ["flow.yaml:6:12: error: prompt 'welcom' is not in the 'en' catalog"],
    "digit_range": ["flow.yaml:9:19: error: min_digits (10) is more than max_digits (8)"],
    "dial_injection": [
        "flow.yaml:6:15: error: 'PJSIP/operator&Local/s@admin,,U(spy)' is not an endpoint or a number"
    ],
    "duplicate_key": ["flow.yaml:8:5: error: duplicate key 'next' (first defined at line 7)"],
    "unquoted_star": [
        "flow.yaml:11:10: error: invalid YAML: expected alphabetic or numeric character, but found ':'"
    ],
    "unknown_kind": ["flow.yaml:6:5: error: unknown step kind 'paly'"],
    "maintenance": [
        "flow.yaml:6:59: error: unknown step 'main_mnu'",
        "flow.yaml:7:29: error: 'PJSIP/standby&Local/s@admin' is not an endpoint or a number",
        "flow.yaml:11:7: warning: this closed window overlaps the one at line 9 (2026-12-24 12:00 to 2026-12-27 08:00)",
    ],
    "maintenance_values": [
        "flow.yaml:5:19: error: `transfer` needs a target",
        "flow.yaml:7:56: error: the window ends (2026-12-01 20:00) before it starts (2026-12-01 22:00)",
        "flow.yaml:8:35: error: 0 is too small: the minimum is 1",
        "flow.yaml:8:54: error: an error rate of 150% is out of range",
    ],
    "tabs": ["flow.yaml:6:1: error: invalid YAML: found character '\\t' that cannot start any token"],
    "time_as_number": ["flow.yaml:8:43: error: '10:00' was read as a number"],
    "several": [
        "flow.yaml:7:21: error: prompt 'closd' is not in the 'en' catalog",
        "flow.yaml:9:3: warning: callers who fail this menu are disconnected",
        "flow.yaml:12:46: error: key '*' is the cancel key here, so this choice can never be made",
        "flow.yaml:18:11: error: unknown step 'operatr'",
        "flow.yaml:22:11: error: the on_hangup handler leads to step 'goodbye', but a hangup step cannot run after "
        "the caller hung up",
        "flow.yaml:23:3: error: step 'leftover' has no way out: add `next: <step>`",
    ],
}


UNUSED = re.compile(rf"^{PROMPTS}/en/catalog\.yaml:\d+:1: warning: prompt '[a-z-]+' is not played by any flow in 'en'$")


def headers(output: str) -> list[str]:
    return [line for line in output.splitlines() if HEADER.match(line)]


def flow_headers(output: str) -> list[str]:
    """The headers about the flows; the rest must be the catalog's prompts these flows do not play (the
    catalog serves every broken flow, each plays only a few)."""
    found = headers(output)
    others = [line for line in found if not line.startswith("tests/flow/broken/")]
    assert all(UNUSED.match(line) for line in others), others
    return [line for line in found if line.startswith("tests/flow/broken/")]


def summary(expected: list[str], files: int, unused: int = 0) -> str:
    errors = sum(": error: " in line for line in expected)
    warnings = len(expected) - errors + unused

    def count(n: int, noun: str) -> str:
        return f"{n} {noun}" + ("" if n == 1 else "s")

    return f"{count(errors, 'error')}, {count(warnings, 'warning')} in {count(files, 'flow')}"


def test_every_broken_directory_has_expectations() -> None:
    assert sorted(p.name for p in BROKEN.iterdir() if p.is_dir()) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_flow_is_reported_exactly(case: str, ivrkit_check: CheckRun) -> None:
    status, out = ivrkit_check("--flows", f"tests/flow/broken/{case}", "--prompts", PROMPTS)
    expected = CASES[case]
    assert flow_headers(out) == [f"tests/flow/broken/{case}/{line}" for line in expected]
    files = len(list((BROKEN / case).glob("*.yaml")))
    assert out.splitlines()[-1] == summary(expected, files, len(headers(out)) - len(expected))
    assert status == (1 if any(": error: " in line for line in expected) else 0)


def test_report_shows_source_line_caret_and_hint(ivrkit_check: CheckRun) -> None:
    _, out = ivrkit_check("--flows", "tests/flow/broken/unknown_step", "--prompts", PROMPTS)
    assert out.splitlines()[:4] == [
        "tests/flow/broken/unknown_step/flow.yaml:7:11: error: unknown step 'main_mnu'",
        "        next: main_mnu",
        "              ^",
        "    hint: did you mean 'main_menu'?",
    ]


@pytest.mark.parametrize(
    ("case", "hint"),
    [
        ("unknown_kind", "did you mean 'play'?"),
        ("unknown_flow", "did you mean 'billing'?"),
        ("unknown_flow_step", "did you mean 'identify'?"),
        ("unknown_schedule", "did you mean 'office'?"),
        ("missing_prompt", "did you mean 'welcome'?"),
        ("unquoted_star", 'quote keys such as "*" and "#": in YAML a bare * starts an alias and # a comment'),
        ("tabs", "YAML indentation must use spaces, not tabs"),
        ("time_as_number", 'quote opening times: "08:00-20:00"'),
        ("cancel_key_clash", "use another key, or turn the cancel key off for this step with `cancel_key: none`"),
        ("maintenance", "did you mean 'main_menu'?"),
        ("maintenance", "join them into one window: callers would hear the end of whichever started last"),
        ("maintenance_values", "write {transfer: PJSIP/standby} or {transfer: {to: ..., timeout: 30s}}"),
        ("maintenance_values", "`until` is the end: put it after `from`"),
        ("maintenance_values", "write a fraction above 0 and below 1 (0.5), or a percentage (50%)"),
    ],
)
def test_hints(case: str, hint: str, ivrkit_check: CheckRun) -> None:
    _, out = ivrkit_check("--flows", f"tests/flow/broken/{case}", "--prompts", PROMPTS)
    assert f"    hint: {hint}" in out.splitlines()


def test_warnings_alone_pass_unless_strict(ivrkit_check: CheckRun) -> None:
    status, _ = ivrkit_check("--flows", "tests/flow/broken/unreachable_step", "--prompts", PROMPTS)
    strict, _ = ivrkit_check("--flows", "tests/flow/broken/unreachable_step", "--prompts", PROMPTS, "--strict")
    assert (status, strict) == (0, 1)


def test_json_format(ivrkit_check: CheckRun) -> None:
    status, out = ivrkit_check("--flows", "tests/flow/broken/unknown_start", "--prompts", PROMPTS, "--format", "json")
    assert status == 1
    assert json.loads(out) == [
        {
            "file": "tests/flow/broken/unknown_start/flow.yaml",
            "line": 3,
            "column": 8,
            "severity": "error",
            "message": "unknown step 'greting'",
            "hint": "did you mean 'greeting'?",
        }
    ]


def test_json_lists_diagnostics_sorted_by_position(ivrkit_check: CheckRun) -> None:
    _, out = ivrkit_check("--flows", "tests/flow/broken/several", "--prompts", PROMPTS, "--format", "json")
    items = json.loads(out)
    assert [(item["line"], item["severity"]) for item in items] == [
        (7, "error"), (9, "warning"), (12, "error"), (18, "error"), (22, "error"), (23, "error")
    ]


def test_prompts_are_not_checked_without_a_catalog(ivrkit_check: CheckRun, tmp_path: Path) -> None:
    status, out = ivrkit_check("--flows", "tests/flow/broken/missing_prompt", "--prompts", str(tmp_path / "none"))
    assert (status, out.strip()) == (0, "ok: 1 flow checked")


def test_missing_flow_directory(ivrkit_check: CheckRun) -> None:
    status, out = ivrkit_check("--flows", "tests/flow/no-such-dir", "--prompts", PROMPTS)
    assert status == 1
    assert headers(out) == ["tests/flow/no-such-dir:1:1: error: no such flow directory"]


def test_empty_flow_directory(ivrkit_check: CheckRun, tmp_path: Path) -> None:
    status, out = ivrkit_check("--flows", str(tmp_path), "--prompts", PROMPTS)
    assert status == 1
    assert "error: no flow files in this directory" in out


def test_example_flows_are_clean(ivrkit_check: CheckRun) -> None:
    status, out = ivrkit_check("--flows", "flows", "--prompts", "prompts", "--strict")
    flows = len(list(Path("flows").glob("*.yaml")))
    assert (status, out.strip()) == (0, f"ok: {flows} flows checked")
