"""The engine's :class:`~ivrkit.engine.channel.Channel` on a live call: each method is one or two AGI commands.

Prompts are played as ``<language>/<sounds>/<prompt>`` (``en/ivrkit/welcome``): Asterisk tries the channel's
language folder first and then the path as given, so the file in the language the engine chose is found even
when the channel speaks another. What Asterisk says itself (SAY NUMBER, SAY DATETIME, queue announcements)
follows the channel's language, which the engine keeps equal to the call's with :meth:`AgiChannel.set_language`;
the date and time formats are the language's (:mod:`ivrkit.prompts.languages`). Names that reach the PBX are
validated here; values are quoted by the wire.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import replace

from ivrkit.agi import queue_stats
from ivrkit.agi.connection import AgiConnection, CallerHungUp, CommandFailed, DeadChannel, PeerClosed
from ivrkit.agi.wire import Reply, Route
from ivrkit.engine import transitions
from ivrkit.engine.channel import CallInfo
from ivrkit.engine.world import QueueStats
from ivrkit.prompts.languages import LANGUAGE_CODE, checked_digits, checked_number, parse_moment, rules_for

log = logging.getLogger("ivrkit.agi")

KEYS = frozenset("0123456789*#ABCD")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")  # no functions: ${SHELL(...)} must stay out of reach
MSET_VALUE = re.compile(r"[A-Za-z0-9_.:/@+\-]*")  # nothing MSet's parser or a later ${} could misread
MAX_MSET_BYTES = 7000  # MSet's options, well inside the 8 KiB command line Asterisk reads
PROMPT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-./]{0,199}")
SAY_COMMANDS = {"number": "SAY NUMBER", "digits": "SAY DIGITS", "alpha": "SAY ALPHA"}
LANGUAGE_FUNCTION = "CHANNEL(language)"  # the one function SET VARIABLE is allowed to write

Problem = Callable[[str, str], None]  # (kind, message): counted and logged by the session


def call_info(env: dict[str, str], route: Route) -> CallInfo:
    """What the engine knows of a call, from the AGI environment. ``unknown`` is Asterisk's word for empty."""

    def value(key: str) -> str:
        text = env.get(key, "")
        return "" if text == "unknown" else text

    args = []
    for number in range(1, len(env) + 1):
        if f"agi_arg_{number}" not in env:
            break
        args.append(env[f"agi_arg_{number}"])
    return CallInfo(
        uniqueid=env.get("agi_uniqueid", ""),
        caller_number=value("agi_callerid"),
        caller_name=value("agi_calleridname"),
        dnid=value("agi_dnid"),
        channel=env.get("agi_channel", ""),
        language=env.get("agi_language", ""),
        args=tuple(args),
        params=dict(route.params),
    )


