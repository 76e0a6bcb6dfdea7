"""Expectations of a flow test and how a simulated call is compared with them.

Each kind answers one question a QA engineer asks of a call (what was heard, which steps ran, what the
variables hold, how it ended) and, when the answer is wrong, says so at the YAML line that asked, with
expected and actual side by side. Sequences are compared as a unified diff because a re-prompt too many or
a step skipped is easiest to see that way.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ivrkit.flow.diagnostics import Location
from ivrkit.qa.model import Located
from ivrkit.sim.session import SimulationResult

# subject → (what the list is called, the verb for one item)
SUBJECTS = {
    "heard": ("prompts heard", "heard"),
    "interrupted": ("prompts interrupted", "interrupted"),
    "steps": ("steps entered", "entered"),
}
PROMPT_SUBJECTS = ("heard", "interrupted")
CALLBACK_FIELDS = ("number", "queue", "origin", "reason")


def local_step(name: str, flow: str) -> str:
    """A step name as tests write it: bare for the tested flow, ``flow.step`` for any other."""
    prefix = f"{flow}."
    return name[len(prefix):] if name.startswith(prefix) else name


@dataclass(frozen=True)
class Observed:
    """What happened on a simulated call, in the terms expectations use."""

    flow: str
    heard: list[str]
    interrupted: list[str]
    steps: list[str]
    vars: dict[str, Any]
    outcome: str
    texts: tuple[tuple[str, str], ...] = ()  # (to, text) of each text queued, in order
    callbacks: tuple[dict[str, Any], ...] = ()  # each callback registered: {number, queue, origin, reason}
    cancelled: tuple[dict[str, Any], ...] = ()  # each callback the caller cancelled: {number, queue}
    maintenance: dict[str, Any] | None = None  # the maintenance the call met: {mode, scope, until, action, target}
    language: str | None = None  # the call's language at the end
    fallbacks: tuple[tuple[str, str, str], ...] = ()  # (call language then, prompt, language it played in)

    @classmethod
    def of(cls, result: SimulationResult, flow: str) -> Observed:
        interrupted = [
            e.detail["prompt"] for e in result.journal.of_kind("played")
            if e.detail.get("interrupted_by") is not None and "prompt" in e.detail
        ]
        steps = [local_step(name, flow) for name in result.steps]
        texts = tuple((e.detail["to"], e.detail["text"]) for e in result.journal.of_kind("text_queued")
                      if e.detail.get("new"))
        callbacks = tuple({key: e.detail.get(key) for key in CALLBACK_FIELDS}
                          for e in result.journal.of_kind("callback-requested") if e.detail.get("new"))
        cancelled = tuple({"number": e.detail.get("number"), "queue": e.detail.get("queue")}
                          for e in result.journal.of_kind("callback-cancelled") if e.detail.get("cancelled"))
        met = next((e.detail for e in result.journal.of_kind("maintenance")), None)
        language, fallbacks = _languages(result)
        return cls(flow, result.heard, interrupted, steps, dict(result.vars), result.outcome, texts, callbacks,
                   cancelled, dict(met) if met is not None else None, language, fallbacks)

    def sequence(self, subject: str) -> list[str]:
        return list(getattr(self, subject))


def _languages(result: SimulationResult) -> tuple[str | None, tuple[tuple[str, str, str], ...]]:
    """The call's language at the end, and each prompt that fell back to another language, with the call's
    language at that moment."""
    language: str | None = None
    fallbacks: list[tuple[str, str, str]] = []
    for event in result.journal.of_kind("session", "language", "played"):
        wanted = event.detail.get("fallback_from")
        if event.kind != "played":
            language = event.detail.get("language") or language
        elif wanted is not None and wanted == language:
            fallbacks.append((wanted, event.detail["prompt"], event.detail["language"]))
    return language, tuple(fallbacks)


@dataclass(frozen=True)
class Failure:
    """One expectation not met: where it was written, what was wanted, what happened."""

    location: Location
    label: str  # e.g. "expect.heard"
    message: str
    expected: str | None = None
    actual: str | None = None
    diff: str | None = None

    def render(self, source_lines: list[str] | None = None) -> str:
        """``file:line:col: label: message``, the YAML line with a caret, then the diff or expected/actual."""
        text = f"{self.location}: {self.label}: {self.message}"
        line = self.location.line
        if source_lines and 0 < line <= len(source_lines):
            text += f"\n    {source_lines[line - 1].rstrip()}\n    {' ' * (self.location.column - 1)}^"
        if self.diff:
            text += "\n" + _indent(self.diff, 4)
        if self.expected is not None:
            text += f"\n    expected: {self.expected}"
        if self.actual is not None:
            text += f"\n    actual:   {self.actual}"
        return text


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def show_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(items) + "]"


def sequence_diff(expected: Sequence[str], actual: Sequence[str]) -> str:
    lines = difflib.unified_diff(list(expected), list(actual), "expected", "actual", lineterm="", n=2)
    return "\n".join(lines)


class Expectation:
    """One key under ``expect:``. ``names`` lists the prompt or step names it mentions, for checking."""

    label: str
    location: Location
    subject: ClassVar[str] = ""

    def check(self, observed: Observed) -> list[Failure]:
        raise NotImplementedError

    def names(self) -> list[Located[str]]:
        return []


@dataclass(frozen=True)
class SequenceExpectation(Expectation):
    """Base of the list expectations: ``subject`` is heard, interrupted or steps."""

    label: str
    location: Location
    kind: str  # the subject
    items: tuple[Located[str], ...]

    def names(self) -> list[Located[str]]:
        return list(self.items)

    def expected(self, observed: Observed) -> list[str]:
        if self.kind == "steps":
            return [local_step(item.value, observed.flow) for item in self.items]
        return [item.value for item in self.items]

    @property
    def noun(self) -> str:
        return SUBJECTS[self.kind][0]

    @property
    def verb(self) -> str:
        return SUBJECTS[self.kind][1]


class Exactly(SequenceExpectation):
    """``heard:``, ``steps:``, ``interrupted:``: exactly this sequence, nothing more, nothing less."""

    def check(self, observed: Observed) -> list[Failure]:
        expected, actual = self.expected(observed), observed.sequence(self.kind)
        if expected == actual:
            return []
        return [Failure(self.location, self.label, f"the {self.noun} differ (- expected, + actual)",
                        diff=sequence_diff(expected, actual))]


class InOrder(SequenceExpectation):
    """``heard_includes:``, ``steps_include:``: these, in this order, with anything in between."""

    def check(self, observed: Observed) -> list[Failure]:
        actual = observed.sequence(self.kind)
        position = 0
        previous: str | None = None
        for item, name in zip(self.items, self.expected(observed)):
            try:
                position = actual.index(name, position) + 1
            except ValueError:
                where = f" after '{previous}'" if previous is not None else ""
                how = "never" if name not in actual else "not"
                message = f"'{name}' was {how} {self.verb}{where}"
                return [Failure(item.location, self.label, message, actual=show_list(actual))]
            previous = name
        return []


class Never(SequenceExpectation):
    """``not_heard:``, ``steps_exclude:``: none of these, ever."""

    def check(self, observed: Observed) -> list[Failure]:
        actual = observed.sequence(self.kind)
        return [
            Failure(item.location, self.label, f"'{name}' was {self.verb} ({actual.count(name)}x)",
                    actual=show_list(actual))
            for item, name in zip(self.items, self.expected(observed)) if name in actual
        ]


@dataclass(frozen=True)
class VarExpected:
    """One ``name: value`` under ``vars:``; ``raw`` is the value as typed (YAML reads ``0042`` as 34)."""

    name: str
    value: Any
    raw: str | None
    location: Location

    def matches(self, actual: Any) -> bool:
        if self.value is None:
            return actual is None
        if isinstance(actual, bool) or isinstance(self.value, bool):  # True == 1 in Python, not in a test
            return actual is self.value or (isinstance(actual, str) and actual == self.raw)
        if actual == self.value:
            return True
        # 12345678 written unquoted for the text "12345678", 0042 (octal in YAML 1.1) for "0042", "7" for 7
        return self.raw is not None and isinstance(actual, (str, int, float)) and str(actual) == self.raw


MISSING = object()


@dataclass(frozen=True)
class VarsMatch(Expectation):
    """``vars:``: these variables have these values at the end of the call (others may exist); null = unset."""

    label: str
    location: Location
    entries: tuple[VarExpected, ...]

    def check(self, observed: Observed) -> list[Failure]:
        failures = []
        for entry in self.entries:
            actual = observed.vars.get(entry.name, MISSING)
            if entry.matches(None if actual is MISSING else actual):
                continue
            shown = "(not set)" if actual is MISSING else repr(actual)
            expected = "(not set)" if entry.value is None else repr(entry.value)
            failures.append(Failure(entry.location, f"{self.label}.{entry.name}",
                                    f"vars.{entry.name} is {shown}", expected=expected, actual=shown))
        return failures


@dataclass(frozen=True)
class OutcomeIs(Expectation):
    """``outcome:``: how the call ended (``queue:billing``, ``closed``, ``caller-hangup``, …)."""

    label: str
    location: Location
    value: str

    def check(self, observed: Observed) -> list[Failure]:
        if observed.outcome == self.value:
            return []
        return [Failure(self.location, self.label, "the call ended differently",
                        expected=repr(self.value), actual=repr(observed.outcome))]


@dataclass(frozen=True)
class TextExpected:
    """One item under ``texts:``: who gets it and what it says (exactly, or a part of it)."""

    location: Location
    to: str | None = None
    text: str | None = None
    contains: str | None = None

    def problem(self, to: str, text: str) -> str | None:
        if self.to is not None and to != self.to:
            return f"went to {to}, not {self.to}"
        if self.text is not None and text != self.text:
            return "says something else"
        if self.contains is not None and self.contains not in text:
            return f"does not contain {self.contains!r}"
        return None


@dataclass(frozen=True)
class TextsMatch(Expectation):
    """``texts:``: exactly these text messages were queued, in order (``texts: []``: none)."""

    label: str
    location: Location
    items: tuple[TextExpected, ...]

    def check(self, observed: Observed) -> list[Failure]:
        actual = [f"to {to}: {text!r}" for to, text in observed.texts]
        if len(observed.texts) != len(self.items):
            return [Failure(self.location, self.label, f"{len(self.items)} text(s) expected, "
                            f"{len(observed.texts)} queued", actual=show_list(actual) if actual else "no text")]
        failures = []
        for index, (item, (to, text)) in enumerate(zip(self.items, observed.texts), start=1):
            problem = item.problem(to, text)
            if problem:
                failures.append(Failure(item.location, f"{self.label}[{index}]", f"text {index} {problem}",
                                        actual=f"to {to}: {text!r}"))
        return failures


@dataclass(frozen=True)
class CallbackExpected:
    """One item under ``callbacks:`` or ``callbacks_cancelled:``: the fields given must match."""

    location: Location
    fields: tuple[tuple[str, Any], ...]  # (field, value) as written; a reason may be null (no reason)

    def problem(self, actual: dict[str, Any]) -> str | None:
        wrong = [f"{name} is {actual.get(name)!r}, not {value!r}" for name, value in self.fields
                 if actual.get(name) != value]
        return "; ".join(wrong) or None


def _describe_callback(callback: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in callback.items() if value is not None)


@dataclass(frozen=True)
class CallbacksMatch(Expectation):
    """``callbacks:`` (registered) or ``callbacks_cancelled:``: exactly these, in order; ``[]``: none."""

    label: str
    location: Location
    items: tuple[CallbackExpected, ...]
    cancelled: bool = False

    def check(self, observed: Observed) -> list[Failure]:
        actual = observed.cancelled if self.cancelled else observed.callbacks
        shown = show_list([_describe_callback(c) for c in actual]) if actual else "none"
        what = "callback(s) cancelled" if self.cancelled else "callback(s) registered"
        if len(actual) != len(self.items):
            return [Failure(self.location, self.label, f"{len(self.items)} {what} expected, {len(actual)} were",
                            actual=shown)]
        failures = []
        for index, (item, callback) in enumerate(zip(self.items, actual), start=1):
            problem = item.problem(callback)
            if problem:
                failures.append(Failure(item.location, f"{self.label}[{index}]", f"callback {index}: {problem}",
                                        actual=_describe_callback(callback)))
        return failures


MAINTENANCE_FIELDS = ("mode", "scope", "until", "action", "target")


def _describe_maintenance(met: dict[str, Any] | None) -> str:
    if met is None:
        return "none"
    return ", ".join(f"{name}={met[name]}" for name in MAINTENANCE_FIELDS if met.get(name) is not None)


def _same_time(expected: dt.datetime, actual: Any) -> bool:
    """A time written without an offset is compared with the flow's local time the call heard."""
    if not isinstance(actual, str):
        return False
    moment = dt.datetime.fromisoformat(actual)
    return (moment.replace(tzinfo=None) if expected.tzinfo is None else moment) == expected


