"""``docs/flow-reference.md``: generated from the field specs, complete, and in step with the engine."""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from pathlib import Path

import pytest

from ivrkit.cli import main
from ivrkit.engine.channel import CallInfo
from ivrkit.engine.context import CallContext
from ivrkit.engine.journal import Journal
from ivrkit.engine.state import CallState
from ivrkit.engine.world import QueueStats, StaticWorld
from ivrkit.flow.diagnostics import Location
from ivrkit.flow.expressions import Template
from ivrkit.flow.fields import Key, ListOf, Text
from ivrkit.flow.loader import FLOW_OPTIONS
from ivrkit.flow.model import Flow
from ivrkit.flow.reference import QUEUE_STATS, REGENERATE, SCOPE, generate, type_words
from ivrkit.steps import COMMON_OPTIONS, STEP_KINDS

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "flow-reference.md"


def test_checked_in_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == generate(), (
        f"docs/flow-reference.md is out of date: run `{REGENERATE}` from the repository root"
    )


def test_cli_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--markdown"]) == 0
    assert capsys.readouterr().out == generate()


def test_every_option_and_step_is_documented() -> None:
    text = generate()
    for name in [*FLOW_OPTIONS, *COMMON_OPTIONS, "defaults.timeout", "defaults.retries"]:
        assert f"| `{name}` |" in text, name
    for kind, step_class in STEP_KINDS.items():
        assert f"### `{kind}`" in text
        assert step_class.example.rstrip() in text
        for option in step_class.options:
            assert f"| `{option}` |" in text
    nested = [
        "menu.no_input.retries",
        "menu.invalid.reprompts",
        "collect.confirm.yes",
        "collect.pattern",
        "branch[].if",
        "branch[].then",
        "goto.flow",
        "queue.priority",
        "transfer.timeout",
        "hangup.outcome",
    ]
    for name in nested:
        assert f"| `{name}` |" in text, name


def test_rows_show_type_default_and_required() -> None:
    text = generate()
    assert "| `collect.min_digits` | whole number | `1` |  | Fewest digits accepted. |" in text
    assert "| `collect.confirm.prompt` | prompt or list of prompts |  | yes |" in text
    assert '| `cancel_key` | DTMF key (0-9, * or #) or `none` | `"*"` |  |' in text
    assert "| `transfer.timeout` | duration such as 5s, 500ms or 2m | `30s` |" in text
    assert "| `play` | prompt or list of prompts |  | yes |" in text


def test_type_words() -> None:
    assert type_words(Text(choices=("a", "b"))) == "one of `a`, `b`"
    assert type_words(Key(allow_none=True)) == "DTMF key (0-9, * or #) or `none`"
    assert type_words(ListOf(Key(), single=False)) == "list of (DTMF key (0-9, * or #))"
    assert type_words(ListOf(Text(), single=True)) == "text, or a list of them"


def test_table_cells_escape_pipes() -> None:
    text = generate()
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = line.replace("\\|", "").strip("|").split("|")
            assert len(cells) in (2, 5), line


def test_sections() -> None:
    text = generate()
    for heading in [
        "## Top-level options",
        "### Business hours",
        "## Steps",
        "## Common options",
        "## Prompts and spoken values",
        "## Timing defaults",
        "## Expressions",
        "### Sandbox rules",
    ]:
        assert f"\n{heading}\n" in text
    assert "- `timeout`: `5s`." in text
    assert "```yaml\ntimezone: Europe/Berlin\n" in text  # the business-hours example, from hours.py


class _Channel:
    info = CallInfo("1.1", "+4930123", "Ann", "100", "PJSIP/x-1", "de", ("a",), {"k": "v"})

    def now(self) -> dt.datetime:
        return dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)

    def get_variable(self, name: str) -> str | None:
        return None


def test_documented_scope_matches_the_engine() -> None:
    flow = Flow("t", "t.yaml", Location("t.yaml", 1, 1), "a", {})
    context = CallContext(
        _Channel(),
        flow,
        CallState("t"),
        Journal(_Channel().now()),  # type: ignore[arg-type]
        StaticWorld({}, {}),
        lambda prompt, languages: languages[0],
    )
    scope = context.scope()
    documented = {name.split(".")[0] for name in SCOPE}
    assert documented == set(scope)
    for group in ("caller", "call"):
        assert {name.split(".")[1] for name in SCOPE if name.startswith(group + ".")} == set(scope[group])
    assert list(QUEUE_STATS) == [field.name for field in fields(QueueStats)]


def test_a_template_gets_only_the_names_it_reads() -> None:
    """A call renders several templates; each builds the parts of the scope it reads, not the whole scope."""
    read: list[str] = []

    class Channel(_Channel):
        def get_variable(self, name: str) -> str | None:
            read.append(name)
            return "3"

    class World(StaticWorld):
        def maintenance(self, flow: str, now: dt.datetime) -> None:
            raise AssertionError("maintenance was read for a template that does not use it")

    flow = Flow("t", "t.yaml", Location("t.yaml", 1, 1), "a", {})
    context = CallContext(
        Channel(), flow, CallState("t"), Journal(Channel().now()), World({}, {}),  # type: ignore[arg-type]
        lambda prompt, languages: languages[0],
    )  # fmt: skip
    assert set(context.scope({"vars", "channel"})) == {"vars", "channel"}
    assert context.render(Template.compile("{{ channel.QUEUE_WAITING or 0 }}")) == "3"
    assert context.render(Template.compile("{{ vars | length }}")) == 0
    assert read == ["QUEUE_WAITING"]
    with pytest.raises(AssertionError, match="maintenance was read"):
        context.render(Template.compile("{{ maintenance }}"))  # the negative control: a template that reads it
