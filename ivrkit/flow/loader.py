"""Flow files to :class:`~ivrkit.flow.model.Flow` objects: the first stage of ``ivrkit check``.

The loader reports shape problems (unknown keys, wrong types, missing options) with their positions and
keeps going, so one run shows every mistake. Cross-references and graph checks live in
:mod:`ivrkit.flow.checks`.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ivrkit.flow.diagnostics import Diagnostics, Location, did_you_mean, relative_name
from ivrkit.flow.fields import (
    INVALID,
    LANGUAGE,
    NAME_PATTERN,
    Any_,
    Duration,
    Integer,
    Key,
    ListOf,
    MapOf,
    Option,
    ParseContext,
    Record,
    StepRef,
    Text,
)
from ivrkit.flow.hours import ScheduleField, is_timezone
from ivrkit.flow.maintenance import MAINTENANCE_OPTION, MaintenanceSettings
from ivrkit.flow.model import DEFAULT_CANCEL_KEY, Defaults, Flow
from ivrkit.flow.pbx import DIALPLAN_OPTION, MAINTENANCE_MODES, QUEUES_OPTION, DialplanSettings
from ivrkit.flow.source import Mapping, Scalar, read_source
from ivrkit.steps import COMMON_OPTIONS, STEP_KINDS, Step
from ivrkit.steps.sms import SMS_OPTION


class _Timezone(Text):
    def parse(self, node: Any, ctx: ParseContext) -> str:
        name = super().parse(node, ctx)
        if name is not INVALID and not is_timezone(name):
            return ctx.error(node, f"unknown timezone '{name}'", did_you_mean(name, zoneinfo.available_timezones()))
        return name


TIMEZONE = _Timezone(what="timezone such as Europe/Berlin")

FLOW_OPTIONS: dict[str, Option] = {
    "flow": Option(
        Text(NAME_PATTERN, what="flow name"), "The flow's name, used in `AGI(agi://host/<name>)`.", required=True
    ),
    "description": Option(Text(), "What the flow is for."),
    "timezone": Option(TIMEZONE, "Timezone for `now` in expressions and for spoken dates.", "UTC"),
    "language": Option(
        LANGUAGE,
        "The flow's own language: calls whose channel speaks none of `languages` use it, and a prompt missing in "
        "the call's language is played in it.",
        "en",
    ),
    "languages": Option(
        ListOf(LANGUAGE),
        "Every language the flow speaks (default: just `language`). Checks want each prompt in each of them.",
    ),
    "start": Option(StepRef(), "The first step.", required=True),
    "cancel_key": Option(
        Key(allow_none=True),
        'Key that backs out of the current step (default "*"; `none` turns it off).',
        DEFAULT_CANCEL_KEY,
    ),
    "defaults": Option(
        Record(
            {
                "timeout": Option(Duration(), "Wait for the first key or digit.", Defaults.timeout),
                "inter_digit_timeout": Option(Duration(), "Wait between digits.", Defaults.inter_digit_timeout),
                "retries": Option(
                    Integer(0, 20), "Retries after the first try in menus and collections.", Defaults.retries
                ),
            },
            factory=Defaults,
            what="defaults",
        ),
        "Timing defaults for the whole flow.",
        Defaults(),
    ),
    "schedules": Option(
        MapOf(Text(NAME_PATTERN, what="schedule name"), ScheduleField(), "schedules"),
        "Named business hours that `hours` steps can refer to.",
        {},
    ),
    "variables": Option(
        MapOf(Text(NAME_PATTERN, what="variable name"), Any_(), "variables"),
        "Flow variables and their starting values.",
        {},
    ),
    "on_hangup": Option(StepRef(), "Step run when the caller hangs up (only `set`, `branch` and `goto` can run then)."),
    "on_error": Option(StepRef(), "Step the call goes to when a step fails (default: hang up with outcome `error`)."),
    "maintenance": MAINTENANCE_OPTION,
    "dialplan": DIALPLAN_OPTION,
    "queues": QUEUES_OPTION,
    "sms": SMS_OPTION,
    "steps": Option(Any_(), "The steps, by name.", required=True),
}


@dataclass
class LoadResult:
    flows: dict[str, Flow] = field(default_factory=dict)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    unloaded: set[str] = field(default_factory=set)  # flows whose files have errors: others may still name them


def load_text(text: str, file: str, diagnostics: Diagnostics | None = None) -> Flow | None:
    """Parse one flow file's text; problems go to ``diagnostics``. None when it cannot be built at all."""
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    root = read_source(file, text, diagnostics)
    if root is None:
        return None
    if not isinstance(root, Mapping):
        diagnostics.error(root.location, "a flow file is a mapping that starts with 'flow: <name>'")
        return None
    ctx = ParseContext(diagnostics)
    top: dict[str, Any] = Record(FLOW_OPTIONS, what="flow").parse(_without(root, "steps"), ctx)
    steps_node = root.get("steps")
    steps = _load_steps(steps_node, ctx) if steps_node is not None else {}
    if top is INVALID or steps_node is None or not steps:
        return None  # a missing `steps` is reported as a missing required option
    for step in steps.values():
        if step is INVALID:
            return None
    maintenance: MaintenanceSettings | None = top["maintenance"]
    if maintenance is not None:
        maintenance = maintenance.bound(top["flow"], top["timezone"], file)
    flow = Flow(
        name=top["flow"],
        file=file,
        location=root.location,
        start=top["start"],
        steps=steps,
        language=top["language"],
        languages=_languages(top["language"], top["languages"]),
        timezone=top["timezone"],
        description=top["description"],
        cancel_key=top["cancel_key"],
        defaults=top["defaults"],
        schedules=top["schedules"],
        variables=top["variables"],
        on_hangup=top["on_hangup"],
        on_error=top["on_error"],
        dialplan=_gate_prompts(top["dialplan"], maintenance, root),
        queues=top["queues"],
        maintenance=maintenance,
        sms=top["sms"],
        references=ctx.references,
        node=root,
    )
    for step in steps.values():
        step.check_flow(flow, ctx)
    return flow


