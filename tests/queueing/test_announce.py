"""The position rules and the `announce:` options, apart from any call."""

from __future__ import annotations

from ivrkit.engine.world import QueueStats
from ivrkit.prompts.catalog import PromptCatalog, PromptEntry
from ivrkit.queueing.announce import AnnounceSpec, announcement, is_next
from tests.flow.helpers import check, flow, load, messages
from tests.queueing.test_wording import heard

BUSY = QueueStats(waiting=3, logged_in=4, avg_talk=240, answered=10)  # 4th in line, 240 s


def test_a_step_without_announce_says_nothing_but_still_estimates() -> None:
    plan = announcement(None, BUSY, heard_position=None)
    assert (plan.said, plan.segments, plan.position, plan.estimate.seconds) == ("off", [], 4, 240)


def test_position_and_wait() -> None:
    plan = announcement(AnnounceSpec(), BUSY, heard_position=None)
    assert heard(plan.segments) == ["queue-position", "number:4", "wait-about", "number:4", "minutes"]
    assert (plan.said, plan.said_position) == ("number", True)


def test_the_next_caller_hears_nothing() -> None:
    first = QueueStats(waiting=0, logged_in=4, avg_talk=240, answered=10)
    ready = QueueStats(waiting=2, logged_in=4, ready=3, avg_talk=240, answered=10)
    for stats in (first, ready):
        plan = announcement(AnnounceSpec(), stats, heard_position=None)
        assert (plan.segments, plan.said, plan.said_position) == ([], "none", False)
    assert announcement(AnnounceSpec(wait=False), first, heard_position=None).said == "off"
    assert is_next(QueueStats(ready=2), 2) and not is_next(QueueStats(ready=2), 3) and is_next(QueueStats(), 1)


def test_a_position_is_never_announced_higher_than_one_heard() -> None:
    assert heard(announcement(AnnounceSpec(), BUSY, heard_position=3).segments) == ["wait-about", "number:4", "minutes"]
    assert heard(announcement(AnnounceSpec(), BUSY, heard_position=4).segments)[:2] == ["queue-position", "number:4"]
    assert heard(announcement(AnnounceSpec(), BUSY, heard_position=9).segments)[:2] == ["queue-position", "number:4"]


def test_thin_data_gives_the_safe_phrase() -> None:
    thin = QueueStats(waiting=3, logged_in=4, avg_talk=240, answered=1)
    plan = announcement(AnnounceSpec(), thin, heard_position=None)
    assert heard(plan.segments) == ["queue-position", "number:4", "wait-longer-than-usual"]
    assert (plan.said, plan.estimate.seconds) == ("safe", None)


def test_the_options_refer_to_the_prompts_they_may_play() -> None:
    text = flow("  a:\n    queue: support\n    announce: {wording: range, position: false}\n")
    loaded, diagnostics = load(text)
    assert loaded is not None and not diagnostics.errors
    prompts = [ref.name for ref in loaded.references if ref.kind == "prompt"]
    assert prompts == ["wait-between", "minutes", "and", "wait-less-than-a-minute", "wait-longer-than-usual"]
    assert loaded.steps["a"].settings["announce"] == AnnounceSpec(position=False, wording="range")


def test_option_mistakes_point_at_the_yaml() -> None:
    text = flow("  a:\n    queue: support\n    announce: {wording: roughly, estimator: erlang, min_answerd: 3}\n")
    _, diagnostics = load(text)
    assert messages(diagnostics) == [
        "6:25: error: 'roughly' is not one of: about, less_than, range",
        "6:45: error: 'erlang' is not one of: position, asterisk",
        "6:53: error: unknown option 'min_answerd' in announce options",
    ]
    assert [d.hint for d in diagnostics][2] == "did you mean 'min_answered'?"


def test_check_reports_a_wording_prompt_missing_from_the_catalog() -> None:
    known = ["queue-position", "wait-about", "minute", "minutes", "wait-less-than-a-minute"]
    catalog = PromptCatalog(None, {"en": {name: PromptEntry(name, name) for name in known}})
    steps = "  a:\n    queue: support\n    announce: {wording: about}\n    outcomes: {timeout: end}\n"
    diagnostics = check(flow(steps), catalog=catalog)
    assert messages(diagnostics) == ["6:15: error: prompt 'wait-longer-than-usual' is not in the 'en' catalog"]
