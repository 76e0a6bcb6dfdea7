"""What may reach a line of Asterisk configuration, as pure functions: validation, escaping, filter sets.

Asterisk reads a dialplan line in three passes, and each gives some characters a meaning:

1. the config parser (``main/config.c``): ``;`` starts a comment (``\\;`` is a literal semicolon), a line
   break ends the line, ``[`` at the start of a line opens a section;
2. variable substitution when the line runs (``main/pbx_variables.c``): ``${...}`` and ``$[...]`` are
   expanded, functions included (``${SHELL(...)}``), and there is no escape for them;
3. the application's own argument parser (``__ast_app_separate_args`` in ``main/app.c``): ``,`` separates
   arguments, ``"`` quotes, ``\\`` escapes the next character, ``(`` ``)`` ``[`` ``]`` nest; some
   applications split further (``&`` in ``Dial()`` and ``Playback()``).

So names the compiler writes (contexts, labels, queues, prompts, AstDB keys) are *validated* against a
plain character set and refused otherwise (:func:`name`, :func:`arg`); free text goes only into comments
(:func:`comment`). Values that only the running call knows (the queue or destination the FastAGI server
chose) never become dialplan text: the compiled dialplan passes them through ``FILTER()`` with the character
sets below and compares the result with names known when compiling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ivrkit.steps.queue import QUEUE_NAME
from ivrkit.steps.transfer import DESTINATION

MAX_CONTEXT = 79  # AST_MAX_CONTEXT is 80 bytes with the terminating NUL
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_PLAIN = re.compile(r"[A-Za-z0-9_.+@/:?=\-]*")  # needs no escaping in any argument we write
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPED = re.compile(r'([\\,"()\[\]|])')  # the argument parser's special characters

QUEUE_CHARACTERS = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
"""What a queue name may hold (:data:`~ivrkit.steps.queue.QUEUE_NAME`)."""
DESTINATION_CHARACTERS = "+-./0123456789@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
"""What a dial destination may hold (:data:`~ivrkit.steps.transfer.DESTINATION`); no ``&``, no ``,``."""
WORD_CHARACTERS = "-abcdefghijklmnopqrstuvwxyz"
"""What the server's result words and the maintenance modes are made of."""
STATUS_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""What ``QUEUESTATUS`` and ``DIALSTATUS`` values are made of."""
DIGITS = "0123456789"
OUTCOME_CHARACTERS = STATUS_CHARACTERS + WORD_CHARACTERS + DIGITS
"""What the dialplan passes back to the flow: a status, or an exit key's outcome (``call-back2``)."""
FLOW_CHARACTERS = "_" + DIGITS + STATUS_CHARACTERS + WORD_CHARACTERS
"""What a flow name may hold (:data:`~ivrkit.flow.fields.NAME_PATTERN`)."""
HEX_DIGITS = "0123456789abcdef"
"""What a callback's id is made of (32 of them: ``uuid4().hex``)."""
NUMBER_CHARACTERS = "+" + DIGITS
"""What a number to call back is made of (E.164: ``+4930123456``)."""
KEYS = "0123456789*#"


class UnsafeValue(ValueError):
    """A value that cannot be written into a dialplan line safely; the message says why."""


def problem(value: str) -> str | None:
    """Why ``value`` can never be part of a dialplan line, or None.

    >>> problem("support") is None
    True
    >>> problem("a\\nexten => s,1,System(x)")
    'it contains a line break or another control character'
    >>> problem("${SHELL(id)}")
    'it contains ${, which Asterisk expands when the line runs'
    >>> problem("$[1+1]")
    'it contains $[, which Asterisk expands when the line runs'
    """
    if _CONTROL.search(value):
        return "it contains a line break or another control character"
    for opener in ("${", "$["):
        if opener in value:
            return f"it contains {opener}, which Asterisk expands when the line runs"
    return None


