"""The `language` step on simulated calls: the menu announces each choice in its own language, the choice
becomes the call's language (prompts, spoken values, the PBX's own language), retries like a menu; the `set`
form; what the loader says about choices the flow does not speak; and the flow-test `language:` expectation."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.qa.runner import PASSED, Project, failure_report, run_case
from ivrkit.sim.channel import SimulatedChannel
from tests.calls import Call, of_kind
from tests.flow.helpers import hints, load, messages

FLOW = """
flow: lang
languages: [en, de]
start: pick
defaults: {retries: 1}
steps:
  pick:
    language:
      choices: {"1": en, "2": de}
      timeout: 3s
      invalid: {reprompt: invalid-choice}
    next: hello
  hello:
    play: [hello, {number: 21}]
    next: bye
  bye:
    set: {spoke: "{{ call.language }}"}
"""
ANNOUNCED = ["language-option", "digits:1", "language-option", "digits:2"]


class Recording(SimulatedChannel):
    """A simulated channel that remembers each language the PBX was told to speak."""

    told: list[str] = []

    def set_language(self, language: str) -> None:
        Recording.told.append(language)
        super().set_language(language)


@pytest.fixture
def recording() -> type[Recording]:
    Recording.told = []
    return Recording


@pytest.fixture
def call(call: Call) -> Call:
    """Calls on a line that speaks English (CHANNEL(language) en), unless a test says otherwise."""
    return lambda *args, **options: call(*args, **{"language": "en", **options})


def played(result: Any) -> list[tuple[str, str]]:
    """(prompt or spoken value, language) of everything played."""
    return [(d.get("prompt") or f"{d['say']}:{d['value']}", d["language"]) for d in of_kind(result, "played")]


# -- the menu ----------------------------------------------------------------------------------------------------


def test_each_choice_is_announced_in_its_language_and_the_choice_is_the_calls(
    call: Call, recording: type[Recording]
) -> None:
    result = call(FLOW, "2", channel_factory=recording)
    assert played(result) == [("language-option", "en"), ("digits:1", "en"), ("language-option", "de"),
                              ("digits:2", "de"), ("hello", "de"), ("number:21", "de")]
    assert recording.told == ["de"]  # German while 2 is announced, and German from then on: no switch back
    assert of_kind(result, "choice") == [{"key": "2", "language": "de"}]
    assert of_kind(result, "language") == [{"language": "de", "previous": "en", "by": "choice"}]
    assert result.vars["spoke"] == "de"
    assert 'say=digits value=21' not in result.transcript() and '"einundzwanzig"' in result.transcript()


def test_the_pbx_speaks_each_choices_language_only_while_it_is_announced(
    call: Call, recording: type[Recording]
) -> None:
    result = call(FLOW, "1", channel_factory=recording)
    assert recording.told == ["de", "en"]  # for the German choice, then back for the English one chosen
    assert result.vars["spoke"] == "en" and of_kind(result, "language")[0]["previous"] == "en"


def test_a_key_during_the_announcements_chooses_at_once(call: Call, recording: type[Recording]) -> None:
    result = call(FLOW, script=[{"press": "2", "during": "language-option"}], channel_factory=recording)
    assert result.heard[:2] == ["language-option", "hello"]
    assert recording.told == ["de"]


def test_a_wrong_key_is_retried_with_the_reprompt_in_the_calls_language(call: Call) -> None:
    result = call(FLOW, "7 2", language="de")
    assert result.heard[:9] == [*ANNOUNCED, "invalid-choice", *ANNOUNCED]
    assert played(result)[4] == ("invalid-choice", "de")  # the caller's line speaks German
    assert of_kind(result, "invalid") == [{"key": "7", "tries": 1}]
    assert result.vars["spoke"] == "de"


def test_without_a_choice_the_call_keeps_its_language_and_goes_on(call: Call, recording: type[Recording]) -> None:
    result = call(FLOW, "s s", language="de", channel_factory=recording)
    assert result.heard == [*ANNOUNCED, *ANNOUNCED, "hello", "number:21"]
    assert of_kind(result, "language-kept") == [{"language": "de", "reason": "no choice (no input)"}]
    assert result.vars["spoke"] == "de" and not of_kind(result, "language")
    assert recording.told == ["en", "de", "en", "de"]  # back to German after each round of announcements


def test_used_up_tries_go_to_failed_when_given(call: Call) -> None:
    flow = FLOW.replace("invalid: {reprompt: invalid-choice}", "invalid: {failed: bye}")
    result = call(flow, "7 8")
    assert result.steps == ["lang.pick", "lang.bye"] and result.vars["spoke"] == "en"


def test_the_cancel_key_backs_out_in_the_calls_language(call: Call, recording: type[Recording]) -> None:
    flow = """
    flow: lang
    languages: [en, de]
    start: main
    steps:
      main:
        menu: {prompt: main-menu, choices: {"9": pick, "1": bye}}
      pick:
        language: {choices: {"1": en, "2": de}}
        next: main
      bye:
        hangup: true
    """
    result = call(textwrap.dedent(flow), script=[{"press": "9"}, {"press": "*", "during": "language-option"},
                                                 {"press": "1"}], channel_factory=recording)  # fmt: skip
    assert result.steps == ["lang.main", "lang.pick", "lang.main", "lang.bye"]
    assert of_kind(result, "cancel") == [{"to": "main"}]
    assert recording.told == []  # cancelled while English was announced: the PBX never left English


def test_the_key_can_be_left_to_the_recording(call: Call) -> None:
    flow = FLOW.replace("timeout: 3s", "timeout: 3s\n      say_key: false\n      prompt: language-choice")
    result = call(flow, "2")
    assert result.heard[:3] == ["language-choice", "language-choice", "hello"]


def test_prompts_are_looked_up_in_the_chosen_language_then_the_flows(call: Call, tmp_path: Path) -> None:
    for language, ids in (("en", "language-option hello"), ("de", "language-option")):
        (tmp_path / language).mkdir()
        (tmp_path / language / "catalog.yaml").write_text("".join(f"{i}: {language} {i}\n" for i in ids.split()))
    result = call(FLOW, "2", catalog=PromptCatalog.load(tmp_path))
    assert ("hello", "en") in played(result)  # not in German: the flow's own language
    (hello,) = [d for d in of_kind(result, "played") if d.get("prompt") == "hello"]
    assert hello["fallback_from"] == "de"


# -- the set form ------------------------------------------------------------------------------------------------


SET = """
flow: lang
languages: [en, de]
start: switch
steps:
  switch:
    language: {set: "{{ call.params.lang | default('de') }}"}
    next: hello
  hello:
    play: [hello, {time: "14:00"}]
    next: bye
  bye:
    set: {spoke: "{{ call.language }}"}
