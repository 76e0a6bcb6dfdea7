"""Live queue statistics from Asterisk's dialplan functions, as pure functions: the expressions to expand with
``GET FULL VARIABLE`` and the reading of what comes back.

One expansion reads everything but the paused agents; Asterisk 22.10 expands the argument left to right, so
``QUEUE_VARIABLES`` has set the channel's ``QUEUE*`` variables before they are read in the same line. What
each function answers (checked on the real PBX by ``tests/asterisk/test_queues.py``):

* ``QUEUE_EXISTS(q)``: 1 or 0. For a missing queue every other function reads 0 (or nothing) and logs a
  WARNING, so the numbers mean something only when it is 1; a missing queue reads as ``exists=False``.
* ``QUEUE_WAITING_COUNT(q)``: callers waiting; the caller about to join will be one more.
* ``QUEUE_MEMBER(q,logged)``: members whose device is neither unavailable nor invalid, paused ones included;
  ``ready``: not in use, not paused and not in wrap-up; ``free``: not in use and not paused, wrap-up included.
* ``QUEUE_VARIABLES(q)``: 0 after setting ``QUEUEHOLDTIME``, ``QUEUETALKTIME``, ``QUEUECOMPLETED`` (among
  others) when the queue has ``setqueuevar = yes`` (the compiler always writes it); -1 and nothing set
  otherwise, when the three are left at 0 rather than read stale from an earlier queue.
* ``QUEUE_MEMBER(q,paused)`` counts nothing in 22: it needs a member's interface (without one it logs an
  ERROR and reads 0). So the first expansion also reads ``QUEUE_MEMBER_LIST(q)``, and only when some
  logged-in agent is not free (else none can be paused) each member's ``paused`` flag is read, in as few
  further commands as Asterisk's 8 KiB command line allows.

The longest current wait is not among what the functions tell (AMI ``QueueSummary`` has it): it reads 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ivrkit.engine.world import QueueStats
from ivrkit.steps.queue import QUEUE_NAME

MEMBER_INTERFACE = re.compile(r"[A-Za-z0-9_.@/:+#*=-]{1,128}")
"""A member interface that can be written into a function argument (``PJSIP/201``, ``Local/201@agents/n``)."""
MAX_EXPRESSION = 7000  # characters per GET FULL VARIABLE argument; Asterisk reads command lines of 8 KiB
_NUMBERS = ("exists", "waiting", "logged_in", "ready", "free", "variables", "avg_hold", "avg_talk", "answered")


@dataclass(frozen=True)
class Reading:
    """What the first expansion tells: the statistics, and the members whose paused flag may need reading."""

    stats: QueueStats
    members: tuple[str, ...] = ()

    @property
    def may_have_paused(self) -> bool:
        """Only a logged-in agent who is not free can be paused."""
        return self.stats.logged_in > self.stats.free and bool(self.members)


def _checked(queue: str) -> str:
    if not QUEUE_NAME.match(queue):
        raise ValueError(f"'{queue[:80]}' is not a queue name: letters, digits, '_', '.' and '-' only")
    return queue


def stats_expression(queue: str) -> str:
    """The argument of the one ``GET FULL VARIABLE`` that reads a queue; ValueError for a name that is not one.

    >>> stats_expression("support")[:60]
    '${QUEUE_EXISTS(support)},${QUEUE_WAITING_COUNT(support)},${Q'
    >>> stats_expression("support)},${SHELL(id")
    Traceback (most recent call last):
    ...
    ValueError: 'support)},${SHELL(id' is not a queue name: letters, digits, '_', '.' and '-' only
    """
    q = _checked(queue)
    parts = [f"QUEUE_EXISTS({q})", f"QUEUE_WAITING_COUNT({q})"]
    parts += [f"QUEUE_MEMBER({q},{option})" for option in ("logged", "ready", "free")]
    parts += [f"QUEUE_VARIABLES({q})", "QUEUEHOLDTIME", "QUEUETALKTIME", "QUEUECOMPLETED", f"QUEUE_MEMBER_LIST({q})"]
    return ",".join("${" + part + "}" for part in parts)


def _number(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


def parse_stats(text: str | None) -> Reading:
    """The expansion of :func:`stats_expression`; anything unreadable counts as 0, a missing queue as absent.

    >>> reading = parse_stats("1,2,3,1,2,0,40,95,12,PJSIP/201,Local/202@agents/n")
    >>> reading.stats.waiting, reading.stats.position, reading.stats.ready, reading.stats.avg_hold
    (2, 3, 1, 40.0)
    >>> reading.members, reading.may_have_paused
    (('PJSIP/201', 'Local/202@agents/n'), True)
    >>> parse_stats("0,0,0,0,0,-1,0,0,0,").stats == QueueStats(exists=False)
    True
    >>> parse_stats("1,0,2,2,2,-1,40,95,12,").stats.avg_hold  # setqueuevar off: a stale value is not taken
    0.0
    """
    fields = (text or "").split(",", len(_NUMBERS))
    if len(fields) < len(_NUMBERS) or fields[0].strip() != "1":
        return Reading(QueueStats(exists=False))
    values = dict(zip(_NUMBERS, (_number(field) for field in fields), strict=False))
    if fields[5].strip() != "0":  # QUEUE_VARIABLES did not set the channel's variables
        values.update(avg_hold=0, avg_talk=0, answered=0)
    stats = QueueStats(
        waiting=values["waiting"],
        logged_in=values["logged_in"],
        ready=values["ready"],
        free=values["free"],
        avg_hold=float(values["avg_hold"]),
        avg_talk=float(values["avg_talk"]),
        position=values["waiting"] + 1,
        answered=values["answered"],
    )
    listed = fields[len(_NUMBERS)] if len(fields) > len(_NUMBERS) else ""
    return Reading(stats, tuple(member for member in listed.split(",") if MEMBER_INTERFACE.fullmatch(member)))


def paused_expressions(queue: str, members: tuple[str, ...]) -> list[str]:
    """``QUEUE_MEMBER(q,paused,<interface>)`` for each member, grouped into arguments Asterisk reads whole.

    >>> paused_expressions("support", ("PJSIP/201", "PJSIP/202"))
    ['${QUEUE_MEMBER(support,paused,PJSIP/201)},${QUEUE_MEMBER(support,paused,PJSIP/202)}']
    """
    q = _checked(queue)
    groups: list[str] = []
    current = ""
    for member in members:
        if not MEMBER_INTERFACE.fullmatch(member):
            raise ValueError(f"member interface '{member[:80]}' cannot be written into a function argument")
        part = "${QUEUE_MEMBER(" + f"{q},paused,{member}" + ")}"
        if current and len(current) + 1 + len(part) > MAX_EXPRESSION:
            groups.append(current)
            current = ""
        current = f"{current},{part}" if current else part
    return [*groups, current] if current else groups


def count_paused(text: str | None) -> int:
    """How many flags in an expansion of :func:`paused_expressions` say paused.

    >>> count_paused("1,0,1"), count_paused(None)
    (2, 0)
    """
    return sum(1 for flag in (text or "").split(",") if flag.strip() == "1")
