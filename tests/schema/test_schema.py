"""``ivrkit schema``: the JSON Schema accepts what the loader accepts, rejects typos, and says where it comes from."""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ivrkit.cli import main
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import FLOW_OPTIONS, load_text
from ivrkit.flow.schema import flow_schema, schema_text
from ivrkit.flow.source import Mapping, Node, Scalar, Sequence, read_source
from ivrkit.steps import COMMON_OPTIONS, STEP_KINDS

jsonschema = pytest.importorskip("jsonschema", reason="the `test` extra installs jsonschema")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FLOWS = sorted((ROOT / "flows").glob("*.yaml"))


def as_json(text: str) -> Any:
    """YAML as an editor hands it to the schema: keys as typed, dates as text."""

    def convert(node: Node) -> Any:
        if isinstance(node, Mapping):
            return {key: convert(value) for key, value in node.items()}
        if isinstance(node, Sequence):
            return [convert(item) for item in node.items]
        assert isinstance(node, Scalar)
        value = node.value
        return value.isoformat() if isinstance(value, dt.date) else value

    root = read_source("test.yaml", textwrap.dedent(text), Diagnostics())
    assert root is not None
    return convert(root)


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(flow_schema())
    return [error.message for error in validator.iter_errors(document)]


def with_steps(steps: str) -> str:
    return "flow: t\nstart: a\nsteps:\n" + textwrap.indent(textwrap.dedent(steps), "  ")


def loads(text: str) -> bool:
    diagnostics = Diagnostics()
    return load_text(textwrap.dedent(text), "test.yaml", diagnostics) is not None and not diagnostics.errors


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = flow_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_built_from_the_field_specs() -> None:
    schema = flow_schema()
    assert list(schema["properties"]) == list(FLOW_OPTIONS)
    assert schema["required"] == ["flow", "start", "steps"]
    assert schema["additionalProperties"] is False
    any_of = schema["properties"]["steps"]["additionalProperties"]["anyOf"]
    assert [ref["$ref"] for ref in any_of] == [f"#/$defs/{kind}_step" for kind in STEP_KINDS]
    for kind, step_class in STEP_KINDS.items():
        step = schema["$defs"][f"{kind}_step"]
        assert step["required"][0] == kind
        assert step["additionalProperties"] is False
        assert list(step["properties"]) == [kind, *step_class.options, *COMMON_OPTIONS]
        assert step["description"] == step_class.summary
        assert all(prop.get("description") for prop in step["properties"].values()), kind


def test_descriptions_and_defaults_come_from_the_options() -> None:
    schema = flow_schema()
    timezone = schema["properties"]["timezone"]
    assert (timezone["description"], timezone["default"]) == (FLOW_OPTIONS["timezone"].help, "UTC")
    assert schema["properties"]["defaults"]["default"] == {"timeout": 5.0, "inter_digit_timeout": 3.0, "retries": 2}
    collect = schema["$defs"]["collect_step"]["properties"]["collect"]["properties"]
    assert collect["min_digits"]["default"] == 1
    assert collect["confirm"]["properties"]["yes"]["default"] == "1"
    assert schema["$defs"]["play_step"]["properties"]["barge_in"]["default"] is False
    assert "default" not in schema["$defs"]["play_step"]["properties"]["next"]


def test_patterns_are_portable_to_editors() -> None:
    # Editors evaluate patterns as JavaScript regular expressions: no Python-only syntax.
    text = schema_text()
    assert "(?P<" not in text
    for pattern in re.findall(r'"pattern": "((?:[^"\\]|\\.)*)"', text):
        re.compile(json.loads(f'"{pattern}"'))


@pytest.mark.parametrize("path", EXAMPLE_FLOWS, ids=lambda path: path.name)
def test_example_flows_validate(path: Path) -> None:
    assert schema_errors(as_json(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("kind", list(STEP_KINDS))
def test_every_step_example_validates(kind: str) -> None:
    document = as_json(with_steps(STEP_KINDS[kind].example))
    assert schema_errors(document) == []


# Each case: (steps, valid?) — the schema and the loader must agree (step names used here all exist).
CASES = [
    ("a: {play: welcome}", True),
    ("a: {paly: welcome}", False),  # misspelt kind
    ("a: {play: welcome, nxt: a}", False),  # unknown option
    ("a: {play: welcome, menu: {prompt: x, choices: {'1': a}}}", False),  # two kinds
    ("a: {play: welcome, cancel_key: none, note: hi}", True),
    ("a: {menu: {prompt: m, choices: {'1': a, '*': a}}}", True),
    ("a: {menu: {prompt: m, choices: {'12': a}}}", False),  # not one key
    ("a: {menu: {prompt: m, choices: {'1': a}, no_input: {retrys: 2}}}", False),  # nested typo
    ("a: {menu: {prompt: m, choices: {'1': a}, timeout: 5 parsecs}}", False),
    ("a: {menu: {prompt: m, choices: {'1': a}, timeout: 500ms}}", True),
    ("a: {menu: {prompt: m}}", False),  # choices required
    ("a: {queue: support, outcomes: {timeout: a}}", True),
    ("a: {queue: support, outcomes: {callback: a}}", True),  # an exit-key outcome (checked with the queue's keys)
    ("a: {queue: support, outcomes: {Timeout: a}}", False),  # outcomes are lower case
    ("a: {transfer: {to: PJSIP/op, timeout: 20s}, outcomes: {busy: a}}", True),
    ("a: {hangup: }", True),
    ("a: {hangup: {play: bye, outcome: done}}", True),
    ("a: {hangup: {play: bye, reason: done}}", False),
    ("a: {goto: {flow: billing, step: start}}", True),
    ("a: {goto: {flows: billing}}", False),
    ("a: {branch: [{if: 'vars.x > 1', then: a}], else: a}", True),
    ("a: {branch: [{if: 'vars.x > 1', then: a}]}", False),  # else required
    ("a: {collect: {into: account, prompt: p, confirm: {prompt: c, yes: '1'}}}", True),
    ("a: {say: {number: 42}}", True),
    ("a: {say: {numbr: 42}}", False),
]


@pytest.mark.parametrize(("steps", "valid"), CASES, ids=[case for case, _ in CASES])
def test_schema_agrees_with_the_loader(steps: str, valid: bool) -> None:
    text = with_steps(steps)
    assert loads(text) is valid, "the loader disagrees with this case"
    errors = schema_errors(as_json(text))
    assert (errors == []) is valid, errors


def test_top_level_typos_fail() -> None:
    assert schema_errors(as_json("flow: t\nstart: a\nstep: {a: {play: x}}"))  # `steps` missing, `step` unknown
    assert schema_errors(as_json("flow: t\nstart: a\ntimezon: UTC\nsteps: {a: {play: x}}"))
    assert schema_errors(as_json("flow: t\nstart: a\nsteps: {'bad name': {play: x}}"))


def test_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == flow_schema()


def test_cli_writes_the_schema_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "editor" / "flow.schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == schema_text()
    assert capsys.readouterr().out == ""


def test_cli_reports_an_unwritable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["schema", "--out", str(blocker / "flow.schema.json")]) == 1
    assert "cannot write" in capsys.readouterr().err
