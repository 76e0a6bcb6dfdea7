"""Reading ``*.test.yaml`` files: a flow, shared defaults, and named cases.

::

    flow: support
    defaults: {caller: {number: "+4930123456"}, now: "2026-11-23T10:00:00+01:00"}
    cases:
      billing balance:
        press: [1, 1, "12345678", 1]
        expect: {outcome: "queue:billing", vars: {account: "12345678"}}

Problems are reported like flow-file problems, at ``file:line:col``. A problem inside one case breaks only
that case (it fails with the message, the others still run); a problem outside the cases breaks the file.
Names in expectations are checked against the loaded flows (:func:`resolve`), so a misspelt prompt under
``not_heard`` is an error rather than a test that can never fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any

from ivrkit.flow.diagnostics import Diagnostics, Location, did_you_mean, relative_name
from ivrkit.flow.fields import INVALID, LANGUAGE, NAME_PATTERN, Any_, LocalDateTime, Option, ParseContext, Record, Text
from ivrkit.flow.model import Flow
from ivrkit.flow.segments import SAY_KINDS
from ivrkit.flow.source import Mapping, Node, Scalar, read_source
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.qa.expect import PROMPT_SUBJECTS, SEQUENCE_KINDS, Exactly, Expectation, SequenceExpectation
from ivrkit.qa.fields import EXPECT, STATE, CompactKeys, Handoffs, Presses, RawText, ScriptActions
from ivrkit.qa.model import FlowTest, Located, Setup, Suite

SCRIPT_KEYS = ("press", "keys", "script")
SETUP_OPTIONS: dict[str, Option] = {
    "caller": Option(
        Record(
            {
                "number": Option(RawText("phone number"), "Caller ID number, e.g. \"+4930123456\"."),
                "name": Option(RawText("caller name"), "Caller ID name."),
            },
            what="caller",
        ),
        "Who calls: {number, name}.",
    ),
    "now": Option(LocalDateTime(), "When the call starts; without an offset, in the flow's timezone."),
    "language": Option(LANGUAGE, "The language the channel speaks when the call comes in (CHANNEL(language)): "
                       "the call speaks it if the flow does (or its base language), else the flow's own."),
    "state": Option(STATE, "Faked external state: {queues: {NAME: {waiting: 3}}, maintenance: planned}."),
    "handoffs": Option(Handoffs(), "What the dialplan answers after each hand-off (default answered)."),
}
CASE_OPTIONS: dict[str, Option] = {
    "description": Option(Text(), "What the case is about."),
    **SETUP_OPTIONS,
    "press": Option(Presses(), "Keys typed each time the IVR listens: [1, 1, \"12345678\", 1]."),
    "keys": Option(CompactKeys(), "The compact form: \"1 1 12345678 s w10 h\"."),
    "script": Option(ScriptActions(), "Caller actions with timing: press/silence/wait/hangup, after, during, in_step."),
    "expect": Option(EXPECT, "What must come of the call.", required=True),
}
TOP_OPTIONS: dict[str, Option] = {
    "flow": Option(Text(NAME_PATTERN, what="flow name"), "The flow under test.", required=True),
    "description": Option(Text(), "What the file tests."),
    "defaults": Option(Record(SETUP_OPTIONS, what="defaults"), "Setup shared by every case."),
    "cases": Option(Any_(), "The cases, by name.", required=True),
}
# `expect` is parsed on its own, so its names are checked even when another option of the case is wrong
CASE: Record[dict[str, Any]] = Record(
    {**CASE_OPTIONS, "expect": Option(Any_(), CASE_OPTIONS["expect"].help, required=True)}, what="test case"
)
_SPOKEN = re.compile(rf"^(?:{'|'.join(SAY_KINDS)}):")


def load_suite_text(text: str, file: str) -> Suite:
    """Parse a test file's text; problems go to the suite's (file-level) or each case's diagnostics."""
    suite = Suite(file)
    root = read_source(file, text, suite.diagnostics)
    if root is None:
        return suite
    if not isinstance(root, Mapping):
        suite.diagnostics.error(root.location, "a flow-test file is a mapping that starts with 'flow: <name>'")
        return suite
    ctx = ParseContext(suite.diagnostics)
    for key in root.keys():
        if key not in TOP_OPTIONS:
            ctx.error(root.key_node(key), f"unknown key '{key}' in a flow-test file",
                      did_you_mean(key, TOP_OPTIONS) or f"known keys: {', '.join(TOP_OPTIONS)}")
    for key in ("flow", "cases"):
        if key not in root:
            ctx.error(root.location, f"a flow-test file needs '{key}': {TOP_OPTIONS[key].help}")
    flow_node = root.get("flow")
    if flow_node is not None:
        name = TOP_OPTIONS["flow"].field.parse(flow_node, ctx)
        suite.flow = None if name is INVALID else Located(name, flow_node.location)
    description = root.get("description")
    suite.description = None if description is None else TOP_OPTIONS["description"].field.parse(description, ctx)
    defaults_node = root.get("defaults")
    defaults = Setup() if defaults_node is None else _setup(TOP_OPTIONS["defaults"].field.parse(defaults_node, ctx))
    cases = root.get("cases")
    if cases is not None and (not isinstance(cases, Mapping) or not cases.entries):
        ctx.error(cases, "`cases` must be a mapping of case names to cases", "e.g. cases: {happy path: {press: [1]}}")
    elif isinstance(cases, Mapping) and suite.flow is not None and defaults is not None:
        flow = suite.flow.value
        suite.cases = [_case(name, cases.key_node(name), node, suite, flow, defaults) for name, node in cases.items()]
    return suite


