#!/usr/bin/env python3
"""FastAGI load generator that plays Asterisk 22's side, to measure a FastAGI server on this machine.

Each simulated call connects the way Asterisk does for ``AGI(agi://host:port/<script>)``, sends the
environment block (Asterisk 22's lines, in its order), answers every command line with the reply Asterisk 22
would give while a scripted caller presses keys, and ends when the server closes the socket; like Asterisk
it then writes ``HANGUP``. Standard library only, so it runs wherever the server under test runs.

Modes:
  throughput  N call slots; each starts a new call as soon as its call ends. Counts calls, commands and
              the server's turnaround over a window that follows a warm-up.
  hold        opens N calls at R calls/s, each reply delayed (standing in for audio), so that all are in
              progress at once; reports how many were held simultaneously and the server's memory per call.

Turnaround = time from our message being written (the environment block, or the reply to the previous
command) to the next command line arriving: the server's think time plus two loopback hops.

    python3 tools/bench/agi_load.py throughput --port 4573 -c 100 -d 10 --server-pid PID
    python3 tools/bench/agi_load.py hold --port 4573 -c 2000 --delay 1 --ramp 500 --server-pid PID
"""

from __future__ import annotations

import argparse
import array
import asyncio
import collections
import contextlib
import errno
import json
import math
import os
import resource
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

LOOPBACK = ("127.0.0.1", "::1", "localhost")
MAX_LINE = 8192  # AGI_BUF_LEN in Asterisk 22.6+: the longest command line Asterisk reads
MAX_ARGS = 128  # parse_args() keeps at most MAX_ARGS - 1 words
MAX_SAMPLES = 5_000_000  # turnaround samples kept (40 MB): bounds memory on very long runs
CACHE_LIMIT = 10_000  # distinct command lines whose parse is cached
# What the reference servers and tools/bench/flows/bench.yaml read: the queue's waiting count.
DEFAULT_VARIABLES = {"QUEUE_WAITING_COUNT(support)": "3", "QUEUE_WAITING": "3"}
KEYS = "0123456789*#ABCD"

HANGUP_LINE = b"HANGUP\n"
DEAD_REPLY = b"511 Command Not Permitted on a dead channel or intercept routine\n"
UNKNOWN_REPLY = b"510 Invalid or unknown command\n"

# -- Asterisk's side of the protocol: pure functions, tested in tests/bench ---------------------------------


def split_args(line: str) -> list[str]:
    """Split a command line into words as Asterisk's ``parse_args()`` does: blanks separate words, ``"..."``
    groups (``""`` is an empty word), a backslash makes the next character literal; extra words are dropped."""
    if '"' not in line and "\\" not in line:  # the usual case: no need to walk the characters
        words = [word for word in line.replace("\t", " ").split(" ") if word]
        return words[: MAX_ARGS - 1]
    words = []
    current: list[str] = []
    in_word = quoted = escaped = False
    for char in line:
        if escaped:
            escaped = False
            in_word = True
            current.append(char)
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            in_word = in_word or quoted  # a quote opening between words starts a word, maybe an empty one
        elif (char == " " or char == "\t") and not quoted:
            if in_word:
                words.append("".join(current))
                current = []
                in_word = False
        else:
            in_word = True
            current.append(char)
    if in_word:
        words.append("".join(current))
    return words[: MAX_ARGS - 1]


def expand(text: str, lookup: Callable[[str], str]) -> str:
    """Substitute ``${NAME}`` and ``${FUNC(args)}`` (nested ones first) like ``GET FULL VARIABLE``; an unknown
    name gives empty text, an unterminated ``${`` stays as it is."""
    out: list[str] = []
    start = 0
    while True:
        begin = text.find("${", start)
        if begin < 0:
            out.append(text[start:])
            return "".join(out)
        out.append(text[start:begin])
        depth, end = 1, begin + 2
        while end < len(text) and depth:
            if text.startswith("${", end):
                depth += 1
                end += 2
                continue
            if text[end] == "}":
                depth -= 1
            end += 1
        if depth:
            out.append(text[begin:])
            return "".join(out)
        out.append(lookup(expand(text[begin + 2 : end - 1], lookup)))
        start = end


def _leading_int(text: str) -> bool:
    """True when ``sscanf("%d")`` would read a number, as SAY NUMBER/DIGITS/DATE/TIME require."""
    text = text.lstrip(" \t")
    if text[:1] in ("-", "+"):
        text = text[1:]
    return text[:1].isdigit()


# Reply kinds: how a command's reply depends on the caller.
STATIC, PLAY, WAIT, GET_DATA, GET_OPTION, GET_VAR, GET_FULL, SET_VAR, HANGUP, EXEC = range(10)


class Spec(NamedTuple):
    min_args: int  # words needed after the command's own words, else 520
    kind: int
    reply: str = ""  # STATIC reply, or the reply when no key interrupts
    media: bool = False  # plays or waits on a real channel: --delay-media-only delays these
    dead_ok: bool = False  # allowed after hang-up (Asterisk's dead-capable commands)


