"""The FastAGI wire format, as pure functions: the environment block, command lines and reply lines.

Nothing here touches a socket, so every rule of Asterisk's side is written down once and tested directly.
Asterisk 22 reads one command per line and splits it into words like a small shell: blanks separate words,
``"..."`` groups, a backslash makes the next character literal (``parse_args`` in res_agi.c). A newline can
never be escaped, so one inside a value would end the command and start another: values are cleaned of
control characters before they reach the wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import parse_qsl

MAX_LINE_BYTES = 16384  # Asterisk reads at most 8 KiB per command; replies carry at most a 4 KB call state
MAX_ENVIRONMENT_LINES = 200  # 22 standard lines plus agi_arg_N, one per dialplan argument (at most 127)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BARE = re.compile(r"[A-Za-z0-9_#*+\-.,:/@=]+")

# Commands Asterisk still accepts once the caller has hung up; everything else answers 511 (res_agi.c, dead=1).
DEAD_CAPABLE = frozenset(
    {
        "ASYNCAGI BREAK",
        "DATABASE DEL",
        "DATABASE DELTREE",
        "DATABASE GET",
        "DATABASE PUT",
        "EXEC",
        "GET FULL VARIABLE",
        "GET VARIABLE",
        "NOOP",
        "SET VARIABLE",
        "VERBOSE",
        "SPEECH DESTROY",
        "SPEECH UNLOAD GRAMMAR",
    }
)


class ProtocolError(Exception):
    """The peer sent something that is not the AGI protocol; the session cannot go on safely."""


def clean(value: object) -> str:
    """A value as text with every control character (CR and LF above all) turned into a space.

    >>> clean("Bob\\nEXEC Dial(PJSIP/666)")
    'Bob EXEC Dial(PJSIP/666)'
    """
    text = str(value)
    return text if text.isprintable() else _CONTROL.sub(" ", text)  # printable text has no control characters


def quote(value: object) -> str:
    """One command argument, written so that Asterisk's tokenizer reads back exactly ``value`` (cleaned).

    >>> quote("welcome")
    'welcome'
    >>> quote("")
    '""'
    >>> quote('say "hi" \\\\ bye')
    '"say \\\\"hi\\\\" \\\\\\\\ bye"'
    """
    text = clean(value)
    if _BARE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command_line(verb: str, *args: object) -> bytes:
    """A complete command line: the verb, then each argument quoted, then one newline.

    >>> command_line("SET VARIABLE", "CALLER", "Bob\\r\\nHANGUP")
    b'SET VARIABLE CALLER "Bob  HANGUP"\\n'
    """
    words = [verb, *(quote(arg) for arg in args)]
    return (" ".join(words) + "\n").encode("utf-8")


def split_words(line: str) -> list[str]:
    """Split a command line as Asterisk's ``parse_args`` does (used by tests and the fake PBX).

    >>> split_words('STREAM FILE "a b" "" x\\\\"y')
    ['STREAM', 'FILE', 'a b', '', 'x"y']
    """
    words: list[str] = []
    current: list[str] = []
    in_word = quoted = escaped = False
    for char in line:
        if escaped:
            current.append(char)
            in_word, escaped = True, False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            in_word = True
        elif char in " \t" and not quoted:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
    if in_word:
        words.append("".join(current))
    return words


class Reply(NamedTuple):
    """One ``200`` reply: ``result`` as sent, the text in parentheses, ``endpos`` and the ``(timeout)`` marker.
    A named tuple: one is built for every command, and a frozen dataclass costs several times as much."""

    result: str
    data: str | None = None
    endpos: int | None = None
    timed_out: bool = False

    @property
    def number(self) -> int:
        """The result as a number (0 when empty, as for ``GET DATA`` with no digits)."""
        try:
            return int(self.result) if self.result else 0
        except ValueError as error:
            raise ProtocolError(f"result '{self.result}' is not a number") from error


def parse_reply(line: str) -> tuple[int, Reply | None]:
    """A reply line as (code, Reply for code 200 else None).

    The data is everything between the first ``(`` after ``result=`` and the *last* ``)``, since values may
    themselves contain parentheses and blanks.

    >>> parse_reply("200 result=1 (Main St (north)) endpos=80")
    (200, Reply(result='1', data='Main St (north)', endpos=80, timed_out=False))
    >>> parse_reply("200 result= (timeout)")
    (200, Reply(result='', data=None, endpos=None, timed_out=True))
    >>> parse_reply("200 result=12 (timeout)")
    (200, Reply(result='12', data=None, endpos=None, timed_out=True))
    >>> parse_reply("511 Command Not Permitted on a dead channel or intercept routine")
    (511, None)
    """
    reply = parse_common_reply(line)
    return (200, reply) if reply is not None else parse_any_reply(line)


def parse_common_reply(line: str) -> Reply | None:
    """The usual shapes of a 200 reply ("200 result=1", "... (value)", "... endpos=8000") in one regex match;
    None for anything else (other codes, a value still open, a ``HANGUP`` line), which :func:`parse_any_reply`
    reads."""
    common = _COMMON_REPLY.fullmatch(line)
    if common is None:
        return None
    result, data, endpos = common.groups()
    if data == "timeout":
        return Reply(result, None, None if endpos is None else int(endpos), True)
    return Reply(result, data, None if endpos is None else int(endpos))


def parse_any_reply(line: str) -> tuple[int, Reply | None]:
    """:func:`parse_reply` without its shortcut for the usual shapes: every reply line Asterisk may send."""
    code_text = line[:3]
    if not (code_text.isdigit() and (len(line) == 3 or line[3] in " -")):
        raise ProtocolError(f"not an AGI reply: {line[:80]!r}")
    code = int(code_text)
    if code != 200:
        return code, None
    rest = line[4:]
    if not rest.startswith("result="):
        raise ProtocolError(f"200 reply without a result: {line[:80]!r}")
    rest = rest[len("result=") :]
    result, _, tail = rest.partition(" ")
    data: str | None = None
    endpos: int | None = None
    timed_out = False
    tail = tail.strip()
    if tail.startswith("("):
        close = tail.rfind(")")
        if close < 0:
            raise ProtocolError(f"unclosed data in reply: {line[:80]!r}")
        data, tail = tail[1:close], tail[close + 1 :].strip()
        if data == "timeout":
            data, timed_out = None, True
    for word in tail.split():
        key, _, value = word.partition("=")
        if key == "endpos" and value.lstrip("-").isdigit():
            endpos = int(value)
    return code, Reply(result, data, endpos, timed_out)


# The usual shapes of a 200 reply, read in one match; anything else takes the general path of parse_reply. The
# data group is greedy, so it ends at the last ")" as the general path's does.
_COMMON_REPLY = re.compile(r"200 result=([^ ()]*)(?: \((.*)\))?(?: endpos=(-?\d+))?", re.DOTALL)


def reply_is_open(line: str) -> bool:
    """True when a 200 reply's data has no closing parenthesis: the value held a newline and goes on.

    >>> reply_is_open("200 result=1 (Bob")
    True
    >>> reply_is_open("200 result=1 (Bob)")
    False
    """
    if not line.startswith("200 result="):
        return False
    _, _, tail = line.partition(" (")
    return bool(tail) and ")" not in tail


def parse_environment_line(line: str) -> tuple[str, str] | None:
    """``agi_uniqueid: 1712345678.42`` → ("agi_uniqueid", "1712345678.42"); None for a line that is not one.

    >>> parse_environment_line("agi_accountcode: ")
    ('agi_accountcode', '')
    >>> parse_environment_line("EXEC Dial(PJSIP/666)") is None
    True
    """
    match = ENVIRONMENT_LINE.fullmatch(line)
    return None if match is None else (match[1], match[2])


ENVIRONMENT_LINE = re.compile(r"(agi_\w*): ?(.*)", re.DOTALL)  # the key, then the value after one optional blank
ENVIRONMENT_LINES = re.compile(r"^(agi_\w*): ?(.*?)\r*$", re.MULTILINE)  # the same over a block; a line's CRs dropped


@dataclass(frozen=True)
class Route:
    """What the URL path after the host asks for: ``support``, ``support/resume?outcome=TIMEOUT&x=1``."""

    flow: str
    mode: str  # "start", "resume", "hangup" (the caller has left) or "callback" (an answered callback leg)
    params: dict[str, str]


ROUTE_MODES = ("resume", "hangup", "callback")
_FLOW_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def parse_route(script: str) -> Route:
    """The flow, the session mode and the query parameters from ``agi_network_script``.

    >>> parse_route("support")
    Route(flow='support', mode='start', params={})
    >>> parse_route("/billing/resume?outcome=TIMEOUT&lang=de")
    Route(flow='billing', mode='resume', params={'outcome': 'TIMEOUT', 'lang': 'de'})
    >>> parse_route("support/callback?id=0123456789abcdef0123456789abcdef&amd=")
    Route(flow='support', mode='callback', params={'id': '0123456789abcdef0123456789abcdef', 'amd': ''})
    """
    path, _, query = script.partition("?")
    parts = [part for part in path.split("/") if part]
    if not parts or not _FLOW_NAME.fullmatch(parts[0]):
        raise ValueError(f"no flow name in the AGI URL path '{clean(script)[:80]}': use agi://host:port/<flow>")
    mode = "start"
    if len(parts) == 2 and parts[1] in ROUTE_MODES:
        mode = parts[1]
    elif len(parts) > 1:
        raise ValueError(
            f"unknown path '{clean(path)[:80]}' after the flow name: use /<flow>, /<flow>/resume, /<flow>/hangup "
            "or /<flow>/callback"
        )
    params = {clean(key): clean(value) for key, value in parse_qsl(query, keep_blank_values=True)}
    return Route(parts[0], mode, params)


# How long each command may take before the peer counts as silent. Audio commands are bounded by what they
# play (the server knows prompts' lengths only roughly), so they get a generous, configurable limit.
COMMAND_SECONDS = 30.0
AUDIO_COMMANDS = frozenset({"STREAM FILE", "CONTROL STREAM FILE", "GET OPTION", "GET DATA", "EXEC", "RECORD FILE"})


def reply_timeout(
    verb: str, wait_seconds: float, audio_seconds: float, command_seconds: float = COMMAND_SECONDS
) -> float:
    """The read timeout for a command: its own wait plus slack, or the audio limit for playing commands.

    >>> reply_timeout("SET VARIABLE", 0, 600)
    30.0
    >>> reply_timeout("WAIT FOR DIGIT", 5, 600)
    35.0
    >>> reply_timeout("SAY NUMBER", 0, 600)
    600
    """
    if verb in AUDIO_COMMANDS or verb.startswith("SAY "):
        return audio_seconds + wait_seconds
    return command_seconds + wait_seconds
