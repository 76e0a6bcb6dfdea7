"""The flow file's `maintenance:` block: modes, actions, windows and breaker, read and checked with positions."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import pytest

from ivrkit.flow.maintenance import HANGUP, Action, Breaker, DeclaredWindow, ModeHandling, TimeWords
from ivrkit.maintenance.model import Mode, Source, declared_id
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.steps.queue import QueueSpec
from tests.flow.helpers import check, flow, hints, load, messages

STEPS = "  a:\n    play: p\n    next: end\n  offer:\n    hangup: {play: p}\n"  # offer: only a goto reaches it
REACHED = "  a:\n    play: p\n    next: offer\n  offer:\n    play: p\n    next: end\n"  # every step reached
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def with_block(block: str, top: str = "", steps: str = STEPS) -> str:
    """A flow whose `maintenance:` block is ``block`` (indented by two spaces), with steps a, offer and end."""
    return flow(steps, top=f"{top}maintenance:\n{block}")


def test_the_full_block_loads() -> None:
    loaded, diagnostics = load(with_block(
        "  planned: {prompt: [p, q], then: hangup}\n"
        "  emergency: {prompt: p, reopening: none, then: {goto: offer}}\n"
        "  closed: {reopening: [back, again], then: {transfer: {to: PJSIP/standby, timeout: 20s}}}\n"
        "  time_words: {today: heute-um}\n"
        "  windows:\n"
        '    - {mode: planned, from: "2026-12-01T22:00", until: "2026-12-02T02:00", reason: database upgrade}\n'
        '    - {mode: closed, from: "2026-12-24T12:00+01:00", until: "2026-12-27T08:00+01:00"}\n'
        "  breaker: {max_calls_per_minute: 300, max_error_rate: 50%, min_calls: 10, quiet: 5m, clear: operator}\n",
        top="timezone: Europe/Berlin\n",
    ))
    assert loaded is not None and not diagnostics.items, diagnostics.render()
    settings = loaded.maintenance
    assert settings is not None
    assert settings.planned == ModeHandling(("p", "q"), ("we-reopen",), HANGUP)
    assert settings.emergency == ModeHandling(("p",), (), Action("goto", step="offer"))
    closed = settings.closed
    assert closed.prompt is None and closed.reopening == ("back", "again")
    assert closed.then.kind == "transfer" and closed.then.transfer is not None
    assert (closed.then.transfer.to.source, closed.then.transfer.timeout) == ("PJSIP/standby", 20.0)
    assert settings.time_words == TimeWords(today="heute-um")
    assert settings.breaker == Breaker(300, 0.5, 10, 300.0, "operator")
    assert [(w.mode, w.starts_at, w.reason) for w in settings.declared] == [
        (Mode.PLANNED, dt.datetime(2026, 12, 1, 22, 0), "database upgrade"),
        (Mode.CLOSED, dt.datetime(2026, 12, 24, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))), ""),
    ]
    upgrade = settings.windows[0]  # bound to the flow: its scope, its timezone, from the schedule, by its file
    assert (upgrade.scope, upgrade.source, upgrade.by) == ("support", Source.SCHEDULE, "flow.yaml")
    assert upgrade.starts_at == dt.datetime(2026, 12, 1, 22, 0, tzinfo=BERLIN)
    assert upgrade.ends_at == dt.datetime(2026, 12, 2, 2, 0, tzinfo=BERLIN)
    # the id the store keeps it under: the same whenever the file is read
    assert upgrade.id == declared_id("support", Mode.PLANNED, upgrade.starts_at, upgrade.ends_at, "database upgrade")


def test_a_queue_action_and_the_defaults() -> None:
    loaded, diagnostics = load(with_block("  closed: {then: {queue: {name: backup, timeout: 5m, priority: 3}}}\n"
                                          "  planned: {then: {queue: backup}}\n"))
    assert loaded is not None and not diagnostics.items, diagnostics.render()
    settings = loaded.maintenance
    assert settings is not None
    assert settings.closed.then == Action("queue", queue=QueueSpec("backup", 300.0, 3))
    assert settings.planned.then == Action("queue", queue=QueueSpec("backup"))
    assert settings.emergency == ModeHandling()  # not written: the gate's prompt, the spoken end, a hang-up
    assert settings.windows == () and settings.breaker is None


def test_a_flow_without_the_block_and_old_gate_prompts_load_as_before() -> None:
    loaded, diagnostics = load(flow(STEPS, top="dialplan:\n  maintenance: {planned: p, closed: q}\n"))
    assert loaded is not None and not diagnostics.items, diagnostics.render()
    assert loaded.maintenance is None
    assert (loaded.dialplan.maintenance.planned, loaded.dialplan.maintenance.closed) == ("p", "q")
    assert loaded.dialplan.maintenance.emergency == "maintenance-emergency"


def test_the_gate_plays_each_modes_first_prompt_unless_the_dialplan_names_its_own() -> None:
    loaded, _ = load(with_block("  planned: {prompt: [upgrade, later]}\n  closed: {prompt: shut}\n",
                                top="dialplan:\n  maintenance: {closed: gate-closed}\n"))
    assert loaded is not None
    gate = loaded.dialplan.maintenance
    assert (gate.planned, gate.emergency, gate.closed) == ("upgrade", "maintenance-emergency", "gate-closed")


@pytest.mark.parametrize(
    ("block", "expected", "hint"),
    [
        ("  planned: {then: goto}\n", "4:19: error: `goto` needs a target", "write {goto: STEP}"),
        ("  planned: {then: queue}\n", "4:19: error: `queue` needs a target",
         "write {queue: backup} or {queue: {name: backup, timeout: 10m}}"),
        ("  planned: {then: {goto: offer, queue: backup}}\n", "4:33: error: the mode has two actions, goto and queue",
         "choose one: hangup, goto, transfer or queue"),
        ("  planned: {then: {}}\n", "4:19: error: the action is empty",
         "write hangup, {goto: STEP}, {transfer: DEST} or {queue: NAME}"),
        ("  planned: {then: {hangup: false}}\n", "4:28: error: `hangup: false` is not an action",
         "write hangup, or another action"),
        ("  planned: {then: [hangup]}\n", "4:19: error: expected hangup, {goto: STEP}, {transfer: DEST} or "
         "{queue: NAME}, got a list", None),
        ("  planned: {prompts: p}\n", "4:13: error: unknown option 'prompts' in planned maintenance",
         "did you mean 'prompt'?"),
        ("  planed: {prompt: p}\n", "4:3: error: unknown option 'planed' in maintenance settings",
         "did you mean 'planned'?"),
        ("  closed: {prompt: Closed}\n", "4:20: error: 'Closed' is not a valid prompt id",
         "use lower-case letters, digits, '-', '_' and '/', e.g. 'main-menu'"),
        ("  windows: [{mode: planed, from: '2026-12-01T22:00', until: '2026-12-02T02:00'}]\n",
         "4:20: error: 'planed' is not one of: planned, emergency, closed", "did you mean 'planned'?"),
        ("  windows: [{mode: planned, from: tomorrow, until: '2026-12-02T02:00'}]\n",
         "4:35: error: expected a date and time such as 2026-12-01T22:00, got 'tomorrow'",
         "write YYYY-MM-DDTHH:MM, in the flow's timezone, or with an offset such as +01:00"),
        ("  windows: [{mode: planned, from: '2026-12-01T22:00'}]\n",
         "4:13: error: maintenance window needs 'until': When it ends (the time callers hear).", None),
        ("  windows: [{mode: planned, from: '2026-12-01T22:00', until: '2026-12-01T22:00'}]\n",
         "4:62: error: the window ends (2026-12-01 22:00) before it starts (2026-12-01 22:00)",
         "`until` is the end: put it after `from`"),
        ("  windows: [{mode: planned, from: '2026-12-01T22:00+01:00', until: '2026-12-02T02:00'}]\n",
         "4:68: error: `from` and `until` mix a time with an offset and one without",
         "give both an offset, or neither (then both are in the flow's timezone)"),
        ("  windows: {mode: planned}\n",
         "4:12: error: expected a list of windows such as [{mode, from, until}], got a mapping", None),
        ("  breaker: {min_calls: 5}\n", "4:12: error: the breaker has no threshold, so it would never trip",
         "give max_calls_per_minute, max_error_rate or both"),
        ("  breaker: {max_error_rate: 0.5, quiet: 30s}\n",
         "4:41: error: a quiet period of 30s is shorter than the minute the breaker measures", "use 1m or more"),
        ("  breaker: {max_error_rate: 100%}\n", "4:29: error: an error rate of 100% is out of range",
         "write a fraction above 0 and below 1 (0.5), or a percentage (50%)"),
        ("  breaker: {max_error_rate: 0}\n", "4:29: error: an error rate of 0 is out of range",
         "write a fraction above 0 and below 1 (0.5), or a percentage (50%)"),
        ("  breaker: {max_error_rate: half}\n",
         "4:29: error: expected a rate such as 0.5 or 50%, got 'half'", None),
        ("  breaker: {max_calls_per_minute: 300, clear: never}\n",
         "4:47: error: 'never' is not one of: auto, operator", None),
    ],
)
def test_mistakes_are_reported_where_they_are_written(block: str, expected: str, hint: str | None) -> None:
    loaded, diagnostics = load(with_block(block))
    assert loaded is None
    assert messages(diagnostics) == [expected]
    assert hints(diagnostics) == [hint]


def test_a_goto_to_an_unknown_step_is_a_check_error_and_the_target_counts_as_reached() -> None:
    diagnostics = check(with_block("  emergency: {then: {goto: ofer}}\n"))
    assert messages(diagnostics) == ["4:28: error: unknown step 'ofer'"]
    assert hints(diagnostics) == ["did you mean 'offer'?"]
    assert not check(with_block("  emergency: {then: {goto: offer}}\n")).items  # `offer` is reached: no warning
    unused = check(flow(STEPS))
    assert messages(unused) == ["7:3: warning: step 'offer' is never reached"]
    assert hints(unused) == ["nothing leads to it from `start`, `on_error`, `on_hangup`, `maintenance` or another "
                             "step"]


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        # the same mode, overlapping: a warning at the later one
        (["planned, from: '2026-12-01T22:00', until: '2026-12-02T02:00'",
          "planned, from: '2026-12-02T01:00', until: '2026-12-02T03:00'"],
         ["7:7: warning: this planned window overlaps the one at line 6 (2026-12-01 22:00 to 2026-12-02 02:00)"]),
        # back to back is not overlapping: a window ends before its end
        (["planned, from: '2026-12-01T22:00', until: '2026-12-02T02:00'",
          "planned, from: '2026-12-02T02:00', until: '2026-12-02T03:00'"], []),
        # different modes may overlap: precedence decides
        (["planned, from: '2026-12-01T22:00', until: '2026-12-02T02:00'",
          "closed, from: '2026-12-01T20:00', until: '2026-12-02T08:00'"], []),
        # an offset and the flow's timezone compare as the same moments
        (["closed, from: '2026-12-01T20:00', until: '2026-12-02T08:00'",
          "closed, from: '2026-12-02T06:00Z', until: '2026-12-02T09:00Z'"],
         ["7:7: warning: this closed window overlaps the one at line 6 (2026-12-01 20:00 to 2026-12-02 08:00)"]),
    ],
)
def test_overlapping_windows_of_one_mode_are_a_warning(windows: list[str], expected: list[str]) -> None:
    items = "".join(f"    - {{mode: {window}}}\n" for window in windows)
    diagnostics = check(with_block(f"  windows:\n{items}", top="timezone: Europe/Berlin\n", steps=REACHED))
    assert messages(diagnostics) == expected


def test_a_constant_transfer_destination_is_checked_like_a_transfer_steps() -> None:
    diagnostics = check(with_block("  closed: {then: {transfer: {to: 'PJSIP/a b'}}}\n", steps=REACHED))
    assert messages(diagnostics) == ["4:34: error: 'PJSIP/a b' is not an endpoint or a number"]
    assert hints(diagnostics) == ["write an endpoint such as PJSIP/operator or a number such as +4930123456"]
    known_on_a_call = with_block("  closed: {then: {transfer: '{{ channel.BACKUP }}'}}\n", steps=REACHED)
    assert not check(known_on_a_call).items


def test_the_prompts_the_block_plays_by_default_must_be_in_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "catalog.yaml").write_text("p: x\nwe-reopen: x\nreopen-today: x\n")
    catalog = PromptCatalog.load(tmp_path)
    diagnostics = check(with_block("  planned: {prompt: p}\n", steps=REACHED), catalog=catalog)
    assert messages(diagnostics) == [  # where the block starts: the time words are not written
        "4:3: error: prompt 'reopen-tomorrow' is not in the 'en' catalog",
        "4:3: error: prompt 'reopen-on' is not in the 'en' catalog",
        "4:3: error: prompt 'reopen-at' is not in the 'en' catalog",
    ]
    # no mode speaks the end: neither the reopening prompt nor the time words are needed
    silent = "".join(f"  {mode}: {{prompt: p, reopening: none}}\n" for mode in ("planned", "emergency", "closed"))
    assert not check(with_block(silent, steps=REACHED), catalog=catalog).items
    # no block at all: nothing of it is needed
    assert not check(flow(REACHED), catalog=catalog).items


def test_a_declared_window_is_read_in_the_flows_timezone() -> None:
    declared = DeclaredWindow(Mode.CLOSED, dt.datetime(2026, 7, 1, 12), dt.datetime(2026, 7, 1, 14), "lunch")
    window = declared.window("support", "Europe/Berlin", "flows/support.yaml")
    assert window.starts_at.utcoffset() == dt.timedelta(hours=2)  # summer time
    assert (window.by, window.reason, window.covers(dt.datetime(2026, 7, 1, 11, 30, tzinfo=dt.UTC))) == (
        "flows/support.yaml", "lunch", True)
