"""The plan as configuration files: one Jinja2 template per kind of output, a header, a content hash.

Templates live in ``ivrkit/compiler/templates/`` and are rendered with ``StrictUndefined`` (a misspelt name
in a template is an error, never empty text) and no autoescaping (this is not HTML). Everything a template
interpolates goes through one of the filters from :mod:`ivrkit.compiler.dialplan`: ``name`` (contexts,
labels, queues, keys: validated), ``arg`` (an application argument: validated and escaped), ``key`` (a DTMF
key as an extension), ``sound`` (a sound file path in queues.conf) and ``comment``.

Each file starts with a header naming its source files and the sha256 of everything below the header, so
the output diffs cleanly, ``ivrkit compile --check`` can tell a stale file from a hand-edited one, and the
same flows always give the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined

from ivrkit.compiler import dialplan
from ivrkit.compiler.plan import (
    CALLBACK_AGENT_EXTEN,
    CALLBACK_EXTEN,
    CALLBACK_ID_LENGTH,
    GLOBAL_KEY,
    MAINTENANCE_FAMILY,
    Plan,
)

EXTENSIONS_FILE = "extensions-ivrkit.conf"
QUEUES_FILE = "queues-ivrkit.conf"
OUTPUTS = {EXTENSIONS_FILE: "extensions.conf.j2", QUEUES_FILE: "queues.conf.j2"}
HASH_PREFIX = "; sha256 of the text below this header: "


@dataclass(frozen=True)
class FilterSets:
    """The ``FILTER()`` character sets the templates apply to values only the running call knows."""

    queue: str = dialplan.filter_set(dialplan.QUEUE_CHARACTERS)
    destination: str = dialplan.filter_set(dialplan.DESTINATION_CHARACTERS)
    word: str = dialplan.filter_set(dialplan.WORD_CHARACTERS)
    status: str = dialplan.filter_set(dialplan.STATUS_CHARACTERS)
    digits: str = dialplan.filter_set(dialplan.DIGITS)
    outcome: str = dialplan.filter_set(dialplan.OUTCOME_CHARACTERS)
    flow: str = dialplan.filter_set(dialplan.FLOW_CHARACTERS)
    hex: str = dialplan.filter_set(dialplan.HEX_DIGITS)
    number: str = dialplan.filter_set(dialplan.NUMBER_CHARACTERS)


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ivrkit.compiler", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["name"] = dialplan.name
    env.filters["arg"] = dialplan.arg
    env.filters["comment"] = dialplan.comment
    env.filters["key"] = dialplan.key
    env.filters["sound"] = dialplan.sound
    return env


def render(plan: Plan) -> dict[str, str]:
    """File name → complete text (header and body), in a fixed order."""
    env = environment()
    context = {
        "plan": plan,
        "agi": plan.agi,
        "sets": FilterSets(),
        "family": MAINTENANCE_FAMILY,
        "global_key": GLOBAL_KEY,
        "callback_exten": CALLBACK_EXTEN,
        "callback_agent_exten": CALLBACK_AGENT_EXTEN,
        "callback_id_length": CALLBACK_ID_LENGTH,
    }
    files = {}
    for file, template in OUTPUTS.items():
        body = env.get_template(template).render(context)
        files[file] = header(file, plan, body) + body
    return files


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def header(file: str, plan: Plan, body: str) -> str:
    sources = ", ".join(plan.sources) or "no flows"
    lines = [
        f"; {file}: written by `ivrkit compile` from {sources}.",
        "; Do not edit: change the flows and compile again (`ivrkit compile --check` finds stale files).",
        f"; FastAGI server: {plan.agi.base}",
        f"{HASH_PREFIX}{body_hash(body)}",
    ]
    return "".join(dialplan.comment(line) + "\n" for line in lines)


def split_header(text: str) -> tuple[str | None, str]:
    """(the hash the header records, the body), or (None, text) when there is no header."""
    head, found, rest = text.partition(HASH_PREFIX)
    if not found or "\n" not in rest or any(not line.startswith(";") for line in head.splitlines()):
        return None, text
    recorded, _, body = rest.partition("\n")
    return recorded.strip(), body


def edited_by_hand(text: str) -> bool:
    """True when a compiled file's body no longer matches the hash in its header."""
    recorded, body = split_header(text)
    return recorded is None or recorded != body_hash(body)
