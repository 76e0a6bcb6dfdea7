"""The compiled maintenance gate: an AstDB flag no longer keeps a call from the server; it is remembered and
counts only in the fallback, when the server cannot run the call. Every value read from AstDB passes FILTER()
and is only ever compared with the modes known when compiling.

The example flows' ``s`` extensions are walked here by a small reader of the few applications the path from
the gate to the fallback uses (Asterisk itself runs them in ``tests/asterisk/test_compiled_dialplan.py`` and
``tests/asterisk/test_maintenance.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest

from ivrkit.compiler import compile_flows
from ivrkit.compiler.render import EXTENSIONS_FILE
from ivrkit.flow.loader import load_directory
from tests.compiler.helpers import AGI, ROOT, catalog

FAMILY = "ivrkit-maintenance"
MODES = ("planned", "emergency", "closed")


def extensions() -> str:
    result = load_directory(ROOT / "flows")
    files = compile_flows(result.flows, result.diagnostics, catalog(), AGI)
    assert files is not None, result.diagnostics.render()
    return files[EXTENSIONS_FILE]


def s_extension(text: str, context: str) -> list[tuple[str | None, str, str]]:
    """(label, application, data) of each priority of ``s`` in ``context``, in order."""
    lines = text.split(f"\n[{context}]\n", 1)[1].split("\n[", 1)[0].splitlines()
    priorities: list[tuple[str | None, str, str]] = []
    in_s = False
    for line in lines:
        head = re.match(r"exten => ([^,]+),1,(.*)$", line)
        if head:
            in_s = head.group(1) == "s"
            if in_s:
                priorities.append(_priority(None, head.group(2)))
            continue
        step = re.match(r" same => n(?:\(([^)]+)\))?,(.*)$", line)
        if in_s and step:
            priorities.append(_priority(step.group(1), step.group(2)))
    return priorities


def _priority(label: str | None, body: str) -> tuple[str | None, str, str]:
    app, _, data = body.partition("(")
    return label, app, data[:-1]


def allowed(filter_set: str) -> set[str]:
    """The characters of a FILTER() set such as ``-a-z`` (a leading ``-`` is itself)."""
    chars: set[str] = set()
    i = 0
    while i < len(filter_set):
        if i + 2 < len(filter_set) and filter_set[i + 1] == "-":
            chars |= {chr(c) for c in range(ord(filter_set[i]), ord(filter_set[i + 2]) + 1)}
            i += 3
        else:
            chars.add(filter_set[i])
            i += 1
    return chars


def walk(text: str, flow: str, astdb: Mapping[str, str], server: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """The applications a call into ``ivrkit-<flow>`` runs up to its end: AstDB holds ``astdb`` (key → value)
    and the server sets ``server`` (None: it cannot be reached, nothing is set)."""
    priorities = s_extension(text, f"ivrkit-{flow}")
    labels = {label: i for i, (label, _, _) in enumerate(priorities) if label}
    variables: dict[str, str] = {}

    def expand(data: str) -> str:
        while True:
            inner = re.search(r"\$\{(DB|FILTER)\(([^${}]*)\)\}|\$\{([A-Z_]+)\}", data)
            if inner is None:
                return data
            if inner.group(1) == "DB":
                family, _, key = inner.group(2).partition("/")
                value = astdb.get(key, "") if family == FAMILY else ""
            elif inner.group(1) == "FILTER":
                characters, _, raw = inner.group(2).partition(",")
                value = "".join(c for c in raw if c in allowed(characters))
            else:
                value = variables.get(inner.group(3), "")
            data = data[: inner.start()] + value + data[inner.end() :]

    ran: list[tuple[str, str]] = []
    at = 0
    while at < len(priorities):
        _, app, data = priorities[at]
        at += 1
        if app == "GotoIf":
            condition, _, target = data.partition("?")
            compared = re.fullmatch(r'\$\["(\$\{\w+\})" (=|!=) "([-a-z]*)"\]', condition)
            assert compared, f"the walk reads only comparisons with a name: {data}"
            value, operator, name = expand(compared.group(1)), compared.group(2), compared.group(3)
            if (value == name) == (operator == "="):
                at = labels[target]
            continue
        ran.append((app, expand(data)))
        if app == "Set":
            name, _, value = data.partition("=")
            variables[name] = expand(value)
        elif app == "MSet":
            variables.update(dict(item.partition("=")[::2] for item in data.split(",")))
        elif app == "AGI":
            variables.update(server or {})
        elif app == "Goto":
            at = labels[data]
        elif app in ("Hangup", "Queue", "Dial"):
            return ran
    raise AssertionError(f"the walk fell off the end of ivrkit-{flow}: {ran}")


@pytest.fixture(scope="module")
def compiled() -> str:
    return extensions()


def played(ran: list[tuple[str, str]]) -> list[str]:
    return [data for app, data in ran if app == "Playback"]


@pytest.mark.parametrize("mode", MODES)
def test_a_flow_in_maintenance_still_reaches_the_server(compiled: str, mode: str) -> None:
    ran = walk(compiled, "support", {"support": mode}, {"IVRKIT_RESULT": "hangup"})
    assert ("AGI", "agi://127.0.0.1:4573/support") in ran
    assert played(ran) == [] and ran[-1] == ("Hangup", "")  # the server played the mode's handling itself


@pytest.mark.parametrize(("mode", "prompt"), [
    ("planned", "maintenance-planned"), ("emergency", "maintenance-emergency"), ("closed", "lines-closed"),
])  # fmt: skip
def test_with_the_server_down_the_flag_plays_its_mode_and_hangs_up(compiled: str, mode: str, prompt: str) -> None:
    ran = walk(compiled, "support", {"support": mode}, None)
    assert ("AGI", "agi://127.0.0.1:4573/support") in ran  # asked first: the flag alone keeps no call away
    assert played(ran) == [f"en/ivrkit/{prompt}"] and ran[-1] == ("Hangup", "")  # not the fallback queue


def test_the_global_flag_counts_for_a_flow_without_its_own(compiled: str) -> None:
    ran = walk(compiled, "billing", {"global": "emergency"}, {"IVRKIT_RESULT": "error"})  # the server failed
    assert played(ran) == ["en/ivrkit/maintenance-emergency"] and ran[-1] == ("Hangup", "")


def test_a_server_answer_the_dialplan_does_not_know_meets_the_flag_too(compiled: str) -> None:
    ran = walk(compiled, "billing", {"billing": "planned"}, {"IVRKIT_RESULT": "sing-a-song"})
    assert played(ran) == ["en/ivrkit/maintenance-planned"] and ran[-1] == ("Hangup", "")


@pytest.mark.parametrize("flags", [
    {},
    {"support": "none", "global": "emergency"},  # the flow's own flag wins, and 'none' is no mode
    {"support": "planned,${SHELL(id)}"},  # read as 'plannedshellid': not a mode, never expanded
    {"support": "Planned"},  # modes are lower case; FILTER drops the capital: 'lanned'
    {"global": "emergency-now"},
])  # fmt: skip
def test_without_a_known_mode_the_server_down_means_the_fallback(compiled: str, flags: dict[str, str]) -> None:
    ran = walk(compiled, "support", flags, None)
    assert played(ran) == ["en/ivrkit/technical-difficulties"] and ran[-1] == ("Queue", "support"), ran


def test_every_astdb_value_is_filtered_and_only_compared_with_compiled_modes(compiled: str) -> None:
    reads = re.findall(r"(.{0,40})\$\{DB\(([^)]*)\)\}", compiled)
    assert reads and all(before.endswith("${FILTER(-a-z,") for before, _ in reads), reads
    assert {key for _, key in reads} == {f"{FAMILY}/support", f"{FAMILY}/billing", f"{FAMILY}/global"}
    uses = [line for line in compiled.splitlines() if "IVRKIT_DP_GATE" in line and not line.startswith(";")]
    for line in uses:
        assert (
            re.fullmatch(r" same => n,Set\(IVRKIT_DP_GATE=\$\{FILTER\(-a-z,\$\{DB\([-a-z/]+\)\}\)\}\)", line)
            or line == ' same => n,GotoIf($["${IVRKIT_DP_GATE}" != ""]?maintenance)'
            or line == " same => n(maintenance),NoOp(maintenance flag: ${IVRKIT_DP_GATE})"
            or re.fullmatch(r' same => n,GotoIf\(\$\["\$\{IVRKIT_DP_GATE\}" = "(planned|emergency|closed)"\]'
                            r"\?maintenance-\1\)", line)
        ), line
    assert len(uses) == 2 * (3 + 1 + 3)  # per flow: two reads and the check, the NoOp, three comparisons
