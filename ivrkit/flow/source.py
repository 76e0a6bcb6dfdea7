"""YAML read into nodes that remember where they came from.

PyYAML's composer keeps line and column marks on every node; its constructor throws them away. We keep the
node tree and build values from it ourselves, so every later error can point at the exact spot, duplicate
keys are caught (PyYAML silently keeps the last one), and the usual YAML traps for designers (``*`` is an
alias, ``#`` starts a comment, ``08:00`` is a number) get a hint.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from ivrkit.flow.diagnostics import Diagnostics, Location


@dataclass
class Node:
    """A YAML node with its location."""

    location: Location


@dataclass
class Scalar(Node):
    value: Any
    raw: str = ""
    quoted: bool = False

    @property
    def text(self) -> str:
        """The scalar as a designer wrote it, for messages."""
        return str(self.value)


@dataclass
class Sequence(Node):
    items: list[Node] = field(default_factory=list)


@dataclass
class Mapping(Node):
    """A mapping whose keys are strings (YAML ints such as menu keys ``1`` are turned into strings)."""

    entries: dict[str, tuple[Scalar, Node]] = field(default_factory=dict)

    def get(self, key: str) -> Node | None:
        entry = self.entries.get(key)
        return entry[1] if entry else None

    def key_node(self, key: str) -> Scalar:
        return self.entries[key][0]

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def keys(self) -> list[str]:
        return list(self.entries)

    def items(self) -> Iterator[tuple[str, Node]]:
        for key, (_, value) in self.entries.items():
            yield key, value


def describe(node: Node) -> str:
    """A short human name for what a node is, for 'expected X, got Y' messages."""
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a list"
    assert isinstance(node, Scalar)
    value = node.value
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return f"'{value}'"


class _ScalarBuilder(SafeConstructor):
    """Turns one scalar node into its Python value using YAML 1.1 rules (what PyYAML does)."""

    def build(self, node: yaml.ScalarNode) -> Any:
        return self.construct_object(node, deep=True)


def _location(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


# A bare ``#`` where a key should be: YAML reads the rest of the line as a comment and drops the entry.
_COMMENTED_KEY = re.compile(r"(?:^\s*(?:-\s+)?|[{,]\s+)(?P<hash>#):(?:\s|$)")


def _yaml_hint(problem: str, line: str) -> str | None:
    stripped = line.strip()
    if "alias" in problem or "anchor" in problem or stripped.endswith("*") or ": *" in line:
        return 'quote keys such as "*" and "#": in YAML a bare * starts an alias and # a comment'
    if "tab" in problem.lower() or "\t" in line:
        return "YAML indentation must use spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted"
    return None


class SourceReader:
    """Reads YAML text into located nodes, reporting problems into a Diagnostics collection."""

    def __init__(self, file: str, text: str, diagnostics: Diagnostics):
        self.file = file
        self.text = text
        self.diagnostics = diagnostics
        self._builder = _ScalarBuilder()
        diagnostics.remember_source(file, text)

    def read(self) -> Node | None:
        """The document's root node, or None (with a diagnostic) when the YAML does not parse."""
        self._find_commented_keys()
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            location = _location(self.file, mark) if mark else Location(self.file, 1, 1)
            lines = self.text.splitlines()
            line = lines[location.line - 1] if 0 < location.line <= len(lines) else ""
            # The context ("while scanning an alias") often names the trap better than the problem does.
            hint = _yaml_hint(f"{exc.context or ''} {exc.problem}", line)
            self.diagnostics.error(location, f"invalid YAML: {exc.problem}", hint)
            return None
        if root is None:
            self.diagnostics.error(
                Location(self.file, 1, 1), "the file is empty", "a flow file starts with 'flow: <name>'"
            )
            return None
        return self._convert(root)

    def _find_commented_keys(self) -> None:
        """Report ``#: …`` where a key belongs: YAML silently drops it as a comment."""
        for number, line in enumerate(self.text.splitlines(), start=1):
            match = _COMMENTED_KEY.search(line)
            if match:
                self.diagnostics.error(
                    Location(self.file, number, match.start("hash") + 1),
                    "this '#' starts a comment, so the rest of the line is ignored",
                    'quote the key: "#": …',
                )

    def _convert(self, node: yaml.Node) -> Node:
        location = _location(self.file, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            self._builder.flatten_mapping(node)
            mapping = Mapping(location)
            for key_node, value_node in node.value:
                key = self._convert(key_node)
                if not isinstance(key, Scalar) or isinstance(key.value, (list, dict)):
                    self.diagnostics.error(key.location, "a key must be a plain word or number")
                    continue
                name = key.raw  # keys as typed: `1`, `on` and `2026-12-25` stay strings
                if name in mapping.entries:
                    first = mapping.entries[name][0].location
                    self.diagnostics.error(
                        key.location,
                        f"duplicate key '{name}' (first defined at line {first.line})",
                        "YAML keeps only the last one; remove or rename one of them",
                    )
                    continue
                mapping.entries[name] = (Scalar(key.location, name, name, key.quoted), self._convert(value_node))
            return mapping
        if isinstance(node, yaml.SequenceNode):
            return Sequence(location, [self._convert(item) for item in node.value])
        assert isinstance(node, yaml.ScalarNode)
        try:
            value = self._builder.build(node)
        except (yaml.constructor.ConstructorError, ValueError) as exc:
            self.diagnostics.error(location, f"cannot read value '{node.value}': {exc}")
            value = node.value
        return Scalar(location, value, node.value, node.style in ("'", '"'))


def read_source(file: str, text: str, diagnostics: Diagnostics) -> Node | None:
    """Read YAML text into located nodes; problems go to ``diagnostics``."""
    return SourceReader(file, text, diagnostics).read()


def plain(node: Node) -> Any:
    """The node as plain Python values (locations dropped)."""
    if isinstance(node, Mapping):
        return {key: plain(value) for key, value in node.items()}
    if isinstance(node, Sequence):
        return [plain(item) for item in node.items]
    assert isinstance(node, Scalar)
    return node.value
