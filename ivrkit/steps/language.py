"""``language``: the caller picks the language of the rest of the call, or the flow sets it.

A language menu announces each choice in its own language ("For English, press one. Für Deutsch drücken Sie
die Zwei."): the same prompt id, found in that choice's catalog, then the key, said by the PBX in that
language. The choice becomes the call's language (``call.language``): prompts are looked up in it first, and
the PBX speaks it for numbers, dates and its own announcements. It is kept in the call's state, so it survives
queues, transfers, the hang-up handler and a callback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivrkit.engine.transitions import Cancelled, Finish, GoTo, Transition
from ivrkit.flow.diagnostics import Location
from ivrkit.flow.expressions import Template
from ivrkit.flow.fields import (
    DTMF_KEYS,
    INVALID,
    LANGUAGE,
    PROMPT_PATTERN,
    Boolean,
    Duration,
    Field,
    Integer,
    Key,
    ListOf,
    MapOf,
    Option,
    ParseContext,
    Record,
    Reference,
    StepRef,
    TemplateField,
    Text,
)
from ivrkit.flow.segments import PromptSegment, SaySegment, segments
from ivrkit.flow.source import Node
from ivrkit.prompts.languages import LANGUAGE_CODE
from ivrkit.steps.base import Step, next_option
from ivrkit.steps.retries import Attempts, RetryPolicy

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext
    from ivrkit.flow.model import Flow

DEFAULT_PROMPT = "language-option"


@dataclass(frozen=True)
class Choice:
    """One key of a language menu: the language it picks, and where that was written."""

    language: str
    location: Location


@dataclass(frozen=True)
class LanguageSpec:
    choices: dict[str, Choice] | None = None
    prompt: str = DEFAULT_PROMPT
    say_key: bool = True
    timeout: float | None = None
    no_input: RetryPolicy = field(default_factory=RetryPolicy)
    invalid: RetryPolicy = field(default_factory=RetryPolicy)
    set: Template | None = None


class _ChoiceLanguage(Field[Choice]):
    type_name = LANGUAGE.type_name

    def parse(self, node: Node, ctx: ParseContext) -> Choice:
        language: Any = LANGUAGE.parse(node, ctx)
        return INVALID if language is INVALID else Choice(language, node.location)

    def json_schema(self) -> dict[str, Any]:
        return LANGUAGE.json_schema()


def _retries(kind: str) -> Option:
    """A menu's no-input or invalid handling, said the way a language menu uses it."""
    record: Record[RetryPolicy] = Record(
        {
            "retries": Option(
                Integer(0, 20),
                "How many times the choices are announced again after the first time (default 2, or the flow's "
                "`defaults.retries`).",
            ),
            "reprompt": Option(segments(), "Played, in the call's language, before the choices are announced again."),
            "reprompts": Option(
                ListOf(segments(), single=False, min_items=1),
                "Escalating re-prompts: the first entry before the second announcement, and so on; the last repeats.",
            ),
            "failed": Option(StepRef(), "Where to go when the tries are used up (default: `next`, in the language "
                             "the call had)."),
        },
        factory=RetryPolicy,
        what=f"{kind} handling",
    )
    return Option(record, f"What to do on {kind.replace('_', '-')}: retries, re-prompts, where to go.", RetryPolicy())


def _check(spec: LanguageSpec, node: Node, ctx: ParseContext) -> LanguageSpec:
    """One form or the other; each choice refers to the prompt in that choice's language only."""
    if (spec.choices is None) == (spec.set is None):
        return ctx.error(node, "a language step has either `choices` (a language menu) or `set` (a fixed "
                         "language)", 'e.g. language: {choices: {"1": en, "2": de}} or language: {set: de}')
    if spec.choices is not None:
        if not spec.choices:
            return ctx.error(node, "a language menu needs at least one choice", 'e.g. choices: {"1": en, "2": de}')
        for key, choice in spec.choices.items():
            label = ".".join([*ctx.path, "choices", key])
            ctx.references.append(Reference("prompt", spec.prompt, choice.location, ctx.step, label,
                                             language=choice.language))
    return spec


_BODY: Record[LanguageSpec] = Record(
    {
        "choices": Option(
            MapOf(Key(), _ChoiceLanguage(), "choices (key: language)"),
            'Each key and the language it picks, e.g. {"1": en, "2": de}; each must be one of the flow\'s '
            "`languages`. Announced in key order.",
        ),
        "prompt": Option(
            Text(PROMPT_PATTERN, what="prompt id"),
            "Played once per choice, in that choice's language (`For English, press` / `Für Deutsch drücken Sie "
            "die`), followed by the key.",
            DEFAULT_PROMPT,
        ),
        "say_key": Option(
            Boolean(), "Say the key after each choice's prompt, in its language (false: the recording says it).",
            True,
        ),
        "timeout": Option(
            Duration(), "How long to wait for a key after the choices (default 5s, or `defaults.timeout`)."
        ),
        "no_input": _retries("no_input"),
        "invalid": _retries("invalid"),
        "set": Option(
            TemplateField(),
            "Instead of a menu: the language to switch to, e.g. `de` or `\"{{ call.params.lang }}\"`. A value "
            "that is not one of the flow's languages leaves the call's language as it is (logged).",
        ),
    },
    factory=LanguageSpec,
    what="language",
    check=_check,
)