def _setup(values: dict[str, Any] | Any) -> Setup | None:
    if values is INVALID:
        return None
    caller = values.get("caller") or {}
    return Setup(caller.get("number"), caller.get("name"), values.get("language"), values.get("now"),
                 values.get("state"), values.get("handoffs"))


def _case(name: str, key: Scalar, node: Node, suite: Suite, flow: str, defaults: Setup) -> FlowTest:
    case = FlowTest(name, suite.file, key.location, flow)
    case.problems.sources.update(suite.diagnostics.sources)
    ctx = ParseContext(case.problems)
    if (isinstance(node, Mapping) and not node.entries) or (isinstance(node, Scalar) and node.value is None):
        ctx.error(key, f"the case '{name}' is empty", "give it `press:` (or `keys:`/`script:`) and `expect:`")
        return case
    values: dict[str, Any] = CASE.parse(node, ctx)
    expect = node.get("expect") if isinstance(node, Mapping) else None
    if expect is not None:
        case.expectations = _expectations(EXPECT.parse(expect, ctx), expect, ctx)
    if values is INVALID or not isinstance(node, Mapping):
        return case
    given = [key_name for key_name in SCRIPT_KEYS if key_name in node]
    if len(given) > 1:
        message = f"a case has one caller script, but both '{given[0]}' and '{given[1]}' give one"
        ctx.error(node.key_node(given[1]), message,
                  "use `press:` for plain keys, `keys:` for the compact form, `script:` for timing")
    case.description = values["description"]
    case.setup = (_setup(values) or Setup()).over(defaults)
    case.script = values[given[0]] if given else []
    return case


def _expectations(values: dict[str, Any], node: Node, ctx: ParseContext) -> list[Expectation]:
    if values is INVALID:
        return []
    expectations: list[Expectation] = []
    for key, value in values.items():
        if value is None:
            continue
        if key in SEQUENCE_KINDS:
            kind, subject = SEQUENCE_KINDS[key]
            if not value.value and not issubclass(kind, Exactly):  # `heard: []` (nothing heard) can fail
                ctx.error(value.location, f"`{key}` is empty, so it can never fail", "list at least one name")
            expectations.append(kind(f"expect.{key}", value.location, subject, value.value))
        else:
            expectations.append(value)
    if not expectations:
        ctx.error(node, "`expect` is empty, so the case can never fail",
                  f"give at least one of: {', '.join(EXPECT.options)}")
    return expectations


def load_suite(path: Path) -> Suite:
    file = relative_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        suite = Suite(file)
        suite.diagnostics.error(Location(file, 1, 1), f"cannot read the file: {exc}")
        return suite
    return load_suite_text(text, file)


def known_prompts(flows: MappingABC[str, Flow], catalog: PromptCatalog | None) -> set[str]:
    """Every prompt a flow plays or the catalog holds: the names expectations may mention."""
    names = {ref.name for flow in flows.values() for ref in flow.references if ref.kind == "prompt"}
    if catalog is not None:
        names.update(prompt for entries in catalog.languages.values() for prompt in entries)
    return names


def resolve(suite: Suite, flows: MappingABC[str, Flow], catalog: PromptCatalog | None = None) -> None:
    """Check the names a suite mentions against the flows; problems go where the names were written."""
    if suite.flow is None or suite.broken:
        return
    if suite.flow.value not in flows:
        suite.diagnostics.error(suite.flow.location, f"there is no flow named '{suite.flow.value}'",
                                did_you_mean(suite.flow.value, flows) or f"flows: {', '.join(sorted(flows)) or 'none'}")
        return
    prompts = known_prompts(flows, catalog)
    for case in suite.cases:
        checker = _NameChecker(flows, flows[case.flow], prompts, case.problems)
        for expectation in case.expectations:
            if isinstance(expectation, SequenceExpectation):
                subject = expectation.kind
                for item in expectation.names():
                    if subject in PROMPT_SUBJECTS:
                        checker.prompt(item, spoken=subject == "heard")
                    else:
                        checker.step(item)
        for step in case.script:
            if step.action.during:
                checker.prompt(Located(step.action.during, step.location), spoken=False)
            if step.action.in_step:
                checker.any_step(Located(step.action.in_step, step.location))


class _NameChecker:
    def __init__(self, flows: MappingABC[str, Flow], flow: Flow, prompts: set[str], diagnostics: Diagnostics):
        self.flows, self.flow, self.prompts, self.diagnostics = flows, flow, prompts, diagnostics

    def prompt(self, item: Located[str], spoken: bool) -> None:
        if item.value in self.prompts or (spoken and _SPOKEN.match(item.value)):
            return
        hint = did_you_mean(item.value, self.prompts)
        if spoken and hint is None:
            hint = f"spoken values are written {'|'.join(SAY_KINDS)}:VALUE, e.g. digits:12345678"
        self.diagnostics.error(item.location, f"no flow plays a prompt named '{item.value}'", hint)

    def step(self, item: Located[str]) -> None:
        flow_name, dot, step = item.value.rpartition(".")
        flow = self.flows.get(flow_name) if dot else self.flow
        if dot and flow is None:
            self.diagnostics.error(item.location, f"there is no flow named '{flow_name}'",
                                   did_you_mean(flow_name, self.flows))
        elif flow is not None and step not in flow.steps:
            self.diagnostics.error(item.location, f"flow '{flow.name}' has no step named '{step}'",
                                   did_you_mean(step, flow.steps))

    def any_step(self, item: Located[str]) -> None:
        names: Iterable[str] = {step for flow in self.flows.values() for step in flow.steps}
        if item.value not in names:
            self.diagnostics.error(item.location, f"no flow has a step named '{item.value}'",
                                   did_you_mean(item.value, names))