def _same(expected: Any, actual: Any) -> bool:
    return _same_time(expected, actual) if isinstance(expected, dt.datetime) else expected == actual


@dataclass(frozen=True)
class MaintenanceMet(Expectation):
    """``maintenance:``: the maintenance the call met when it started (``none``: it met none); fields not
    written are not compared."""

    label: str
    location: Location
    fields: tuple[tuple[str, Any], ...] | None  # None: no maintenance

    def check(self, observed: Observed) -> list[Failure]:
        met = observed.maintenance
        actual = _describe_maintenance(met)
        if self.fields is None:
            if met is None:
                return []
            return [Failure(self.location, self.label, "the call met maintenance", expected="none", actual=actual)]
        expected = ", ".join(f"{name}={value.isoformat() if isinstance(value, dt.datetime) else value}"
                             for name, value in self.fields)
        if met is None:
            return [Failure(self.location, self.label, "the call met no maintenance", expected=expected,
                            actual="none")]
        wrong = [name for name, value in self.fields if not _same(value, met.get(name))]
        if not wrong:
            return []
        return [Failure(self.location, self.label, f"the maintenance differs in {', '.join(wrong)}",
                        expected=expected, actual=actual)]


@dataclass(frozen=True)
class LanguageSpoken(Expectation):
    """``language: de``: the call speaks German at the end, and every prompt played while it spoke German was
    found in German (none fell back to the flow's own language)."""

    label: str
    location: Location
    language: str

    def check(self, observed: Observed) -> list[Failure]:
        if observed.language != self.language:
            return [Failure(self.location, self.label, "the call ended in another language",
                            expected=self.language, actual=observed.language or "(none)")]
        missing = [f"{prompt} ({played})" for spoken, prompt, played in observed.fallbacks if spoken == self.language]
        if not missing:
            return []
        return [Failure(self.location, self.label, f"{len(missing)} prompt(s) played in another language while the "
                        f"call spoke {self.language}: add them to prompts/{self.language}/catalog.yaml",
                        actual=", ".join(dict.fromkeys(missing)))]


SEQUENCE_KINDS: dict[str, tuple[type[SequenceExpectation], str]] = {
    "heard": (Exactly, "heard"),
    "heard_includes": (InOrder, "heard"),
    "not_heard": (Never, "heard"),
    "interrupted": (Exactly, "interrupted"),
    "steps": (Exactly, "steps"),
    "steps_include": (InOrder, "steps"),
    "steps_exclude": (Never, "steps"),
}