"""


@pytest.mark.parametrize(
    ("params", "spoke", "event"),
    [
        ({}, "de", ("language", {"language": "de", "previous": "en", "by": "set"})),
        ({"lang": "de_AT"}, "de_AT", ("language", {"language": "de_AT", "previous": "en", "by": "set"})),
        ({"lang": "fr"}, "en", ("language-kept", {"language": "en", "wanted": "fr",
                                                  "reason": "the flow does not speak it"})),
        ({"lang": "de;x"}, "en", ("language-kept", {"language": "en", "wanted": "de;x",
                                                    "reason": "not a language code"})),
    ],
)
def test_set_switches_to_a_language_the_flow_speaks(
    call: Call, recording: type[Recording], params: dict[str, str], spoke: str, event: tuple[str, dict[str, str]]
) -> None:
    result = call(SET, params=params, channel_factory=recording)
    assert result.vars["spoke"] == spoke
    assert of_kind(result, event[0]) == [event[1]]
    assert recording.told == ([spoke] if spoke != "en" else [])
    assert played(result)[1] == ("time:14:00", spoke)


def test_set_takes_no_input_so_a_loop_of_it_is_a_runaway(call: Call) -> None:
    flow = SET.replace("next: hello", "next: switch")
    result = call(flow)
    assert result.outcome == "error"
    assert "steps without caller input" in of_kind(result, "error")[0]["message"]


# -- the loader --------------------------------------------------------------------------------------------------


def test_choices_refer_to_the_prompt_in_their_language_only() -> None:
    flow, diagnostics = load(FLOW)
    assert flow is not None and not diagnostics.errors, diagnostics.render()
    refs = [(r.name, r.label, r.language, r.location.line) for r in flow.references if r.owner == "pick"
            and r.kind == "prompt"]
    assert refs == [("invalid-choice", "language.invalid.reprompt.0", None, 11),
                    ("language-option", "language.choices.1", "en", 9),
                    ("language-option", "language.choices.2", "de", 9)]


@pytest.mark.parametrize(
    ("step", "expected", "hint"),
    [
        ('language: {choices: {"1": en, "3": fr}}',
         "7:40: error: the flow does not speak 'fr' (its languages: en, de)",
         "add it to the flow's `languages: [en, de, fr]`, with its prompts in prompts/fr/catalog.yaml"),
        ('language: {choices: {"1": en, "*": de}}',
         "7:40: error: key '*' is the cancel key here, so this choice can never be made",
         "use another key, or turn the cancel key off for this step with `cancel_key: none`"),
        ("language: {set: fr}",
         "7:21: error: the flow does not speak 'fr' (its languages: en, de)",
         "add it to the flow's `languages:`, or set one of en, de"),
        ('language: {choices: {"1": en}, set: de}',
         "7:15: error: a language step has either `choices` (a language menu) or `set` (a fixed language)",
         'e.g. language: {choices: {"1": en, "2": de}} or language: {set: de}'),
        ("language: {}",
         "7:15: error: a language step has either `choices` (a language menu) or `set` (a fixed language)",
         'e.g. language: {choices: {"1": en, "2": de}} or language: {set: de}'),
        ("language: {choices: {}}",
         "7:15: error: a language menu needs at least one choice", 'e.g. choices: {"1": en, "2": de}'),
        ('language: {choices: {"1": English}}',
         "7:31: error: 'English' is not a valid language code such as en or de", None),
    ],
)
def test_loader_errors_point_at_the_choice(step: str, expected: str, hint: str | None) -> None:
    text = f"""\
        flow: lang
        languages: [en, de]
        cancel_key: "*"
        start: pick
        steps:
          pick:
            {step}
            next: bye
          bye: {{hangup: true}}
        """
    _, diagnostics = load(text)
    assert messages(diagnostics) == [expected]
    assert hints(diagnostics) == [hint]


def test_the_flows_own_language_is_always_spoken() -> None:
    _, diagnostics = load("""\
        flow: lang
        language: de
        start: pick
        steps:
          pick: {language: {choices: {"1": de}}, next: bye}
          bye: {hangup: true}
        """)
    assert not diagnostics.errors


# -- in a flow test: `expect: {language: de}` ----------------------------------------------------------------------


def test_the_language_expectation_wants_the_language_and_every_prompt_in_it(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "lang.yaml").write_text(textwrap.dedent("""\
        flow: lang
        languages: [en, de]
        start: pick
        steps:
          pick: {language: {choices: {"1": en, "2": de}}, next: hello}
          hello: {play: [hello, goodbye], next: bye}
          bye: {hangup: true}
        """))
    for language, ids in (("en", "language-option hello goodbye"), ("de", "language-option hello")):
        (tmp_path / "prompts" / language).mkdir(parents=True)
        (tmp_path / "prompts" / language / "catalog.yaml").write_text(
            "".join(f"{i}: {language} {i}\n" for i in ids.split()))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "lang.test.yaml").write_text(textwrap.dedent("""\
        flow: lang
        cases:
          German:
            press: [2]
            expect: {language: de}
          English:
            press: [1]
            expect: {language: de}
          a German line:
            language: de
            press: [1]
            expect: {language: en}
        """))
    project = Project.load(tmp_path / "flows", tmp_path / "prompts")
    cases = project.suite(tmp_path / "tests" / "lang.test.yaml").cases
    results = {case.name: run_case(project, case) for case in cases}
    german = failure_report(results["German"])
    assert "lang.test.yaml:5:24: expect.language: 1 prompt(s) played in another language while the call spoke de: " \
           "add them to prompts/de/catalog.yaml" in german
    assert "actual:   goodbye (en)" in german
    english = failure_report(results["English"])
    assert "expect.language: the call ended in another language" in english and "actual:   en" in english
    assert results["a German line"].status == PASSED, failure_report(results["a German line"])