_PLAY_SAY = Spec(2, PLAY, "200 result=0", media=True)
COMMANDS: dict[str, Spec] = {
    "ANSWER": Spec(0, STATIC, "200 result=0"),
    "ASYNCAGI BREAK": Spec(0, STATIC, "200 result=0", dead_ok=True),
    "CHANNEL STATUS": Spec(0, STATIC, "200 result=6"),
    "CONTROL STREAM FILE": Spec(2, PLAY, "200 result=0 endpos={endpos}", media=True),
    "DATABASE DEL": Spec(2, STATIC, "200 result=1", dead_ok=True),
    "DATABASE DELTREE": Spec(1, STATIC, "200 result=1", dead_ok=True),
    "DATABASE GET": Spec(2, STATIC, "200 result=0", dead_ok=True),
    "DATABASE PUT": Spec(3, STATIC, "200 result=1", dead_ok=True),
    "EXEC": Spec(1, EXEC, "200 result=0", media=True, dead_ok=True),
    "GET DATA": Spec(1, GET_DATA, media=True),
    "GET FULL VARIABLE": Spec(1, GET_FULL, dead_ok=True),
    "GET OPTION": Spec(2, GET_OPTION, "200 result=0 endpos={endpos}", media=True),
    "GET VARIABLE": Spec(1, GET_VAR, dead_ok=True),
    "GOSUB": Spec(1, STATIC, "200 result=0 Gosub complete"),
    "HANGUP": Spec(0, HANGUP, "200 result=1"),
    "NOOP": Spec(0, STATIC, "200 result=0", dead_ok=True),
    "RECEIVE CHAR": Spec(1, STATIC, "200 result=0", media=True),
    "RECEIVE TEXT": Spec(1, STATIC, "200 result=-1", media=True),
    "RECORD FILE": Spec(4, STATIC, "200 result=0 (timeout) endpos={endpos}", media=True),
    "SAY ALPHA": _PLAY_SAY,
    "SAY DATE": _PLAY_SAY,
    "SAY DATETIME": _PLAY_SAY,
    "SAY DIGITS": _PLAY_SAY,
    "SAY NUMBER": _PLAY_SAY,
    "SAY PHONETIC": _PLAY_SAY,
    "SAY TIME": _PLAY_SAY,
    "SEND IMAGE": Spec(1, STATIC, "200 result=0"),
    "SEND TEXT": Spec(1, STATIC, "200 result=0"),
    "SET AUTOHANGUP": Spec(1, STATIC, "200 result=0"),
    "SET CALLERID": Spec(1, STATIC, "200 result=1"),
    "SET CONTEXT": Spec(1, STATIC, "200 result=0"),
    "SET EXTENSION": Spec(1, STATIC, "200 result=0"),
    "SET MUSIC": Spec(1, STATIC, "200 result=0"),
    "SET PRIORITY": Spec(1, STATIC, "200 result=0"),
    "SET VARIABLE": Spec(2, SET_VAR, "200 result=1", dead_ok=True),
    "SPEECH ACTIVATE GRAMMAR": Spec(1, STATIC, "200 result=0"),
    "SPEECH CREATE": Spec(1, STATIC, "200 result=0"),
    "SPEECH DEACTIVATE GRAMMAR": Spec(1, STATIC, "200 result=0"),
    "SPEECH DESTROY": Spec(0, STATIC, "200 result=0", dead_ok=True),
    "SPEECH LOAD GRAMMAR": Spec(2, STATIC, "200 result=0"),
    "SPEECH RECOGNIZE": Spec(2, STATIC, "200 result=0", media=True),
    "SPEECH SET": Spec(2, STATIC, "200 result=0"),
    "SPEECH UNLOAD GRAMMAR": Spec(1, STATIC, "200 result=0", dead_ok=True),
    "STREAM FILE": Spec(2, PLAY, "200 result=0 endpos={endpos}", media=True),
    "TDD MODE": Spec(1, STATIC, "200 result=0"),
    "VERBOSE": Spec(1, STATIC, "200 result=1", dead_ok=True),
    "WAIT FOR DIGIT": Spec(1, WAIT, "200 result=0", media=True),
}
_BY_WORDS = {tuple(name.split()): name for name in COMMANDS}
_MOST_WORDS = max(len(words) for words in _BY_WORDS)
_NEEDS_NUMBER = {"SAY NUMBER", "SAY DIGITS", "SAY DATE", "SAY TIME", "SAY DATETIME"}


def match_command(words: list[str]) -> tuple[str | None, list[str]]:
    """The command named by the first words (case-insensitive, as Asterisk's ``find_command``) and its args."""
    upper = tuple(word.upper() for word in words[:_MOST_WORDS])
    for count in range(len(upper), 0, -1):
        name = _BY_WORDS.get(upper[:count])
        if name is not None:
            return name, words[count:]
    return None, words


def _assignments(app: str, options: str) -> tuple[tuple[str, str], ...]:
    """The variables ``EXEC Set name=value`` or ``EXEC MSet a=1,b=2`` set (other applications set none)."""
    if app.upper() == "SET":
        pairs = [options]
    elif app.upper() == "MSET":
        pairs = options.split(",")
    else:
        return ()
    return tuple((name, value) for name, equals, value in (pair.partition("=") for pair in pairs) if equals)


def syntax_reply(name: str) -> bytes:
    """Asterisk's multi-line 520 for a command used with the wrong arguments (every command has usage text)."""
    return f"520-Invalid command syntax.  Proper usage follows:\nUsage: {name} ...\n520 End of proper usage.\n".encode()


class Entry(NamedTuple):
    """A parsed command line: what a reply needs, computed once per distinct line."""

    name: str | None
    kind: int
    reply: bytes  # the reply when nothing about the caller changes it
    media: bool
    dead_ok: bool
    arg: Any = None  # escape keys, max digits, variable name, expression, (name, value)
    digit_format: str = ""  # reply when a key interrupts: "%d" gets the key's ASCII code
    problem: str | None = None  # a protocol error to count: unknown-command, bad-syntax


