"""One FastAGI connection: pyst2's ``asterisk.agi.AGI`` command layer, made safe for a threaded server.

pyst2 gives the command vocabulary and the exception tree every AGI user knows. Its transport does not fit a
server, so the parts that touch the wire are replaced here, each for a defect that would hurt a live call:

* its constructor installs a SIGHUP handler, which raises outside the main thread: not called;
* it writes debug text (and ``pprint``s every reply) to stderr: nothing is written, nothing formatted;
* it writes ``str`` to what is a binary socket: commands are encoded here;
* it cannot parse the unsolicited ``HANGUP`` line: the line is read whenever it arrives, remembered, and the
  reply that follows is still read, so replies never fall out of step;
* it does not know ``511`` (dead channel): :class:`DeadChannel`; after a hang-up only dead-capable commands
  are sent at all (:class:`CallerHungUp` is raised without touching the wire);
* it raises the same error for every ``result=-1``: :class:`CallerHungUp` when the caller has gone,
  :class:`CommandFailed` otherwise (a missing prompt file);
* its quoting does not escape quotes or backslashes and lets newlines through: :func:`ivrkit.agi.wire.quote`;
* it drops ``endpos`` and the ``(timeout)`` marker: :meth:`AgiConnection.run` returns the whole reply.

Exactly one command is in flight at a time, and each waits for its reply no longer than the command can take.
"""

from __future__ import annotations

import functools
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from asterisk.agi import (
    AGI,
    AGIAppError,
    AGIError,
    AGIHangup,
    AGIInvalidCommand,
    AGIResultHangup,
    AGIUsageError,
)

from ivrkit.agi import wire
from ivrkit.agi.transport import LineSocket, LineTooLong, Waiter
from ivrkit.agi.wire import ProtocolError, Reply

ENVIRONMENT_SECONDS = 10.0  # Asterisk sends the environment at once; a peer silent this long is not Asterisk


class CallerHungUp(AGIResultHangup):
    """The caller has hung up: Asterisk sent ``HANGUP`` (or a command failed because of it)."""


class DeadChannel(AGIHangup):
    """Asterisk refused a command with 511: the channel is dead (a hang-up handler session)."""


class PeerClosed(AGIHangup):
    """Asterisk closed the connection (the call is gone, or the PBX gave up on us)."""


class CommandFailed(AGIAppError):
    """A command returned ``result=-1`` on a live channel, for example a prompt file that does not exist."""


class ReplyTimeout(AGIError):
    """No reply within the command's time limit: the peer is silent."""


def _quote(value: Any) -> str:
    """:func:`ivrkit.agi.wire.quote`, remembered for the short text a server sends again and again (prompt
    paths, escape keys, variable names); longer text, and any value not exactly a str or int, is quoted afresh."""
    if type(value) is int or (type(value) is str and len(value) <= 64):
        return _quote_again(value)
    return wire.quote(value)


_quote_again = functools.lru_cache(maxsize=4096, typed=True)(wire.quote)


class _Quoted(str):
    """An argument pyst2's helpers have already quoted (through :meth:`AgiConnection._quote`)."""


CommandListener = Callable[[str, float], None]