class Language(Step):
    kind = "language"
    summary = (
        "Sets the call's language: a language menu (`choices`, retried like a `menu`; when the tries are used up "
        "the call keeps its language), or a fixed one (`set`). Prompts are then looked up in that language "
        "first, and Asterisk says numbers, dates and its own announcements in it."
    )
    body = _BODY
    options = {"next": next_option("The step that follows, in the chosen language.")}
    example = """\
choose_language:
  language:
    choices: {"1": en, "2": de}
    prompt: language-option        # en: "For English, press" / de: "Für Deutsch drücken Sie die"
  next: main_menu
german_line:
  language: {set: "{{ call.params.lang | default('de') }}"}
  next: greeting
"""

    @property
    def takes_input(self) -> bool:  # type: ignore[override]
        return self.value.choices is not None

    def check_flow(self, flow: Flow, ctx: ParseContext) -> None:
        """Each choice must be a language the flow declares, on a key the cancel key does not take."""
        spec: LanguageSpec = self.value
        cancel = flow.cancel_key_for(self)
        for key, choice in (spec.choices or {}).items():
            if choice.language not in flow.languages:
                ctx.error(choice.location, f"the flow does not speak '{choice.language}' (its languages: "
                          f"{', '.join(flow.languages)})",
                          f"add it to the flow's `languages: [{', '.join([*flow.languages, choice.language])}]`, "
                          "with its prompts in prompts/" + choice.language + "/catalog.yaml")
            if cancel and key == cancel:
                ctx.error(choice.location, f"key '{cancel}' is the cancel key here, so this choice can never be made",
                          "use another key, or turn the cancel key off for this step with `cancel_key: none`")
        if spec.set is not None and spec.set.is_constant:
            language = str(spec.set.source)
            if language not in flow.languages:
                where = spec.set.location or self.location
                ctx.error(where, f"the flow does not speak '{language}' (its languages: {', '.join(flow.languages)})",
                          f"add it to the flow's `languages:`, or set one of {', '.join(flow.languages)}")

    def run(self, call: CallContext) -> Transition:
        spec: LanguageSpec = self.value
        if spec.set is not None:
            self._set(call, spec.set)
            return self._next()
        assert spec.choices is not None
        attempts = Attempts(spec.no_input, spec.invalid, call.defaults.retries)
        timeout = spec.timeout if spec.timeout is not None else call.defaults.timeout
        while True:
            try:
                key = _announce(call, spec, attempts)
                if key is None:
                    key = call.wait_for_key(timeout)
            except Cancelled:  # the cancel key: the call goes on in its own language
                call.sync_language()
                raise
            if key is not None and key in spec.choices:
                language = spec.choices[key].language
                call.log("choice", key=key, language=language)
                call.change_language(language, by="choice")
                return self._next()
            call.sync_language()  # the PBX spoke the last choice's language: back to the call's
            kind = "no_input" if key is None else "invalid"
            call.log(kind, key=key, tries=attempts.counts[kind] + 1)
            if attempts.fail(kind):
                target = attempts.failed_target(kind, None)
                call.log("language-kept", language=call.language, reason=f"no choice ({kind.replace('_', ' ')})")
                return GoTo(target) if target else self._next()

    def _next(self) -> Transition:
        return GoTo(self.next) if self.next else Finish("end-of-flow")

    @staticmethod
    def _set(call: CallContext, template: Template) -> None:
        wanted = template.render_text(call.scope()).strip()
        if not LANGUAGE_CODE.fullmatch(wanted):
            call.log("language-kept", language=call.language, wanted=wanted[:40], reason="not a language code")
        elif not call.change_language(wanted, by="set"):
            call.log("language-kept", language=call.language, wanted=wanted, reason="the flow does not speak it")


def _announce(call: CallContext, spec: LanguageSpec, attempts: Attempts) -> str | None:
    """A retry's re-prompt (in the call's language), then each choice in its own language, the PBX speaking that
    language meanwhile (the caller sets it back); the first key pressed stops it."""
    assert spec.choices is not None
    reprompt = attempts.next_prompt([])
    key = call.play(reprompt, escape=DTMF_KEYS) if reprompt else None
    for choice_key, choice in spec.choices.items():
        if key is not None:
            break
        said: list[PromptSegment | SaySegment] = [PromptSegment(spec.prompt)]
        if spec.say_key:
            said.append(SaySegment("digits", Template.compile(choice_key)))
        call.speak_as(choice.language)
        key = call.play(said, escape=DTMF_KEYS, language=choice.language)
    return key
