"""A fake Asterisk for server tests: it speaks Asterisk 22's side of FastAGI over a real socket.

It sends the environment block as res_agi does, answers each command line with the reply Asterisk would
give, writes ``HANGUP`` when its caller hangs up and answers 511 to anything but dead-capable commands
afterwards. The caller is a script of actions, one per command that listens for keys (as in the Asterisk
end-to-end tests): a key string is pressed, ``"-"`` presses nothing, ``"hangup"`` hangs up during it.
Tests that need the real PBX's behaviour use tests/asterisk; this one proves the server's protocol handling
in milliseconds, including what a real Asterisk will not easily produce (garbage, silence, truncation).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from dataclasses import dataclass, field

from ivrkit.agi.wire import DEAD_CAPABLE, split_words

COMMAND_VERBS = sorted(
    [
        "ANSWER",
        "CHANNEL STATUS",
        "DATABASE GET",
        "DATABASE PUT",
        "EXEC",
        "GET DATA",
        "GET FULL VARIABLE",
        "GET VARIABLE",
        "HANGUP",
        "NOOP",
        "SAY ALPHA",
        "SAY DATETIME",
        "SAY DIGITS",
        "SAY NUMBER",
        "SET VARIABLE",
        "STREAM FILE",
        "VERBOSE",
        "WAIT FOR DIGIT",
    ],
    key=lambda verb: -len(verb),
)


def environment(script: str, **overrides: str) -> bytes:
    values = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:4573/{script}",
        "agi_channel": "PJSIP/trunk-00000001",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": "1763712000.1",
        "agi_version": "22.10.1",
        "agi_callerid": "+4930123456",
        "agi_calleridname": "Alice",
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": "8000",
        "agi_rdnis": "unknown",
        "agi_context": "from-trunk",
        "agi_extension": "8000",
        "agi_priority": "2",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140000000000001",
    }
    values.update(overrides)
    return "".join(f"{key}: {value}\n" for key, value in values.items()).encode() + b"\n"


@dataclass
class Transcript:
    commands: list[str] = field(default_factory=list)  # command lines as received
    words: list[list[str]] = field(default_factory=list)  # the same, tokenized as Asterisk does
    variables: dict[str, str] = field(default_factory=dict)
    played: list[str] = field(default_factory=list)  # files STREAM FILE played or was interrupted in
    hung_up: bool = False
    unused_actions: list[str] = field(default_factory=list)

    def verbs(self) -> list[str]:
        return [_verb(words)[0] for words in self.words]


def _verb(words: list[str]) -> tuple[str, list[str]]:
    upper = " ".join(words).upper()
    for verb in COMMAND_VERBS:
        if upper == verb or upper.startswith(verb + " "):
            return verb, words[len(verb.split()) :]
    return words[0].upper() if words else "", words[1:]


class FakePbx:
    """One call: ``run(sock)`` plays it to the end and returns the transcript."""

    def __init__(
        self,
        script: str = "support",
        actions: list[str] | None = None,
        *,
        variables: dict[str, str] | None = None,
        missing_files: set[str] | None = None,
        env: dict[str, str] | None = None,
        raw_environment: bytes | None = None,
    ):
        self.env = raw_environment if raw_environment is not None else environment(script, **(env or {}))
        self.actions = deque(actions or [])
        self.missing = missing_files or set()
        self.transcript = Transcript(variables=dict(variables or {}))
        self.dead = False

    def run(self, sock: socket.socket, limit: int = 1000) -> Transcript:
        reader = sock.makefile("rb")
        try:
            sock.sendall(self.env)
            for _ in range(limit):
                raw = reader.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\n")
                self.transcript.commands.append(line)
                words = split_words(line)
                self.transcript.words.append(words)
                for reply in self.reply(words):
                    sock.sendall(reply.encode() + b"\n")
            with contextlib.suppress(OSError):
                sock.sendall(b"HANGUP\n")  # as Asterisk does after the script ends
        except OSError:
            pass
        finally:
            reader.close()
            sock.close()
        self.transcript.unused_actions = list(self.actions)
        return self.transcript

    def _hang_up(self) -> list[str]:
        self.dead = True
        self.transcript.hung_up = True
        return ["HANGUP"]

    def _listen(self, escape: str) -> str | None:
        """The caller's action during a command that hears keys: a key, nothing, or a hang-up."""
        if not self.actions:
            return None
        action = self.actions.popleft()
        if action == "-":
            return None
        if action == "hangup":
            return "hangup"
        if len(action) > 1:  # several keys: the first now, the rest at the next input commands
            self.actions.extendleft(reversed(list(action[1:])))
        return action[0] if action[0] in escape or escape == "*any*" else None

    def reply(self, words: list[str]) -> list[str]:
        verb, args = _verb(words)
        variables = self.transcript.variables
        if self.dead and verb not in DEAD_CAPABLE:
            return ["511 Command Not Permitted on a dead channel or intercept routine"]
        if verb == "ANSWER":
            return ["200 result=0"]
        if verb == "STREAM FILE":
            file, escape = args[0], args[1] if len(args) > 1 else ""
            if file in self.missing:
                return ["200 result=-1 endpos=0"]
            self.transcript.played.append(file)
            key = self._listen(escape) if escape else None
            if key == "hangup":
                return ["200 result=-1 endpos=4000", *self._hang_up()]
            return [f"200 result={ord(key) if key else 0} endpos=8000"]
        if verb.startswith("SAY "):
            escape = args[1] if len(args) > 1 else ""
            key = self._listen(escape) if escape else None
            if key == "hangup":
                return ["200 result=-1", *self._hang_up()]
            return [f"200 result={ord(key) if key else 0}"]
        if verb == "WAIT FOR DIGIT":
            key = self._listen("*any*")
            if key == "hangup":
                return ["200 result=-1", *self._hang_up()]
            return [f"200 result={ord(key) if key else 0}"]
        if verb == "SET VARIABLE":
            variables[args[0]] = args[1]
            return ["200 result=1"]
        if verb == "GET FULL VARIABLE":
            expression = args[0]
            name = expression[2:-1] if expression.startswith("${") else expression
            return [f"200 result=1 ({variables.get(name, '')})"]
        if verb == "GET VARIABLE":
            return [f"200 result=1 ({variables[args[0]]})" if args[0] in variables else "200 result=0"]
        if verb == "CHANNEL STATUS":
            return ["200 result=6"]
        if verb == "HANGUP":
            self._hang_up()
            return ["200 result=1"]
        if verb == "EXEC":
            if args[0].upper() != "MSET":
                return ["200 result=-2"]  # application not found
            for assignment in args[1].split(","):
                name, _, value = assignment.partition("=")
                variables[name] = value
            return ["200 result=0"]
        if verb in ("VERBOSE", "NOOP"):
            return ["200 result=1"]
        return ["510 Invalid or unknown command"]


def serve_one(handler: object, pbx: FakePbx) -> tuple[Transcript, object]:
    """Run one session of ``handler`` (a SessionHandler) against ``pbx`` over a socket pair."""
    server_side, pbx_side = socket.socketpair()
    outcome: dict[str, object] = {}

    def session() -> None:
        outcome["result"] = handler.handle(server_side, "127.0.0.1")  # type: ignore[attr-defined]

    thread = threading.Thread(target=session)
    thread.start()
    transcript = pbx.run(pbx_side)
    thread.join(10)
    assert not thread.is_alive(), "the session did not end after the PBX side closed"
    return transcript, outcome.get("result")