class Caller:
    """The caller's side of one call: keys still to press, channel variables the server set, hung up yet."""

    __slots__ = ("dead", "keys", "vars")

    def __init__(self, keys: str = "") -> None:
        self.keys = keys
        self.vars: dict[str, str] | None = None
        self.dead = False


class Responder:
    """Turns a command line into Asterisk 22's reply for a scripted caller; parses each distinct line once."""

    def __init__(self, variables: dict[str, str] | None = None, endpos: int = 16000, barge_in: bool = True):
        self.variables = dict(DEFAULT_VARIABLES if variables is None else variables)
        self.endpos = endpos
        self.barge_in = barge_in
        self._cache: dict[bytes, Entry] = {}

    def parse(self, line: bytes) -> Entry:
        entry = self._cache.get(line)
        if entry is None:
            entry = self._parse(line.decode("utf-8", "replace"))
            if len(self._cache) < CACHE_LIMIT:
                self._cache[line] = entry
        return entry

    def _parse(self, text: str) -> Entry:
        # Asterisk strips only the "\n": a "\r" stays part of the last word, as it does there.
        name, args = match_command(split_args(text))
        if name is None:
            return Entry(None, STATIC, UNKNOWN_REPLY, False, False, problem="unknown-command")
        spec = COMMANDS[name]
        if len(args) < spec.min_args or (name in _NEEDS_NUMBER and not _leading_int(args[0])):
            return Entry(name, STATIC, syntax_reply(name), spec.media, spec.dead_ok, problem="bad-syntax")
        reply = spec.reply.format(endpos=self.endpos)
        arg: Any = None
        digit_format = ""
        if spec.kind in (PLAY, GET_OPTION):
            arg = args[1]
            digit_format = "200 result=%d endpos=" + str(self.endpos // 2) if "endpos" in reply else "200 result=%d"
        elif spec.kind == GET_DATA:
            arg = 1024
            if len(args) >= 3:
                with contextlib.suppress(ValueError):
                    arg = int(args[2]) if int(args[2]) > 0 else 1024
        elif spec.kind == GET_VAR:
            arg = args[0]
            reply = self._get_variable(arg, None)
        elif spec.kind == GET_FULL:
            names: list[str] = []

            def record(name: str) -> str:
                names.append(name)
                return ""

            expand(args[0], record)
            # the names it reads, so that a call's own variables cost a new expansion only when they matter
            arg = (args[0], None if "${" in "".join(names) else frozenset(names))
            reply = self._get_full(args[0], None)
        elif spec.kind == SET_VAR:
            arg = (args[0], args[1])
        elif spec.kind == EXEC:
            arg = _assignments(args[0], args[1] if len(args) > 1 else "")
        elif spec.kind == HANGUP and args:
            arg = args[0]
            reply = "200 result=-1"  # another channel's name: not one this generator has
        return Entry(name, spec.kind, (reply + "\n").encode(), spec.media, spec.dead_ok, arg, digit_format)

    def _value(self, name: str, own: dict[str, str] | None) -> str | None:
        if own is not None and name in own:
            return own[name]
        return self.variables.get(name)

    def _get_variable(self, name: str, own: dict[str, str] | None) -> str:
        value = self._value(name, own)
        return "200 result=0" if value is None else f"200 result=1 ({value})"

    def _get_full(self, expression: str, own: dict[str, str] | None) -> str:
        return f"200 result=1 ({expand(expression, lambda name: self._value(name, own) or '')})"

    def reply(self, line: bytes, caller: Caller) -> tuple[bytes, Entry]:
        """The reply to one command line (without its delay); updates the caller (keys used, variables set)."""
        entry = self.parse(line)
        if caller.dead and not entry.dead_ok and entry.problem is None:
            return DEAD_REPLY, entry
        kind = entry.kind
        if kind == STATIC:
            return entry.reply, entry
        keys = caller.keys
        if kind == PLAY:
            if keys and self.barge_in and keys[0] in entry.arg:
                caller.keys = keys[1:]
                return (entry.digit_format % ord(keys[0]) + "\n").encode(), entry
            return entry.reply, entry
        if kind == WAIT:
            if keys:
                caller.keys = keys[1:]
                return b"200 result=%d\n" % ord(keys[0]), entry
            return entry.reply, entry
        if kind == GET_DATA:
            typed, complete = keys[: entry.arg], False
            hash_at = typed.find("#")
            if hash_at >= 0:  # the terminator ends the entry and is not returned
                caller.keys = keys[hash_at + 1 :]
                return f"200 result={typed[:hash_at]}\n".encode(), entry
            caller.keys = keys[len(typed) :]
            complete = len(typed) == entry.arg
            return f"200 result={typed}{'' if complete else ' (timeout)'}\n".encode(), entry
        if kind == GET_OPTION:
            if keys:  # after playback it waits for any key; one that is no escape key gives 0
                caller.keys = keys[1:]
                return (entry.digit_format % (ord(keys[0]) if keys[0] in entry.arg else 0) + "\n").encode(), entry
            return entry.reply, entry
        if kind == GET_VAR:
            if caller.vars:
                return (self._get_variable(entry.arg, caller.vars) + "\n").encode(), entry
            return entry.reply, entry
        if kind == GET_FULL:
            own = caller.vars
            if own and (entry.arg[1] is None or not entry.arg[1].isdisjoint(own)):
                return (self._get_full(entry.arg[0], own) + "\n").encode(), entry
            return entry.reply, entry
        if kind in (SET_VAR, EXEC):
            assignments = (entry.arg,) if kind == SET_VAR else entry.arg
            if assignments:
                if caller.vars is None:
                    caller.vars = {}
                caller.vars.update(assignments)
            return entry.reply, entry
        assert kind == HANGUP
        if entry.arg is None and not caller.dead:
            # Asterisk hangs the channel up, replies, and its AGI loop then signals the hang-up with an
            # unsolicited HANGUP line; from then on only dead-capable commands work.
            caller.dead = True
            return entry.reply + HANGUP_LINE, entry
        return entry.reply, entry


def environment(script: str, host: str, port: int, seq: int, args: list[str], stamp: int) -> bytes:
    """The block Asterisk 22 sends first on a FastAGI connection, in its order (ASTERISK.md §1.2)."""
    request = f"agi://{host}:{port}/{script}" if script else f"agi://{host}:{port}"
    lines = ["agi_network: yes"]
    if script:
        lines.append(f"agi_network_script: {script}")
    lines += [
        f"agi_request: {request}",
        f"agi_channel: PJSIP/bench-{seq:08x}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {stamp}.{seq}",
        "agi_version: 22.10.0",
        f"agi_callerid: +4930{seq % 10_000_000:07d}",
        f"agi_calleridname: Bench Caller {seq}",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: 8005550100",
        "agi_rdnis: unknown",
        "agi_context: ivr",
        "agi_extension: s",
        "agi_priority: 1",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        f"agi_threadid: {140_000_000_000_000 + seq}",
    ]
    lines += [f"agi_arg_{number}: {value}" for number, value in enumerate(args, 1)]
    return ("\n".join(lines) + "\n\n").encode()


# -- the server process, read from /proc ----------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15


def process_rss_kb(pid: int) -> int:
    """Resident memory of a process in kB (VmRSS in /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def machine_busy_seconds() -> tuple[float, float]:
    """CPU seconds all CPUs spent busy, and stolen by the hypervisor, from /proc/stat: the noise indicator."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks + [0] * (8 - len(ticks))
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS, steal / CLOCK_TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles(samples: array.array[float] | list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds (nearest rank)."""
    if not samples:
        return {}
    ordered = sorted(samples)
    count = len(ordered)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * count) - 1)] * 1000, 3)

    return {"n": count, "p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": round(ordered[-1] * 1000, 3)}


# -- the load ------------------------------------------------------------------------------------------------


@dataclass
class Settings:
    """What one run does; built from the command line, or directly by tests."""

    mode: str = "throughput"
    host: str = "127.0.0.1"
    port: int = 4573
    script: str = "bench"
    args: list[str] = field(default_factory=list)
    concurrency: int = 10
    duration: float = 10.0
    warmup: float = 2.0
    delay: float = 0.0
    delay_media_only: bool = False
    ramp: float = 500.0
    digits: str = "1"
    barge_in: bool = True
    variables: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_VARIABLES))
    endpos: int = 16000
    expect_commands: int = 0
    max_commands: int = 500
    call_timeout: float = 60.0
    connect_timeout: float = 5.0
    connect_limit: int = 64
    env_per_line: bool = False
    server_pid: int = 0
    trace: int = 0


class Load:
    """Counters and shared state of one run; the calls write into it directly (no locks: one event loop)."""

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop):
        self.s = settings
        self.loop = loop
        self.responder = Responder(settings.variables, settings.endpos, settings.barge_in)
        self.delay = settings.delay
        self.media_only = settings.delay_media_only
        self.measuring = False
        self.stopping = False
        self.seq = 0
        self.stamp = int(time.time())
        self.trace_left = settings.trace
        self.live = self.peak_live = 0  # connected calls
        self.active = self.peak_active = 0  # calls the server has started talking to (first command seen)
        self.started = self.calls_ok = self.commands = 0
        self.window_calls = self.window_commands = 0
        self.ok_commands = 0  # commands of the calls that ended well: commands per call
        self.min_per_call = self.max_per_call = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.protocol: collections.Counter[str] = collections.Counter()
        self.turnaround: array.array[float] = array.array("d")
        self.first_command: array.array[float] = array.array("d")  # connected → first command: session start
        self.gate = asyncio.Semaphore(max(1, settings.connect_limit))
        self.family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        self.address = (settings.host, settings.port)
        self.rss_peak = 0
        self.live_at_rss_peak = 0

    def environment(self) -> bytes:
        self.seq += 1
        return environment(self.s.script, self.s.host, self.s.port, self.seq, self.s.args, self.stamp)

    def call_ended(self, call: Call, error: str | None) -> None:
        if error is None and not call.problems:
            if call.commands == 0:
                call.problem("no-commands")
            elif self.s.expect_commands and call.commands != self.s.expect_commands:
                call.problem("command-count")
        if error is not None:
            self.errors[error] += 1
        elif call.problems:
            self.errors["protocol"] += 1
        else:
            self.calls_ok += 1
            count = call.commands
            self.ok_commands += count
            if self.calls_ok == 1 or count < self.min_per_call:
                self.min_per_call = count
            self.max_per_call = max(self.max_per_call, count)
            if self.measuring:
                self.window_calls += 1

    async def call(self) -> str | None:
        """One call, from connect to the server's close; returns the error kind or None."""
        self.started += 1
        call = Call(self)
        async with self.gate:  # a bounded number of connects in flight: the server's listen backlog
            try:
                async with asyncio.timeout(self.s.connect_timeout):
                    await call.connect()
            except ConnectionRefusedError:
                call.close()
                self.errors["refused"] += 1
                return "refused"
            except TimeoutError:
                call.close()
                self.errors["connect-timeout"] += 1
                return "connect-timeout"
            except OSError:
                call.close()
                self.errors["connect-error"] += 1
                return "connect-error"
            except asyncio.CancelledError:
                call.close()
                raise
        try:
            return await call.done
        except asyncio.CancelledError:  # the run's deadline: the call outlived it
            call.fail("timeout")
            raise

    def sample_server(self) -> None:
        if self.s.server_pid:
            with contextlib.suppress(OSError):
                rss = process_rss_kb(self.s.server_pid)
                if rss > self.rss_peak:
                    self.rss_peak, self.live_at_rss_peak = rss, self.live

    async def sampler(self, interval: float) -> None:
        while True:
            self.sample_server()
            await asyncio.sleep(interval)


class Call(Caller):
    """One call on the wire: answers command lines in order and times the server's turnaround.

    A non-blocking socket watched with ``add_reader`` rather than an asyncio transport and protocol: some 15%
    less CPU per command (half of what is left is the kernel's), so that the generator's core keeps up with
    the fastest reference servers.
    """

    __slots__ = (
        "commands", "done", "ended", "load", "outbox", "pending", "problems", "queued", "rest", "sent_at", "sock",
        "timer", "trace", "waiting",
    )  # fmt: skip

    def __init__(self, load: Load):
        super().__init__(load.s.digits)
        self.load = load
        self.sock: socket.socket | None = None
        self.outbox = b""  # what the socket did not take at once
        self.rest = b""  # a partial line
        self.sent_at = 0.0
        self.waiting = False  # our last message is written: the next line is a command to time and answer
        self.queued: collections.deque[bytes] = collections.deque()
        self.pending: asyncio.TimerHandle | None = None  # a delayed reply
        self.timer: asyncio.TimerHandle | None = None
        self.commands = 0
        self.problems = 0
        self.ended = False
        self.done: asyncio.Future[str | None] = load.loop.create_future()
        self.trace: list[str] | None = None
        if load.trace_left > 0:
            load.trace_left -= 1
            self.trace = []

    # -- connecting and closing ------------------------------------------------------------------------------

    def connect(self) -> asyncio.Future[None]:
        """Start connecting; the future is done when the call is connected, or fails with the OSError."""
        loop = self.load.loop
        waiter: asyncio.Future[None] = loop.create_future()
        sock = self.sock = socket.socket(self.load.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        error = sock.connect_ex(self.load.address)
        if error in (errno.EINPROGRESS, errno.EAGAIN):
            loop.add_writer(sock.fileno(), self._connected, waiter)
        elif error:
            self.close()
            waiter.set_exception(OSError(error, os.strerror(error)))  # ConnectionRefusedError for ECONNREFUSED
        else:
            self.opened()
            waiter.set_result(None)
        return waiter

    def _connected(self, waiter: asyncio.Future[None]) -> None:
        assert self.sock is not None
        self.load.loop.remove_writer(self.sock.fileno())
        if waiter.done():  # the connect timed out
            return
        error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self.close()
            waiter.set_exception(OSError(error, os.strerror(error)))
        else:
            self.opened()
            waiter.set_result(None)

    def opened(self) -> None:
        load = self.load
        assert self.sock is not None
        load.live += 1
        load.peak_live = max(load.peak_live, load.live)
        load.loop.add_reader(self.sock.fileno(), self.readable)
        env = load.environment()
        if self.trace is not None:
            self.trace.append(f"-- call {load.seq}")
            self.trace += [">> " + line for line in env.decode().split("\n")[:-1]]
        for part in env.splitlines(keepends=True) if load.s.env_per_line else (env,):  # Asterisk: line by line
            if self.sock is None:  # the write failed: the call has ended
                return
            self.write(part)
        self.sent_at = time.perf_counter()
        self.waiting = True
        self.timer = load.loop.call_later(load.s.call_timeout, self.fail, "timeout")

    def close(self, reset: bool = False) -> None:
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        loop = self.load.loop
        fd = sock.fileno()
        if loop.remove_reader(fd):  # it was connected
            self.load.live -= 1
        loop.remove_writer(fd)
        if reset:  # abort: RST rather than FIN, as a dropped call looks
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    # -- the dialogue ------------------------------------------------------------------------------------------

    def readable(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.end("reset")
            self.close()
            return
        if data:
            self.received(data)
            return
        # The server closed the call: the normal end. Asterisk then writes HANGUP (its AGISIGHUP default).
        if not self.ended:
            self.end(None)
            with contextlib.suppress(OSError):
                self.sock.send(HANGUP_LINE)
        self.close()

    def received(self, data: bytes) -> None:
        if self.rest:
            data = self.rest + data
        start = 0
        find = data.find
        while (end := find(b"\n", start)) >= 0:
            line = data[start:end]
            start = end + 1
            if self.ended:
                return
            if self.waiting and not self.queued:
                self.command(line)
            else:  # Asterisk never sees this from a correct server: it writes one command and waits
                self.problem("command-before-reply")
                self.queued.append(line)
        self.rest = data[start:]
        if len(self.rest) > MAX_LINE:
            self.problem("line-too-long")
            self.fail("protocol")

    def command(self, line: bytes) -> None:
        load = self.load
        arrived = time.perf_counter()
        if load.measuring:
            load.window_commands += 1
            if len(load.turnaround) < MAX_SAMPLES:
                load.turnaround.append(arrived - self.sent_at)
        load.commands += 1
        self.commands += 1
        self.waiting = False
        if self.commands == 1:
            load.active += 1
            load.peak_active = max(load.peak_active, load.active)
            if load.measuring and len(load.first_command) < MAX_SAMPLES:
                load.first_command.append(arrived - self.sent_at)
        if self.commands > load.s.max_commands:
            self.problem("too-many-commands")
            self.fail("protocol")
            return
        if len(line) >= MAX_LINE:
            self.problem("line-too-long")
        reply, entry = load.responder.reply(line, self)
        if entry.problem is not None:
            self.problem(entry.problem)
        elif reply is DEAD_REPLY:
            self.problem("dead-channel")
        if self.trace is not None:
            self.trace.append("<< " + line.decode("utf-8", "replace"))
            self.trace += [">> " + text for text in reply.decode().split("\n")[:-1]]
        if load.delay > 0 and (entry.media or not load.media_only):
            self.pending = load.loop.call_later(load.delay, self.send, reply)
        else:
            self.send(reply)

    def send(self, reply: bytes) -> None:
        self.pending = None
        if self.ended or self.sock is None:
            return
        self.write(reply)
        self.sent_at = time.perf_counter()
        self.waiting = True
        if self.queued and not self.ended:
            self.command(self.queued.popleft())

    def write(self, data: bytes) -> None:
        """Send now; what the socket does not take waits for it to be writable."""
        sock = self.sock
        assert sock is not None
        if not self.outbox:
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.end("reset")
                self.close()
                return
            if sent == len(data):
                return
            data = data[sent:]
            self.load.loop.add_writer(sock.fileno(), self.writable)
        self.outbox += data

    def writable(self) -> None:
        sock = self.sock
        assert sock is not None
        try:
            sent = sock.send(self.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.end("reset")
            self.close()
            return
        self.outbox = self.outbox[sent:]
        if not self.outbox:
            self.load.loop.remove_writer(sock.fileno())

    # -- the end -----------------------------------------------------------------------------------------------

    def problem(self, kind: str) -> None:
        self.problems += 1
        self.load.protocol[kind] += 1

    def fail(self, kind: str) -> None:
        """End the call on our side (timeout, protocol breach): counted as ``kind``."""
        self.end(kind)
        self.close(reset=True)

    def end(self, error: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        if self.commands:
            self.load.active -= 1
        for handle in (self.timer, self.pending):
            if handle is not None:
                handle.cancel()
        self.load.call_ended(self, error)
        if self.trace is not None:
            self.trace.append(f"-- ended: {error or 'closed by the server'}, {self.commands} commands")
            print("\n".join(self.trace), file=sys.stderr)
        if not self.done.done():
            self.done.set_result(error)


async def throughput(load: Load) -> dict[str, Any]:
    """N slots, each calling again as soon as its call ends; measured over a window after the warm-up."""
    s = load.s

    async def slot() -> None:
        while not load.stopping:
            if await load.call() in ("refused", "connect-timeout", "connect-error"):
                await asyncio.sleep(0.05)  # the server is refusing: do not spin

    baseline_rss = _rss(s.server_pid)
    sampler = asyncio.ensure_future(load.sampler(0.25))
    slots = [asyncio.ensure_future(slot()) for _ in range(s.concurrency)]
    await asyncio.sleep(s.warmup)
    before = _snapshot(s.server_pid)
    load.measuring = True
    await asyncio.sleep(s.duration)
    load.measuring = False
    after = _snapshot(s.server_pid)
    load.stopping = True
    await _finish(slots, s.call_timeout + 1)
    sampler.cancel()
    load.sample_server()
    window = after["t"] - before["t"]
    report = _report(load, window, before, after, baseline_rss, load.window_calls)
    report["calls_per_s"] = round(load.window_calls / window, 2)
    report["commands_per_s"] = round(load.window_commands / window, 2)
    return report


async def hold(load: Load) -> dict[str, Any]:
    """Opens N calls at R calls/s with delayed replies, so they are in progress together."""
    s = load.s
    baseline_rss = _rss(s.server_pid)
    before = _snapshot(s.server_pid)
    sampler = asyncio.ensure_future(load.sampler(0.1))
    load.measuring = True
    began = time.perf_counter()
    calls = []
    for number in range(s.concurrency):
        if s.ramp > 0:
            wait = began + number / s.ramp - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        calls.append(asyncio.ensure_future(load.call()))
    ramped = time.perf_counter() - began
    live_after_ramp = load.live
    await _finish(calls, s.call_timeout + s.connect_timeout + 1)
    load.measuring = False
    after = _snapshot(s.server_pid)
    sampler.cancel()
    load.sample_server()
    report = _report(load, after["t"] - before["t"], before, after, baseline_rss, load.calls_ok)
    report["ramp_s"] = round(ramped, 3)
    report["live_after_ramp"] = live_after_ramp
    report["held"] = load.peak_active  # in progress at once: connected, and the server talking to them
    report["all_held"] = load.peak_active == s.concurrency
    if s.server_pid and baseline_rss is not None and load.peak_active:
        report["server"]["kb_per_held_call"] = round((load.rss_peak - baseline_rss) / load.peak_active, 2)
    return report


async def _finish(tasks: Sequence[asyncio.Future[Any]], timeout: float) -> None:
    """Let the calls in progress end; abort what is left at the deadline."""
    if not tasks:
        return
    _, left = await asyncio.wait(tasks, timeout=timeout)
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=1)


def _rss(pid: int) -> int | None:
    if not pid:
        return None
    try:
        return process_rss_kb(pid)
    except OSError:
        return None


def _snapshot(pid: int) -> dict[str, float]:
    snap = {"t": time.perf_counter(), "own_cpu": own_cpu_seconds()}
    with contextlib.suppress(OSError, ValueError):
        snap["busy"], snap["steal"] = machine_busy_seconds()
    if pid:
        with contextlib.suppress(OSError):
            snap["server_cpu"] = process_cpu_seconds(pid)
    return snap


def _report(
    load: Load, window: float, before: dict[str, float], after: dict[str, float], baseline_rss: int | None,
    calls: int,
) -> dict[str, Any]:
    s = load.s
    own = after["own_cpu"] - before["own_cpu"]
    report: dict[str, Any] = {
        "mode": s.mode,
        "target": f"{s.host}:{s.port}",
        "script": s.script,
        "concurrency": s.concurrency,
        "duration_s": s.duration if s.mode == "throughput" else None,
        "warmup_s": s.warmup if s.mode == "throughput" else None,
        "delay_s": s.delay,
        "delay_media_only": s.delay_media_only,
        "ramp_per_s": s.ramp if s.mode == "hold" else None,
        "digits": s.digits,
        "window_s": round(window, 3),
        "calls_started": load.started,
        "calls_ok": load.calls_ok,
        "calls_in_window": load.window_calls,
        "commands": load.commands,
        "commands_in_window": load.window_commands,
        "commands_per_call": round(load.ok_commands / load.calls_ok, 2) if load.calls_ok else None,
        "commands_per_call_min": load.min_per_call,
        "commands_per_call_max": load.max_per_call,
        "peak_connected_calls": load.peak_live,
        "peak_active_calls": load.peak_active,
        "turnaround_ms": percentiles(load.turnaround),
        "first_command_ms": percentiles(load.first_command),
        "errors": dict(sorted(load.errors.items())),
        "error_count": sum(load.errors.values()),
        "protocol_errors": dict(sorted(load.protocol.items())),
        "generator": {"cpu_s": round(own, 3), "cpu_pct": round(100 * own / window, 1) if window > 0 else None},
    }
    if "busy" in before and "busy" in after and window > 0:
        busy = after["busy"] - before["busy"]
        server_cpu = after.get("server_cpu", 0.0) - before.get("server_cpu", 0.0)
        report["machine"] = {
            "cpus": os.cpu_count(),
            "busy_pct": round(100 * busy / window, 1),  # of one CPU: 200 = two CPUs fully busy
            "steal_pct": round(100 * (after["steal"] - before["steal"]) / window, 1),
            # what neither the server nor the generator used: other processes, the kernel's loopback work
            "other_pct": round(max(0.0, 100 * (busy - own - server_cpu) / window), 1) if s.server_pid else None,
        }
    if s.server_pid and "server_cpu" in before and "server_cpu" in after:
        cpu = after["server_cpu"] - before["server_cpu"]
        report["server"] = {
            "pid": s.server_pid,
            "cpu_s": round(cpu, 3),
            "cpu_pct": round(100 * cpu / window, 1) if window > 0 else None,
            "cpu_s_per_1000_calls": round(cpu / calls * 1000, 3) if calls else None,
            "rss_baseline_kb": baseline_rss,
            "rss_peak_kb": load.rss_peak,
            "connected_calls_at_rss_peak": load.live_at_rss_peak,
        }
    return report


def render(report: dict[str, Any]) -> str:
    """The report for people."""
    lines = []
    delay = "no reply delay"
    if report["delay_s"]:
        delay = f"{report['delay_s']} s before each {'audio ' if report['delay_media_only'] else ''}reply"
    if report["mode"] == "throughput":
        lines.append(
            f"throughput: {report['target']}/{report['script']}, {report['concurrency']} call slots, "
            f"{report['window_s']} s window after {report['warmup_s']} s warm-up, {delay}"
        )
        lines.append(
            f"  calls/s     {report['calls_per_s']:>10.1f}   ({report['calls_in_window']} calls in the window; "
            f"{report['calls_ok']} ok of {report['calls_started']} started)"
        )
        lines.append(f"  commands/s  {report['commands_per_s']:>10.1f}")
    else:
        lines.append(
            f"hold: {report['target']}/{report['script']}, {report['concurrency']} calls at "
            f"{report['ramp_per_s'] or 'max'}/s (opened in {report['ramp_s']} s), {delay}"
        )
        lines.append(
            f"  held at once {report['held']} of {report['concurrency']}{'' if report['all_held'] else ' (NOT all)'}"
            f" ({report['peak_connected_calls']} connected at most); {report['calls_ok']} ended well"
        )
    per_call = report["commands_per_call"]
    spread = f" (min {report['commands_per_call_min']}, max {report['commands_per_call_max']})"
    lines.append(f"  commands/call {per_call if per_call is not None else '-'}{spread if per_call else ''}")
    turn = report["turnaround_ms"]
    if turn:
        lines.append(
            f"  turnaround  p50 {turn['p50']:.3f} ms  p90 {turn['p90']:.3f} ms  p99 {turn['p99']:.3f} ms  "
            f"max {turn['max']:.3f} ms  ({turn['n']} commands)"
        )
    first = report["first_command_ms"]
    if first:
        lines.append(f"  first command after connecting: p50 {first['p50']:.3f} ms  p99 {first['p99']:.3f} ms  "
                     f"max {first['max']:.3f} ms")  # fmt: skip
    errors = ", ".join(f"{kind} {count}" for kind, count in report["errors"].items()) or "none"
    lines.append(f"  errors      {errors}")
    if report["protocol_errors"]:
        lines.append("  protocol    " + ", ".join(f"{k} {v}" for k, v in report["protocol_errors"].items()))
    server = report.get("server")
    if server:
        per_1000 = server["cpu_s_per_1000_calls"]
        text = f"  server      pid {server['pid']}: CPU {server['cpu_pct']}% of a core"
        text += f", {per_1000} CPU s per 1000 calls" if per_1000 is not None else ""
        lines.append(text)
        memory = f"  memory      RSS {server['rss_baseline_kb']} kB before, {server['rss_peak_kb']} kB peak"
        if "kb_per_held_call" in server:
            memory += f": {server['kb_per_held_call']} kB per held call"
        lines.append(memory)
    lines.append(f"  generator   CPU {report['generator']['cpu_pct']}% of a core")
    machine = report.get("machine")
    if machine:
        other = f", {machine['other_pct']}% of a CPU used by neither" if machine["other_pct"] is not None else ""
        lines.append(f"  machine     {machine['cpus']} CPUs busy {machine['busy_pct']}% of one CPU{other}"
                     f" (steal {machine['steal_pct']}%)")  # fmt: skip
    return "\n".join(lines)


def run(settings: Settings) -> dict[str, Any]:
    """One run in a fresh event loop: what tests and the command line call."""

    async def main() -> dict[str, Any]:
        load = Load(settings, asyncio.get_running_loop())
        return await (throughput(load) if settings.mode == "throughput" else hold(load))

    return asyncio.run(main())


def _variable(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name, value


def parse_args(argv: list[str] | None) -> tuple[Settings, str | None, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=("throughput", "hold"), default="throughput")
    parser.add_argument("--host", default="127.0.0.1", help="the server's address (loopback only)")
    parser.add_argument("--port", type=int, default=4573)
    parser.add_argument("--script", default="bench", help="the path in agi://host:port/PATH: the flow name")
    parser.add_argument("--arg", action="append", default=[], help="an AGI() argument (agi_arg_N); repeatable")
    parser.add_argument("-c", "--concurrency", type=int, default=None,
                        help="throughput: call slots (default 100); hold: calls to open (default 2000)")
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="throughput: window in seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="throughput: seconds before the window")
    parser.add_argument("--delay", type=float, default=None,
                        help="seconds before each reply, standing in for audio (default 0; hold: 1)")
    parser.add_argument("--delay-media-only", action="store_true",
                        help="delay only the replies to audio and key commands (STREAM FILE, GET DATA, SAY ...)")
    parser.add_argument("--ramp", type=float, default=500.0, help="hold: calls opened per second (0: at once)")
    parser.add_argument("--digits", default="1", help="keys the caller presses on each call, in order")
    parser.add_argument("--no-barge-in", action="store_true",
                        help="the caller never presses during a prompt, only when the server waits for a key")
    parser.add_argument("--var", type=_variable, action="append", default=[], metavar="NAME=VALUE",
                        help="a channel variable or function value for GET (FULL) VARIABLE; repeatable "
                             "(defaults: QUEUE_WAITING_COUNT(support)=3, QUEUE_WAITING=3)")
    parser.add_argument("--endpos", type=int, default=16000, help="endpos of a prompt played to its end")
    parser.add_argument("--expect-commands", type=int, default=0,
                        help="count a call with another number of commands as a protocol error (0: any)")
    parser.add_argument("--max-commands", type=int, default=500, help="abort a call whose server sends more")
    parser.add_argument("--call-timeout", type=float, default=None,
                        help="abort a call lasting longer (default 30 s + 40 x delay)")
    parser.add_argument("--connect-timeout", type=float, default=5.0)
    parser.add_argument("--connect-limit", type=int, default=64, help="connects in flight at most")
    parser.add_argument("--env-per-line", action="store_true", help="write the environment line by line")
    parser.add_argument("--server-pid", type=int, default=0, help="the server's pid: its CPU and memory")
    parser.add_argument("--trace", type=int, default=0, metavar="N", help="print the first N calls to stderr")
    parser.add_argument("--json", metavar="PATH", help="also write the report here")
    parser.add_argument("--quiet", action="store_true", help="no human-readable report")
    args = parser.parse_args(argv)
    if args.host not in LOOPBACK:
        parser.error("only loopback targets: 127.0.0.1, ::1 or localhost")
    if args.host == "localhost":
        args.host = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)[0][4][0]
    if bad := set(args.digits) - set(KEYS):
        parser.error(f"--digits: not DTMF keys: {''.join(sorted(bad))}")
    hold_mode = args.mode == "hold"
    concurrency = args.concurrency or (2000 if hold_mode else 100)
    delay = args.delay if args.delay is not None else (1.0 if hold_mode else 0.0)
    settings = Settings(
        mode=args.mode, host=args.host, port=args.port, script=args.script, args=args.arg,
        concurrency=concurrency, duration=args.duration, warmup=args.warmup, delay=delay,
        delay_media_only=args.delay_media_only, ramp=args.ramp, digits=args.digits,
        barge_in=not args.no_barge_in, variables={**DEFAULT_VARIABLES, **dict(args.var)}, endpos=args.endpos,
        expect_commands=args.expect_commands, max_commands=args.max_commands,
        call_timeout=args.call_timeout if args.call_timeout is not None else 30.0 + 40.0 * delay,
        connect_timeout=args.connect_timeout, connect_limit=args.connect_limit, env_per_line=args.env_per_line,
        server_pid=args.server_pid, trace=args.trace,
    )  # fmt: skip
    return settings, args.json, args.quiet


def _raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))


def main(argv: list[str] | None = None) -> int:
    settings, json_path, quiet = parse_args(argv)
    _raise_file_limit(settings.concurrency + settings.connect_limit + 100)
    try:
        report = run(settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if not quiet:
        print(render(report))
    if json_path:
        with open(json_path, "w") as out:
            json.dump(report, out, indent=1)
    return 0 if report["calls_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