class AgiChannel:
    def __init__(
        self,
        connection: AgiConnection,
        info: CallInfo,
        *,
        sounds: str = "ivrkit",
        timezone: str = "UTC",
        problem: Problem | None = None,
    ):
        self.connection = connection
        self.info = info
        self.sounds = sounds.strip("/")
        self.timezone = timezone
        self.language = info.language  # the channel's language now (set_language changes it)
        self._problem = problem or (lambda kind, message: log.warning(message, extra={"kind": kind}))

    def answer(self) -> None:
        """Answer the call (a no-op when the dialplan already did)."""
        self._audio("ANSWER", problem="the channel could not be answered")

    # -- the Channel interface ---------------------------------------------------------------------------

    now = staticmethod(functools.partial(dt.datetime.now, dt.UTC))  # the journal asks on every event

    def play_prompt(self, prompt: str, language: str, escape: str) -> str | None:
        path = _prompt_path(prompt, language, self.sounds)
        reply = self._audio("STREAM FILE", path, _escape(escape), problem=f"prompt file '{path}' did not play")
        return _key(reply)

    def say(self, kind: str, value: str, language: str, escape: str) -> str | None:
        """SAY NUMBER/DIGITS/ALPHA, or SAY DATETIME in the format of ``language`` (the words are the channel's
        language's: the engine has made it ``language``)."""
        if kind in SAY_COMMANDS:
            text = value.strip()
            if kind == "number":
                checked_number(text)
            if kind == "digits":
                checked_digits(text)
            args: tuple[str, ...] = (text, _escape(escape))
            verb = SAY_COMMANDS[kind]
        else:
            moment = self._moment(kind, value)
            style = rules_for(language).date_time_format(kind)
            args = (str(int(moment.timestamp())), _escape(escape), style, self.timezone)
            verb = "SAY DATETIME"
        return _key(self._audio(verb, *args, problem=f"could not say {kind} '{value}'"))

    def set_language(self, language: str) -> None:
        """``SET VARIABLE CHANNEL(language) <language>``: only a language code ever reaches the function, so no
        value can write anything else. Works on a hung-up channel too (nothing to hear then)."""
        if not LANGUAGE_CODE.fullmatch(language):
            raise ValueError(f"'{language[:40]}' is not a language code such as en, de or de_AT")
        try:
            self.connection.run("SET VARIABLE", LANGUAGE_FUNCTION, language)
        except PeerClosed:
            log.debug("the channel's language was not set: the connection is closed")
            return
        self.language = language

    def wait_for_key(self, timeout: float) -> str | None:
        milliseconds = max(0, int(timeout * 1000))
        reply = self._audio("WAIT FOR DIGIT", milliseconds, wait=timeout, problem="waiting for a key failed")
        return _key(reply)

    def get_variable(self, name: str) -> str | None:
        """A plain channel variable; empty and unset read the same in Asterisk, both as None."""
        _check_variable(name)
        return self._expand("${" + name + "}")

    def queue_stats(self, name: str) -> QueueStats:
        """A queue as a caller about to join it meets it, read live from Asterisk: one ``GET FULL VARIABLE``,
        more only to count paused agents when some agent is not free (:mod:`ivrkit.agi.queue_stats`). Works
        on a dead channel too; a queue Asterisk does not know reads as ``exists=False``."""
        reading = queue_stats.parse_stats(self._expand(queue_stats.stats_expression(name)))
        if not reading.may_have_paused:
            return reading.stats
        expressions = queue_stats.paused_expressions(name, reading.members)
        paused = sum(queue_stats.count_paused(self._expand(expression)) for expression in expressions)
        return replace(reading.stats, paused=paused)

    def set_variable(self, name: str, value: str) -> None:
        _check_variable(name)
        try:
            self.connection.run("SET VARIABLE", name, value)
        except PeerClosed:
            log.debug("%s not set: the connection is closed", name)

    def set_variables(self, values: dict[str, str]) -> None:
        """Plain values (names, numbers, outcomes) go in one ``EXEC MSet``; any other value, which MSet's
        argument parser could misread (commas, quotes, ``${``), in its own ``SET VARIABLE``."""
        for name in values:
            _check_variable(name)
        plain = {name: value for name, value in values.items() if MSET_VALUE.fullmatch(value)}
        while sum(len(name) + len(value) + 2 for name, value in plain.items()) > MAX_MSET_BYTES:
            del plain[max(plain, key=lambda name: len(plain[name]))]  # the longest goes on its own
        if len(plain) > 1:
            options = ",".join(f"{name}={value}" for name, value in plain.items())
            try:
                if self.connection.run("EXEC", "MSet", options).result != "-2":
                    values = {name: value for name, value in values.items() if name not in plain}
            except PeerClosed:
                return
        for name, value in values.items():
            self.set_variable(name, value)

    def hangup(self) -> None:
        try:
            self.connection.run("HANGUP")
        except (CallerHungUp, DeadChannel, PeerClosed) as error:
            raise transitions.CallerHungUp() from error

    # -- helpers --------------------------------------------------------------------------------------

    def _expand(self, expression: str) -> str | None:
        """What Asterisk makes of ``expression`` (variables and functions expanded) on this channel."""
        try:
            reply = self.connection.run("GET FULL VARIABLE", expression)
        except PeerClosed:
            return None
        return reply.data or None

    def _audio(self, verb: str, *args: object, wait: float = 0.0, problem: str) -> Reply | None:
        """Run a command the caller hears; a hang-up becomes the engine's CallerHungUp. A failure on a live
        channel (a missing file) is reported and the flow goes on, as if the audio had played."""
        try:
            return self.connection.run(verb, *args, wait=wait)
        except (CallerHungUp, DeadChannel, PeerClosed) as error:
            raise transitions.CallerHungUp() from error
        except CommandFailed:
            if self._caller_gone():
                raise transitions.CallerHungUp() from None
            self._problem("command-failed", problem)
            return None

    def _caller_gone(self) -> bool:
        """After ``result=-1``: ask the channel's state. On a hung-up channel Asterisk answers 511 (or sends
        ``HANGUP`` first); on a live one the failure was the command's own (a missing prompt file)."""
        try:
            self.connection.run("CHANNEL STATUS")
        except (CallerHungUp, DeadChannel, PeerClosed):
            return True
        except CommandFailed:
            return False
        return self.connection.hung_up

    def _moment(self, kind: str, value: str) -> dt.datetime:
        """A date, time or date-time written as ISO text; without an offset it is in the session's timezone."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        moment = parse_moment(kind, value.strip(), self.now().astimezone(zone).date())
        return moment if moment.tzinfo else moment.replace(tzinfo=zone)


@functools.lru_cache(maxsize=1024)  # the same few prompts in the same few languages, call after call
def _prompt_path(prompt: str, language: str, sounds: str) -> str:
    """Where Asterisk finds a prompt: ``<language>/<sounds>/<prompt>``, for a name that cannot leave it."""
    if not PROMPT_NAME.fullmatch(prompt) or ".." in prompt:
        raise ValueError(f"prompt name '{prompt}' cannot be played: use letters, digits, - _ . and /")
    return f"{language}/{sounds}/{prompt}" if sounds else f"{language}/{prompt}"


@functools.lru_cache(maxsize=256)
def _escape(keys: str) -> str:
    return "".join(key for key in keys if key in KEYS)


def _key(reply: Reply | None) -> str | None:
    """The key that ended a command: Asterisk sends its character code, 0 for none."""
    if reply is None:
        return None
    code = reply.number
    if code <= 0:
        return None
    key = chr(code)
    return key if key in KEYS else None


@functools.lru_cache(maxsize=1024)  # the same few names on every call
def _check_variable(name: str) -> None:
    if not VARIABLE_NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a channel variable name: use letters, digits and _ (no functions)")
