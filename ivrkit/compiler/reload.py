"""Apply compiled output to a running Asterisk over AMI, and know whether it really loaded.

The CLI's ``dialplan reload`` prints "Dialplan reloaded." whatever happened, so it proves nothing. What
Asterisk 22.10 answers over AMI (checked by ``tests/asterisk/test_compiled_dialplan.py``):

* ``Reload Module=pbx_config`` answers ``Success`` ("Module Reloaded") only when extensions.conf parsed. A
  missing ``#include`` (a glob that matches nothing counts as missing) answers ``Error`` ("An unknown error
  occurred") and the previous dialplan stays active.
* ``Reload Module=app_queue`` answers ``Success`` even when queues.conf cannot be parsed (app_queue's reload
  ignores its own result; the log says "Config file queues.conf is in an invalid format"). ``QueueReload``
  answers "Error encountered while reloading queue" instead, so the queues are reloaded with it.
* A dialplan that parsed may still lack the compiled contexts (the ``#include`` line is missing, or names
  another file): ``ShowDialPlan Context=<name>`` answers "Did not find context <name>", and for a context
  that exists its ``ListDialplan`` events count the priorities, which must match the compiled file.
* ``QueueStatus Queue=<name>`` lists a ``QueueParams`` event (``Strategy``, ``Max``) for a queue that exists.

AMI rights (``write=`` classes in manager.conf; any one listed class allows the action): ``Reload`` needs
``config`` or ``system``, ``ShowDialPlan`` ``config`` or ``reporting``, ``QueueReload`` and ``QueueStatus``
none. So an AMI user with ``write = config`` (and no ``read``) can apply and verify.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ivrkit.ami.client import AmiClient, AmiError

_CONTEXT = re.compile(r"^\[([^\]]+)\]")
_PRIORITY = re.compile(r"^\s*(?:exten|same)\s*=>")
_SETTING = re.compile(r"^(\w[\w-]*)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class Expected:
    """What must be loaded: contexts with their number of priorities, queues with strategy and maxlen."""

    contexts: dict[str, int] = field(default_factory=dict)
    queues: dict[str, tuple[str, int]] = field(default_factory=dict)


def expected_from(extensions: str, queues: str) -> Expected:
    """Read the expectations from compiled files (the text of ``ivrkit compile``'s output).

    >>> expected_from("[a]\\nexten => s,1,NoOp()\\n same => n,Hangup()\\n", "[q]\\nstrategy = ringall\\nmaxlen = 0\\n")
    Expected(contexts={'a': 2}, queues={'q': ('ringall', 0)})
    """
    contexts: dict[str, int] = {}
    current: str | None = None
    for line in extensions.splitlines():
        header = _CONTEXT.match(line)
        if header:
            current = header.group(1)
            contexts[current] = 0
        elif current is not None and _PRIORITY.match(line):
            contexts[current] += 1
    found: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    for line in queues.splitlines():
        header = _CONTEXT.match(line)
        if header:
            section = found.setdefault(header.group(1), {})
            continue
        setting = _SETTING.match(line)
        if section is not None and setting:
            section[setting.group(1)] = setting.group(2)
    return Expected(
        contexts,
        {name: (values.get("strategy", "ringall"), int(values.get("maxlen", "0"))) for name, values in found.items()},
    )


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str


@dataclass
class ReloadReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def render(self) -> str:
        lines = [f"{'ok  ' if check.ok else 'FAIL'}  {check.what}: {check.detail}" for check in self.checks]
        verdict = "loaded and verified" if self.ok else "NOT loaded as compiled: see FAIL above"
        return "\n".join([*lines, verdict])


def _refused(error: AmiError, needs: str) -> str:
    message = error.response_message()
    if message == "Permission denied":
        return f"permission denied: the AMI user needs write={needs} in manager.conf"
    return message


def apply(ami: AmiClient, expected: Expected) -> ReloadReport:
    """Reload the dialplan and the queues, then check that everything compiled is loaded as compiled."""
    report = ReloadReport()
    try:
        ami.send("Reload", Module="pbx_config")
        report.checks.append(Check("reload pbx_config", True, "extensions.conf parsed"))
    except AmiError as error:
        detail = _refused(error, "config")
        if detail == "An unknown error occurred":
            detail = "extensions.conf did not parse (a missing #include?); the previous dialplan stays active"
        report.checks.append(Check("reload pbx_config", False, detail))
    try:
        ami.send("QueueReload")
        report.checks.append(Check("reload app_queue", True, "queues.conf parsed"))
    except AmiError as error:
        detail = error.response_message()
        if detail.startswith("Error encountered"):
            detail = "queues.conf did not parse (a missing #include?); the previous queues stay"
        report.checks.append(Check("reload app_queue", False, detail))
    for context, priorities in expected.contexts.items():
        report.checks.append(_check_context(ami, context, priorities))
    for queue, (strategy, maxlen) in expected.queues.items():
        report.checks.append(_check_queue(ami, queue, strategy, maxlen))
    return report


def _check_context(ami: AmiClient, context: str, priorities: int) -> Check:
    what = f"context {context}"
    try:
        response = ami.send_list("ShowDialPlan", Context=context)
    except AmiError as error:
        detail = _refused(error, "config")
        if detail.startswith("Did not find context"):
            detail = "not loaded: is the compiled file #included from extensions.conf?"
        return Check(what, False, detail)
    loaded = sum(1 for event in response.events if event.name == "ListDialplan" and event.get("Context") == context)
    if loaded != priorities:
        return Check(what, False, f"{loaded} priorities loaded, {priorities} compiled: the loaded file is another one")
    return Check(what, True, f"{loaded} priorities")


def _check_queue(ami: AmiClient, queue: str, strategy: str, maxlen: int) -> Check:
    what = f"queue {queue}"
    try:
        response = ami.send_list("QueueStatus", Queue=queue)
    except AmiError as error:
        return Check(what, False, error.response_message())
    params = [event for event in response.events if event.name == "QueueParams" and event.get("Queue") == queue]
    if not params:
        return Check(what, False, "not loaded: is the compiled file #included from queues.conf?")
    loaded = (params[0].get("Strategy", ""), params[0].get("Max", ""))
    if loaded != (strategy, str(maxlen)):
        return Check(
            what,
            False,
            f"strategy {loaded[0]}, maxlen {loaded[1]} loaded, {strategy} and {maxlen} compiled: "
            "another section of queues.conf defines it too",
        )
    return Check(what, True, f"strategy {strategy}, maxlen {maxlen}")