class AgiConnection(AGI):  # pyst2 has no type information: its methods are Any
    """pyst2's AGI over a connected socket."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        audio_seconds: float = 600.0,
        command_seconds: float = wire.COMMAND_SECONDS,
        environment_seconds: float = ENVIRONMENT_SECONDS,
        on_command: CommandListener | None = None,
        waiter: Waiter | None = None,
    ):
        # pyst2's __init__ is not called: it installs a signal handler and writes to stderr.
        self.lines = LineSocket(sock, waiter)
        self.stdin = None
        self.stdout = None
        self.stderr = None
        self._got_sighup = False
        self.audio_seconds = audio_seconds
        self.command_seconds = command_seconds
        self.on_command = on_command
        self.hung_up = False
        self.closed = False
        self.commands = 0
        self.ignored_environment_lines = 0
        self._in_flight: str | None = None
        self._seconds = environment_seconds  # the time limit of the line being read
        self.env: dict[str, str] = {}
        try:
            self._read_environment()
        except BaseException:
            self.lines.close()  # also takes the socket off the server's loop
            raise

    # -- the environment block ------------------------------------------------------------------------

    def _read_environment(self) -> None:
        """Read ``agi_*`` lines up to the blank line. A line that is not ``key: value`` continues the value
        before it: Asterisk writes values raw, so a caller-ID name with a newline arrives split in two."""
        try:
            block = self.lines.read_block(wire.MAX_LINE_BYTES, wire.MAX_ENVIRONMENT_LINES, self._seconds)
        except TimeoutError as error:
            raise ReplyTimeout("no complete environment within its time limit") from error
        except LineTooLong as error:
            raise ProtocolError(f"the environment block has {error}") from error
        except OSError as error:
            raise PeerClosed(f"connection lost: {error}") from error
        if block is None:
            raise PeerClosed("Asterisk closed the connection")
        if not block:
            raise ProtocolError("the environment block is empty: the peer is not Asterisk")
        text = b"\n".join(block).decode("utf-8", "replace")
        pairs = wire.ENVIRONMENT_LINES.findall(text)
        if len(pairs) == len(block):  # every line a key and a value, as Asterisk writes them: read in one go
            self.env = {sys.intern(key): sys.intern(value) if len(value) <= 8 else value for key, value in pairs}
            return
        env, intern = self.env, sys.intern
        last: str | None = None
        for line in text.split("\n"):
            line = line.rstrip("\r")
            item = wire.parse_environment_line(line)
            if item is not None:
                last, value = intern(item[0]), item[1]  # the same two dozen keys on every call: share them
                env[last] = intern(value) if len(value) <= 8 else value
            elif last is not None:
                env[last] += "\n" + line
                self.ignored_environment_lines += 1
            else:
                raise ProtocolError(f"the environment does not start with agi_ lines: {line[:80]!r}")

    # -- pyst2's transport, replaced ------------------------------------------------------------------

    def _get_agi_env(self) -> None:  # pragma: no cover - pyst2's reader, never used
        raise NotImplementedError("the environment is read by _read_environment")

    def _quote(self, string: Any) -> str:
        return _Quoted(wire.quote(string))

    def test_hangup(self) -> None:
        if self.hung_up:
            raise CallerHungUp("the caller has hung up")

    def execute(self, command: str, *args: Any) -> dict[str, tuple[str, str]]:
        """pyst2's entry point for its helper methods; returns its result dictionary."""
        reply = self.run(command, *args)
        result = {"result": (reply.result, reply.data or "")}
        if reply.endpos is not None:
            result["endpos"] = (str(reply.endpos), "")
        return result

    def send_command(self, command: str, *args: Any) -> None:
        raise NotImplementedError("use run(), which sends and reads as one step")

    def get_result(self, stdin: Any = None) -> dict[str, Any]:
        raise NotImplementedError("use run(), which sends and reads as one step")

    # -- commands -------------------------------------------------------------------------------------

    def run(self, verb: str, *args: Any, wait: float = 0.0) -> Reply:
        """Send one command and return its reply. ``wait`` is how long the command itself may wait for the
        caller (a digit timeout), on top of the usual limit. Raises CallerHungUp, DeadChannel, PeerClosed,
        CommandFailed, ReplyTimeout, AGIInvalidCommand, AGIUsageError or ProtocolError."""
        verb = verb.strip().upper()
        if self.hung_up and verb not in wire.DEAD_CAPABLE:
            raise CallerHungUp(f"the caller has hung up; {verb} is not sent to a dead channel")
        if self._in_flight is not None:
            raise RuntimeError(f"{verb} sent while {self._in_flight} waits for its reply: one command at a time")
        line = " ".join([verb, *[arg if type(arg) is _Quoted else _quote(arg) for arg in args]]).encode("utf-8")
        if len(line) >= 8192:
            raise ValueError(f"{verb} command is {len(line) + 1} bytes; Asterisk reads at most 8192")
        self._in_flight = verb
        started = time.perf_counter()
        try:
            self._seconds = wire.reply_timeout(verb, wait, self.audio_seconds, self.command_seconds)
            self._send(line + b"\n")
            code, reply = self._read_reply(verb)
        finally:
            self._in_flight = None
            self.commands += 1
            if self.on_command is not None:
                self.on_command(verb, time.perf_counter() - started)
        return self._interpret(verb, code, reply)

    def _interpret(self, verb: str, code: int, reply: Reply | None) -> Reply:
        if code == 200 and reply is not None:
            if reply.result == "-1":
                if self.hung_up:
                    raise CallerHungUp(f"{verb} ended because the caller hung up")
                raise CommandFailed(f"{verb} failed (result=-1)")
            return reply
        if code == 511:
            self.hung_up = True
            raise DeadChannel(f"{verb} refused: the channel is dead (511)")
        if code == 510:
            raise AGIInvalidCommand(f"{verb}: invalid or unknown command (510)")
        raise ProtocolError(f"unexpected reply code {code} to {verb}")

    def _send(self, line: bytes) -> None:
        try:
            self.lines.send(line, self._seconds)
        except OSError as error:  # TimeoutError too: a peer that takes no data is as good as gone
            self.closed = True
            raise PeerClosed(f"could not send: {error}") from error

    def _read_reply(self, verb: str) -> tuple[int, Reply | None]:
        """The reply to the command in flight, reading past ``HANGUP`` lines and multi-line 520 usage."""
        while True:
            line = self._read_line()
            common = wire.parse_common_reply(line)
            if common is not None:
                return 200, common
            if line == "HANGUP":
                self.hung_up = True
                continue
            if line == "":
                continue  # a stray empty line (some peers end the environment twice)
            while wire.reply_is_open(line):
                line += "\n" + self._read_line()  # a value with a newline in it (a caller-ID name)
            code, reply = wire.parse_reply(line)
            if code == 520:
                usage = [line]
                if line.startswith("520-"):  # the usage text follows, up to "520 End of proper usage."
                    while not line.startswith("520 "):
                        line = self._read_line()
                        usage.append(line)
                raise AGIUsageError(f"{verb}: invalid syntax (520)\n" + "\n".join(usage))
            return code, reply

    def _read_line(self) -> str:
        try:
            raw = self.lines.read_line(wire.MAX_LINE_BYTES, self._seconds)
        except TimeoutError as error:
            raise ReplyTimeout(f"no reply to {self._in_flight or 'the environment'} within its time limit") from error
        except LineTooLong as error:
            raise ProtocolError(str(error)) from error
        except OSError as error:
            self.closed = True
            raise PeerClosed(f"connection lost: {error}") from error
        if raw is None:
            self.closed = True
            raise PeerClosed("Asterisk closed the connection")
        return raw.decode("utf-8", "replace").rstrip("\r")

    # -- pyst2 helpers whose argument handling is wrong ------------------------------------------------

    def database_get(self, family: str, key: str) -> str | None:
        """The value, or None when the key is not set (pyst2 adds a second layer of quotes)."""
        reply = self.run("DATABASE GET", family, key)
        return reply.data if reply.result == "1" else None

    def exec_command(self, command: str, *args: Any) -> str:
        """EXEC with the application's arguments as the one argument Asterisk reads (pyst2 leaves them
        unquoted, so everything after a blank is dropped)."""
        return str(self.run("EXEC", command, ",".join(str(arg) for arg in args)).result)

    # -- lifetime -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close our side. Asterisk then sends its final ``HANGUP`` to a closed socket, which it tolerates."""
        self.closed = True
        self.lines.close()
