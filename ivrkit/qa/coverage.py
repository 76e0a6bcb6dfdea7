"""Coverage of flows by flow tests: steps entered, menu choices taken, prompts heard, and what never was.

Counted from the journals of the simulated calls, against what each flow file declares, so an untested
menu key or a re-prompt nobody ever hears shows up by name. Every loaded flow is listed, tested or not,
and a flow with no menus shows ``-`` for choices rather than a flattering 100 %.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ivrkit.flow.model import Flow
from ivrkit.sim.session import SimulationResult
from ivrkit.steps.menu import Menu


@dataclass
class Tally:
    """Items of one kind in one flow, and those reached."""

    items: list[str]
    reached: set[str] = field(default_factory=set)

    @property
    def hits(self) -> int:
        return sum(1 for item in self.items if item in self.reached)

    @property
    def unreached(self) -> list[str]:
        return [item for item in self.items if item not in self.reached]

    def cell(self) -> str:
        if not self.items:
            return "-"
        return f"{self.hits:>3}/{len(self.items):<3} {100.0 * self.hits / len(self.items):5.1f}%"


def choice_label(step: str, key: str, target: str) -> str:
    return f"{step} {key}→{target}"


@dataclass
class FlowCoverage:
    flow: str
    steps: Tally
    choices: Tally
    prompts: Tally
    choice_labels: dict[tuple[str, str], str] = field(default_factory=dict)  # (step, key) → label

    @classmethod
    def of(cls, flow: Flow) -> FlowCoverage:
        labels = {
            (name, key): choice_label(name, key, target)
            for name, step in flow.steps.items() if isinstance(step, Menu)
            for key, target in step.value.choices.items()
        }
        # the steps' prompts and the `maintenance:` block's; the `dialplan:` block's (fallback, the gate's) are the
        # dialplan's: no flow test hears them
        steps_prompts = (ref.name for ref in flow.references if ref.kind == "prompt"
                         and (ref.owner is not None or ref.label.startswith("maintenance")))
        prompts = list(dict.fromkeys(steps_prompts))
        return cls(flow.name, Tally(list(flow.steps)), Tally(list(labels.values())), Tally(prompts), labels)


class Coverage:
    """Accumulates coverage over any number of simulated calls."""

    def __init__(self, flows: Mapping[str, Flow]):
        self.flows = {name: FlowCoverage.of(flow) for name, flow in sorted(flows.items())}
        self.calls = 0

    def add(self, result: SimulationResult) -> None:
        self.calls += 1
        for event in result.journal.events:
            cover = self.flows.get(event.flow)
            if cover is None:
                continue
            if event.kind == "step" and event.step:
                cover.steps.reached.add(event.step)
            elif event.kind == "choice" and event.step:
                label = cover.choice_labels.get((event.step, str(event.detail.get("key"))))
                if label:
                    cover.choices.reached.add(label)
            elif event.kind == "played" and "prompt" in event.detail:
                cover.prompts.reached.add(event.detail["prompt"])

    def table(self) -> str:
        """The per-flow table and, below it, every item never reached."""
        header = ("flow", "steps", "menu choices", "prompts")
        rows = [(c.flow, c.steps.cell(), c.choices.cell(), c.prompts.cell()) for c in self.flows.values()]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        lines = [f"coverage over {self.calls} simulated call(s)"]
        lines.extend("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [header, *rows])
        for cover in self.flows.values():
            for what, tally in (("steps never entered", cover.steps), ("menu choices never taken", cover.choices),
                                ("prompts never heard", cover.prompts)):
                if tally.unreached:
                    lines.append(f"{cover.flow}: {what}: {', '.join(tally.unreached)}")
        return "\n".join(lines)