def name(value: str, what: str = "name", limit: int = MAX_CONTEXT) -> str:
    """A context, label, queue or key name, unchanged; :class:`UnsafeValue` unless it is plain.

    Plain means letters, digits, ``_``, ``.`` and ``-``, not starting with ``.`` or ``-``, at most ``limit``
    characters: nothing any of Asterisk's parsers reads specially.

    >>> name("ivrkit-support")
    'ivrkit-support'
    >>> name("sup,port", "queue name")
    Traceback (most recent call last):
    ...
    ivrkit.compiler.dialplan.UnsafeValue: queue name 'sup,port' can only hold letters, digits, '_', '.' and '-'
    >>> name("x" * 80, "context")
    Traceback (most recent call last):
    ...
    ivrkit.compiler.dialplan.UnsafeValue: context 'xxxxxxxxxx…' is 80 characters long; Asterisk allows 79
    """
    reason = problem(value)
    if reason:
        raise UnsafeValue(f"{what} {value[:40]!r} cannot be written: {reason}")
    if not _NAME.fullmatch(value):
        raise UnsafeValue(f"{what} {value[:40]!r} can only hold letters, digits, '_', '.' and '-'")
    if len(value) > limit:
        raise UnsafeValue(f"{what} '{value[:10]}…' is {len(value)} characters long; Asterisk allows {limit}")
    return value


def key(value: str) -> str:
    """A DTMF key as an extension name, unchanged; :class:`UnsafeValue` unless it is one of 0-9, ``*``, ``#``.

    >>> key("#")
    '#'
    >>> key("1,2")
    Traceback (most recent call last):
    ...
    ivrkit.compiler.dialplan.UnsafeValue: key '1,2' is not one of 0-9, * and #
    """
    if len(value) != 1 or value not in KEYS:
        raise UnsafeValue(f"key {value[:10]!r} is not one of 0-9, * and #")
    return value


def sound(value: str) -> str:
    """A sound file path as queues.conf and the applications take it (``en/ivrkit/queue-periodic``), unchanged.

    Each ``/``-separated part must be a plain :func:`name` (so no ``..``, no absolute path, no ``,`` that would
    split a list of files).

    >>> sound("en/ivrkit/queue-periodic")
    'en/ivrkit/queue-periodic'
    >>> sound("en/../../etc/passwd")
    Traceback (most recent call last):
    ...
    ivrkit.compiler.dialplan.UnsafeValue: sound file part '..' can only hold letters, digits, '_', '.' and '-'
    """
    for part in value.split("/"):
        name(part, "sound file part")
    return value


def arg(value: object) -> str:
    """One application argument as it must be written so the application receives exactly ``value``.

    For applications that split their arguments with Asterisk's standard parser (``Queue``, ``Dial``,
    ``Playback``, ``AGI``, ``Goto``, ``Set``'s value...). Plain values come back unchanged; ``,`` ``"`` ``\\``
    ``(`` ``)`` ``[`` ``]`` ``|`` get a backslash and ``;`` gets the config file's ``\\;``. What no escape can
    make safe is refused: line breaks, ``${`` and ``$[`` (expanded before the application sees them), and
    ``&`` (``Dial()`` and ``Playback()`` split on it whatever the escaping).

    >>> arg("agi://127.0.0.1:4573/support/resume?outcome=TIMEOUT")
    'agi://127.0.0.1:4573/support/resume?outcome=TIMEOUT'
    >>> print(arg('Main line, "VIP" (new); 2nd'))
    Main line\\, \\"VIP\\" \\(new\\)\\; 2nd
    >>> arg("${X}")
    Traceback (most recent call last):
    ...
    ivrkit.compiler.dialplan.UnsafeValue: '${X}' cannot be written: it contains ${, which Asterisk expands when ...
    >>> arg("a&b")
    Traceback (most recent call last):
    ...
    ivrkit.compiler.dialplan.UnsafeValue: 'a&b' cannot be written: '&' would make Dial() or Playback() take two targets
    """
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    reason = problem(text) or ("'&' would make Dial() or Playback() take two targets" if "&" in text else None)
    if reason:
        raise UnsafeValue(f"{text[:40]!r} cannot be written: {reason}")
    return _ESCAPED.sub(r"\\\1", text).replace(";", "\\;")