def _gate_prompts(dialplan: DialplanSettings, maintenance: MaintenanceSettings | None,
                  root: Mapping) -> DialplanSettings:
    """The compiled gate plays a mode's first prompt from the ``maintenance:`` block, unless the flow names the
    gate's own under ``dialplan.maintenance``: designers write each announcement once."""
    if maintenance is None:
        return dialplan
    settings = root.get("dialplan")
    written = settings.get("maintenance") if isinstance(settings, Mapping) else None
    named = set(written.keys()) if isinstance(written, Mapping) else set()
    chosen = {mode: prompts[0] for mode in MAINTENANCE_MODES
              if mode not in named and (prompts := maintenance.handling(mode).prompt)}
    return replace(dialplan, maintenance=replace(dialplan.maintenance, **chosen)) if chosen else dialplan


def _without(node: Mapping, key: str) -> Mapping:
    """The mapping with ``key``'s value replaced by a placeholder (it is parsed separately)."""
    copy = Mapping(node.location, dict(node.entries))
    if key in copy.entries:
        key_node, value = copy.entries[key]
        copy.entries[key] = (key_node, Scalar(value.location, None, "", False))
    return copy


def _load_steps(node: Any, ctx: ParseContext) -> dict[str, Step]:
    if not isinstance(node, Mapping) or not node.entries:
        ctx.error(node, "`steps` must be a mapping of step names to steps", "e.g. steps: {greeting: {play: welcome}}")
        return {}
    steps: dict[str, Step] = {}
    for name, step_node in node.items():
        key_node = node.key_node(name)
        if not NAME_PATTERN.match(name):
            ctx.error(key_node, f"'{name}' is not a valid step name", "use letters, digits, '_' and '-'")
            steps[name] = INVALID
            continue
        ctx.step = name
        step = load_step(name, key_node.location, step_node, ctx)
        ctx.step = None
        # A step that failed stays in as INVALID, so the flow is not built: building it without the step
        # would make every reference to it a second, misleading "unknown step" error.
        steps[name] = INVALID if step is None else step
    return steps


