"""The flow file's `queues:` block: announcements, periodic prompts and exit keys, read with their positions."""

from __future__ import annotations

from pathlib import Path

from ivrkit.flow.pbx import Announcements, PeriodicPrompts
from ivrkit.prompts.catalog import PromptCatalog
from tests.flow.helpers import check, flow, hints, load, messages

STEPS = "  a:\n    queue: support\n"


def queues(settings: str) -> str:
    """A flow whose `queues:` block declares ``support`` with ``settings`` (indented by four spaces)."""
    return flow(STEPS, top=f"queues:\n  support:\n{settings}")


def test_the_full_block_loads_and_yaml_yes_and_no_read_as_words() -> None:
    text = queues(
        "    announce: {every: 60s, min_gap: 20s, position: more, position_limit: 5, hold_time: once,\n"
        "               round_seconds: 30, only_up: false, to_first: true}\n"
        "    periodic: {prompts: [queue-periodic, main-menu], every: 45s, start_delay: 0, random: true}\n"
        '    exit_keys: {"1": callback, "#": text, 2: call-back-2, "*": callback}\n'
    )
    loaded, diagnostics = load(text)
    assert loaded is not None and not diagnostics.items, diagnostics.render()
    settings = loaded.queues["support"]
    assert settings.announce == Announcements(60, 20, "more", 5, "once", 30, False, True)
    assert settings.periodic == PeriodicPrompts(("queue-periodic", "main-menu"), 45, 0, True)
    assert settings.exit_keys == (("1", "callback"), ("2", "call-back-2"), ("*", "callback"), ("#", "text"))
    assert settings.exit_outcomes == ("callback", "call-back-2", "text")

    loaded, _ = load(queues("    announce: {position: yes, hold_time: no}\n    periodic: {prompts: a, every: 1m}\n"))
    assert loaded is not None
    settings = loaded.queues["support"]
    assert (settings.announce.position, settings.announce.hold_time) == ("yes", "no")  # YAML booleans
    assert settings.announce.every == 0 and settings.announce.only_up  # Asterisk never announces; never up
    assert settings.periodic == PeriodicPrompts(("a",), 60, None, False)  # no start delay: the first after 60 s


def test_the_defaults_announce_nothing() -> None:
    loaded, _ = load(queues("    strategy: rrmemory\n"))
    assert loaded is not None
    settings = loaded.queues["support"]
    assert settings.announce == Announcements() and settings.announce.every == 0
    assert settings.periodic is None and settings.exit_keys == ()


def test_mistakes_are_reported_where_they_are_written() -> None:
    text = queues(
        "    announce: {every: soon, position: maybe, hold_time: twice, round_seconds: 7, only_up: 1}\n"
        "    periodic: {prompts: [Queue Periodic], every: 0}\n"
        '    exit_keys: {"1": timeout, "12": text, "3": Call_Back, "4": otherwise}\n'
    )
    loaded, diagnostics = load(text)
    assert loaded is None
    assert messages(diagnostics) == [
        "5:23: error: expected a duration such as 5s, 500ms or 2m, got 'soon'",
        "5:39: error: 'maybe' is not one of: yes, no, limit, more",
        "5:57: error: 'twice' is not one of: yes, no, once",
        "5:79: error: 7 seconds cannot be used for rounding",
        "5:91: error: expected true or false, got the number 1",
        "6:26: error: 'Queue Periodic' is not a valid prompt id",
        "7:22: error: 'timeout' is already a queue outcome",
        "7:31: error: expected a DTMF key (0-9, * or #), got '12'",
        "7:48: error: 'Call_Back' is not a valid outcome name",
        "7:64: error: 'otherwise' is already a queue outcome",
    ]
    assert hints(diagnostics)[3] == "Asterisk rounds to one of 0, 5, 10, 15, 20, 30 seconds"
    assert hints(diagnostics)[6] == "name what the key does instead, e.g. callback or text"
    assert hints(diagnostics)[8] == (
        "an outcome name has up to 31 small letters, digits and '-', and starts with a letter"
    )


def test_periodic_prompts_within_what_asterisk_plays() -> None:
    eleven = ", ".join(f"p{n}" for n in range(11))
    _, diagnostics = load(queues(f"    periodic: {{prompts: [{eleven}], every: 30s}}\n"))
    assert messages(diagnostics) == ["5:25: error: 11 periodic prompts: Asterisk plays at most 10"]
    _, diagnostics = load(queues("    periodic: {prompts: [a], every: 0}\n"))
    assert messages(diagnostics) == ["5:37: error: periodic prompts need `every` of a second or more"]
    _, diagnostics = load(queues("    periodic: {every: 30s}\n"))
    assert messages(diagnostics) == [
        "5:15: error: periodic prompts needs 'prompts': Played in turn, one each time (`periodic-announce`; up to "
        "10)."
    ]


def test_periodic_prompts_missing_from_the_catalog_are_reported_by_check(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "catalog.yaml").write_text("known: Hello.\n")
    text = queues("    periodic: {prompts: [known, unknown], every: 30s}\n")
    diagnostics = check(text, catalog=PromptCatalog.load(tmp_path))
    assert [f"{d.location}: {d.message}" for d in diagnostics if "prompt" in d.message] == [
        "flow0.yaml:5:33: prompt 'unknown' is not in the 'en' catalog"
    ]