def comment(text: object) -> str:
    """Text for a ``;`` comment: control characters (a line break would end the comment) become spaces.

    After ``; `` the config parser ignores the rest of the line, ``;`` and ``--;`` included.

    >>> comment("Main line;\\n[evil]\\nexten => s,1,System(x)")
    'Main line; [evil] exten => s,1,System(x)'
    """
    return _CONTROL.sub(" ", str(text))


def filter_set(characters: str) -> str:
    """The first argument of ``FILTER()`` that keeps exactly ``characters``.

    ``-`` goes first (elsewhere it would make a range); runs of digits or letters become ranges. Characters
    that FILTER's own parsing or the argument parser would read specially are refused.

    >>> filter_set(QUEUE_CHARACTERS)
    '-.0-9A-Z_a-z'
    >>> filter_set(DESTINATION_CHARACTERS)
    '-+./0-9@A-Z_a-z'
    >>> filter_set("a,b")
    Traceback (most recent call last):
    ...
    ivrkit.compiler.dialplan.UnsafeValue: FILTER() cannot keep ','
    """
    chars = sorted(set(characters))
    for char in chars:
        if char in ',\\"(){}[]$;' or _CONTROL.match(char) or not char.isascii():
            raise UnsafeValue(f"FILTER() cannot keep {char!r}")
    out = "-" if "-" in chars else ""
    rest = [char for char in chars if char != "-"]
    index = 0
    while index < len(rest):
        end = index
        while end + 1 < len(rest) and _follows(rest[end], rest[end + 1]):
            end += 1
        out += f"{rest[index]}-{rest[end]}" if end - index >= 2 else "".join(rest[index : end + 1])
        index = end + 1
    return out


def _follows(a: str, b: str) -> bool:
    """``b`` is the character after ``a`` in the same run of digits, capitals or small letters."""
    same = (a.isdigit() and b.isdigit()) or (a.isupper() and b.isupper()) or (a.islower() and b.islower())
    return same and ord(b) == ord(a) + 1


def is_queue_name(value: str) -> bool:
    """The check the server applies to a queue name; the dialplan's FILTER set keeps the same characters."""
    return bool(QUEUE_NAME.match(value))


def is_destination(value: str) -> bool:
    return bool(DESTINATION.match(value))


def is_number(destination: str) -> bool:
    """A phone number rather than an endpoint: dialled through the flow's numbers context.

    >>> is_number("+4930123456"), is_number("PJSIP/operator")
    (True, False)
    """
    return bool(re.fullmatch(r"\+?[0-9]+", destination))


@dataclass(frozen=True)
class AgiUrl:
    """Where Asterisk finds the FastAGI server: ``agi://host[:port]`` or ``hagi://host`` (DNS SRV)."""

    scheme: str
    host: str
    port: int | None = None

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}" + (f":{self.port}" if self.port is not None else "")

    def url(self, path: str) -> str:
        """The ``AGI()`` argument for a path such as ``support/resume``."""
        return f"{self.base}/{path}"


_HOST = re.compile(
    r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])"  # a name, an IPv4 or a bracketed IPv6 address
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def parse_agi_url(text: str) -> AgiUrl:
    """``--agi-url``: scheme ``agi`` or ``hagi``, a host name or address, an optional port, nothing else.

    >>> parse_agi_url("agi://127.0.0.1:4573")
    AgiUrl(scheme='agi', host='127.0.0.1', port=4573)
    >>> parse_agi_url("hagi://agi.example.com").base
    'hagi://agi.example.com'
    >>> parse_agi_url("agi://[::1]:4573").url("support")
    'agi://[::1]:4573/support'
    >>> parse_agi_url("agi://h/x")
    Traceback (most recent call last):
    ...
    ValueError: 'agi://h/x' is not a FastAGI address: give agi://HOST[:PORT] or hagi://HOST, without a path
    """
    scheme, sep, rest = text.partition("://")
    match = _HOST.fullmatch(rest) if sep else None
    if scheme.lower() not in ("agi", "hagi") or match is None:
        raise ValueError(
            f"{text!r} is not a FastAGI address: give agi://HOST[:PORT] or hagi://HOST, without a path"
        )
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{text!r}: port {port} is out of range (1-65535)")
    return AgiUrl(scheme.lower(), match.group("host"), port)