def load_step(name: str, location: Location, node: Any, ctx: ParseContext) -> Step | None:
    """One step: find its kind key, parse the kind's value and the sibling options."""
    if not isinstance(node, Mapping):
        ctx.error(node, f"step '{name}' must be a mapping such as {{play: welcome, next: menu}}")
        return None
    kinds = [key for key in node.keys() if key in STEP_KINDS]
    if len(kinds) > 1:
        ctx.error(
            node.key_node(kinds[1]),
            f"step '{name}' has two kinds, '{kinds[0]}' and '{kinds[1]}'",
            "split it into two steps joined by `next`",
        )
        return None
    if not kinds:
        unknown = [key for key in node.keys() if key not in COMMON_OPTIONS and not _is_option_of_any_kind(key)]
        if unknown:
            key = unknown[0]
            ctx.error(
                node.key_node(key),
                f"unknown step kind '{key}'",
                did_you_mean(key, STEP_KINDS) or f"step kinds are: {', '.join(STEP_KINDS)}",
            )
        else:
            ctx.error(node.location, f"step '{name}' has no kind", f"add one of: {', '.join(STEP_KINDS)}")
        return None
    kind = STEP_KINDS[kinds[0]]
    allowed = {**COMMON_OPTIONS, **kind.options}
    settings: dict[str, Any] = {}
    failed = False
    for key, value_node in node.items():
        if key == kind.kind:
            continue
        if key not in allowed:
            hint = did_you_mean(key, [*allowed, *STEP_KINDS]) or f"a {kind.kind} step takes: {', '.join(allowed)}"
            ctx.error(node.key_node(key), f"unknown option '{key}' for a {kind.kind} step", hint)
            failed = True
            continue
        with ctx.at(key):
            settings[key] = allowed[key].field.parse(value_node, ctx)
        failed = failed or settings[key] is INVALID
    for key, option in allowed.items():
        if key not in settings:
            if option.required:
                ctx.error(node.key_node(kind.kind), f"a {kind.kind} step needs '{key}': {option.help}")
                failed = True
            settings[key] = option.default
    with ctx.at(kind.kind):
        value = kind.body.parse(node.get(kind.kind), ctx)  # type: ignore[arg-type]
    if failed or value is INVALID:
        return INVALID
    return kind(name, location, value, settings)


def _is_option_of_any_kind(key: str) -> bool:
    return any(key in kind.options for kind in STEP_KINDS.values())


def load_file(path: Path, diagnostics: Diagnostics | None = None) -> Flow | None:
    diagnostics = diagnostics if diagnostics is not None else Diagnostics()
    file = relative_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        diagnostics.error(Location(file, 1, 1), f"cannot read the file: {exc}")
        return None
    return load_text(text, file, diagnostics)


def flow_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


_DECLARED_NAME = re.compile(r"^flow:\s*['\"]?([A-Za-z_][A-Za-z0-9_-]*)", re.MULTILINE)


def load_directory(directory: Path) -> LoadResult:
    """Every flow in a directory; two files declaring the same flow name is an error."""
    result = LoadResult()
    if not directory.is_dir():
        result.diagnostics.error(
            Location(relative_name(directory), 1, 1), "no such flow directory", "pass --flows DIR or create flows/"
        )
        return result
    for path in flow_files(directory):
        flow = load_file(path, result.diagnostics)
        if flow is None:
            declared = _DECLARED_NAME.search(path.read_text(encoding="utf-8", errors="replace"))
            if declared:
                result.unloaded.add(declared.group(1))
            continue
        if flow.name in result.flows:
            other = result.flows[flow.name]
            result.diagnostics.error(
                flow.location,
                f"flow '{flow.name}' is also defined in {other.file}",
                "flow names must be unique: rename one",
            )
            continue
        result.flows[flow.name] = flow
    return result


def _languages(language: str, declared: list[str] | None) -> tuple[str, ...]:
    """The flow's languages, its own first and each once."""
    return tuple(dict.fromkeys([language, *(declared or ())]))
