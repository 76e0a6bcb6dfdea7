"""Place test calls on a real Asterisk and press keys exactly when the IVR asks for them.

A call is an AMI ``Originate`` of ``Local/<exten>@<context>/n`` with preset unique ids. The ``;2`` half of the
Local channel runs ``<exten>@<context>``: that is the IVR channel, the one whose AGI session we watch and
into which digits are injected. The ``;1`` half (the originated channel) is the caller: once the IVR answers
it runs ``s@<caller_context>`` (by default ``quiet``: answer, send silence, wait).

The caller's script is applied one action per *input command*: whenever the IVR channel's AGI starts a
command that reads keys (``AGIExecStart`` of ``WAIT FOR DIGIT``, ``GET DATA``, ``GET OPTION``, ``RECORD FILE``,
or ``STREAM FILE``/``CONTROL STREAM FILE``/``SAY ...`` with escape digits), the next action is taken:

* digits (``"1"``, ``"123#"``): each digit is queued on the IVR channel as received DTMF (AMI ``PlayDTMF
  Receive=true``), the next one only after Asterisk reported reading the previous (``DTMFEnd``). A command
  that reads one key takes one digit; the rest of the action waits for the following input commands, as
  if the caller kept typing. ``GET DATA`` takes digits up to its maximum or ``#``.
* :data:`PRESS_NOTHING` (``"-"``): no key; the command times out or plays to the end.
* :data:`HANG_UP` (``"hangup"``): the caller hangs up (AMI ``Hangup`` of the IVR channel).

Asterisk facts this relies on (checked on Asterisk 22.10): ``AGIExecStart`` is published after Asterisk read
the command line and before running it, so a digit queued then is read by that command; a DTMF frame queued
while Asterisk still emulates the previous digit (~100 ms, plus a 45 ms gap) is only read when another frame
wakes the channel, hence the caller context sends silence (``PlayTones(0)``) like a real caller's RTP.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ivrkit.ami.client import AmiClient, AmiConnectionLost, AmiError, Message

PRESS_NOTHING = "-"
HANG_UP = "hangup"
DIGITS = re.compile(r"[0-9*#A-D]+")
TEST_EVENT = "ivrkit-test"
"""The UserEvent the test dialplan emits once per call, after the AGI or from the ``h`` extension."""

ScriptItem = str | int


def parse_agi_command(line: str) -> list[str]:
    """Split an AGI command line into arguments the way Asterisk's ``parse_args`` does.

    Blanks (space, tab) separate; ``"..."`` groups and may start an empty argument; a backslash makes the
    next character literal; a quote in the middle of a word toggles quoting without splitting.

    >>> parse_agi_command('STREAM FILE "en/ivrkit/x" ""')
    ['STREAM', 'FILE', 'en/ivrkit/x', '']
    >>> parse_agi_command(r'SET VARIABLE X "a \\"b\\" c"   d\\ e')
    ['SET', 'VARIABLE', 'X', 'a "b" c', 'd e']
    """
    args: list[str] = []
    current: list[str] = []
    in_word = False
    quoted = escaped = False
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True
            continue
        if char in " \t" and not quoted and not escaped:
            if in_word:
                args.append("".join(current))
                current, in_word = [], False
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        current.append(char)
        in_word, escaped = True, False
    if in_word:
        args.append("".join(current))
    return args


def input_command(args: Sequence[str]) -> str | None:
    """What an AGI command reads from the caller: ``"one"`` key, ``"many"`` (GET DATA), or None.

    >>> input_command(["WAIT", "FOR", "DIGIT", "5000"]), input_command(["GET", "DATA", "beep", "3000", "4"])
    ('one', 'many')
    >>> input_command(["STREAM", "FILE", "welcome", ""]), input_command(["STREAM", "FILE", "menu", "123"])
    (None, 'one')
    """
    words = [arg.upper() for arg in args[:3]]

    def escape_digits(index: int) -> str | None:
        return "one" if len(args) > index and args[index] != "" else None

    match words:
        case ["WAIT", "FOR", "DIGIT", *_] | ["GET", "OPTION", *_]:
            return "one"
        case ["GET", "DATA", *_]:
            return "many"
        case ["STREAM", "FILE", *_]:
            return escape_digits(3)
        case ["CONTROL", "STREAM", "FILE"]:
            return escape_digits(4)
        case ["RECORD", "FILE", *_]:
            return escape_digits(4)
        case ["SAY", _, *_]:
            return escape_digits(3)
    return None


def played_file(args: Sequence[str]) -> str | None:
    """The sound file a command plays, if it plays one (STREAM FILE, CONTROL STREAM FILE, GET OPTION, GET DATA)."""
    words = [arg.upper() for arg in args[:3]]
    if words[:2] in (["STREAM", "FILE"], ["GET", "OPTION"], ["GET", "DATA"]) and len(args) > 2:
        return args[2]
    if words == ["CONTROL", "STREAM", "FILE"] and len(args) > 3:
        return args[3]
    return None


def normalize_script(script: Iterable[ScriptItem]) -> list[str]:
    """Check a caller script up front, so a typo fails the test before the call, not in the middle."""
    actions = []
    for position, item in enumerate(script, 1):
        text = str(item).strip() if isinstance(item, int | str) and not isinstance(item, bool) else None
        if text is None:
            raise TypeError(f"script item {position} must be a string or an integer, got {item!r}")
        if text.lower() == HANG_UP:
            actions.append(HANG_UP)
        elif text == PRESS_NOTHING:
            actions.append(PRESS_NOTHING)
        elif DIGITS.fullmatch(text.upper()):
            actions.append(text.upper())
        else:
            raise ValueError(
                f"script item {position} ({item!r}) is not a key sequence (0-9 * # A-D), {PRESS_NOTHING!r}"
                f" (press nothing) or {HANG_UP!r}"
            )
    return actions


@dataclass
class AgiCommand:
    """One AGI command of the IVR channel, as AMI reported it."""

    line: str
    command_id: str
    result_code: str | None = None
    """From ``AGIExecEnd``: ``200`` (ran), ``-1`` (failed, e.g. file missing or hang-up), ``510``, ``511``, ``520``."""
    result: str | None = None
    """From ``AGIExecEnd``: ``Success``, ``Failure``, ... (AMI does not carry the ``result=`` value of the reply)."""
    pressed: str = ""
    """Digits the driver pressed while this command ran."""

    @property
    def args(self) -> list[str]:
        return parse_agi_command(self.line)


@dataclass
class Call:
    """A test call in progress or finished; every field is filled from AMI events of the call's channels."""

    caller_id: str
    """Unique id of the ``;1`` (caller) half; the call's linked id."""
    ivr_id: str
    """Unique id of the ``;2`` (IVR) half."""
    script: list[str]
    ivr_channel: str | None = None
    caller_channel: str | None = None
    events: list[Message] = field(default_factory=list)
    agi_commands: list[AgiCommand] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    """Last value of every variable set on the IVR channel (``VarSet``)."""
    user_events: list[Message] = field(default_factory=list)
    pressed: list[str] = field(default_factory=list)
    """Digits Asterisk read on the IVR channel (``DTMFEnd``), in order."""
    hangup_cause: str | None = None
    hangup_cause_text: str | None = None
    originate_response: Message | None = None
    errors: list[str] = field(default_factory=list)
    unused_actions: list[str] = field(default_factory=list)
    """Script actions (or the untyped rest of one) never used: the IVR asked for fewer inputs."""

    def __post_init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()

    @property
    def commands(self) -> list[tuple[str, str | None, str | None]]:
        """(command line, result code, result) per AGI command, in order."""
        return [(c.line, c.result_code, c.result) for c in self.agi_commands]

    @property
    def prompts_streamed(self) -> list[str]:
        """Files of STREAM FILE (and other file-playing) commands that ran (result code 200)."""
        found = []
        for command in self.agi_commands:
            name = played_file(command.args)
            if name is not None and command.result_code == "200":
                found.append(name)
        return found

    @property
    def applications(self) -> list[tuple[str, str]]:
        """(application, its data after substitution) for each dialplan priority the IVR channel ran, in order
        (AMI ``Newexten``), hang-up handlers included."""
        return [
            (event.get("Application", ""), event.get("AppData", ""))
            for event in self.events
            if event.name == "Newexten" and event.get("Uniqueid") == self.ivr_id
        ]

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def test_report(self) -> Message | None:
        """The ``ivrkit-test`` UserEvent of :func:`agi_test_dialplan` (AGISTATUS, IVRKIT_RESULT, IVRKIT_OUTCOME)."""
        return self.user_event(TEST_EVENT)

    def user_event(self, name: str) -> Message | None:
        """The first UserEvent called ``name``."""
        for event in self.user_events:
            if event.get("UserEvent") == name:
                return event
        return None

    def wait(self, timeout: float = 30.0) -> Call:
        """Block until every channel of the call hung up; :class:`CallTimeout` with a transcript otherwise."""
        if not self._done.wait(timeout):
            raise CallTimeout(f"the test call is still up after {timeout:g} s.\n{self.describe()}")
        return self

    def describe(self) -> str:
        """A readable account of the call for assertion messages."""
        lines = [f"call {self.caller_id}: IVR channel {self.ivr_channel or '(not created)'}"]
        for command in self.agi_commands:
            keys = f"  [pressed {command.pressed}]" if command.pressed else ""
            lines.append(f"  AGI {command.line!r} -> {command.result_code} {command.result}{keys}")
        if self.variables:
            shown = ", ".join(f"{k}={v}" for k, v in self.variables.items() if k.startswith(("IVRKIT", "AGI")))
            lines.append(f"  variables: {shown}")
        for event in self.user_events:
            lines.append(f"  UserEvent {event.summary(limit=40)}")
        if self.hangup_cause is not None:
            lines.append(f"  hung up: cause {self.hangup_cause} ({self.hangup_cause_text})")
        lines.extend(f"  error: {error}" for error in self.errors)
        if self.unused_actions:
            lines.append(f"  unused script actions: {self.unused_actions}")
        return "\n".join(lines)


class CallTimeout(AssertionError):
    """A test call did not end in time (an AssertionError, so pytest shows it as a test failure)."""


class CallDriver:
    """Places calls through one AMI connection and plays each call's caller script.

    Each call gets a thread that reads the AMI event stream from just before the ``Originate`` (so nothing
    is missed) and keeps only the events of that call's channels.
    """

    def __init__(self, ami: AmiClient, *, caller_context: str = "quiet", originate_timeout: float = 30.0) -> None:
        self.ami = ami
        self.caller_context = caller_context
        self.originate_timeout = originate_timeout
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def place(
        self,
        context: str,
        exten: str = "s",
        variables: Mapping[str, str] | None = None,
        caller_id: str | None = None,
        script: Iterable[ScriptItem] = (),
        *,
        caller_context: str | None = None,
    ) -> Call:
        """Originate a call into ``exten@context`` (run by the ``;2`` half) and start driving it.

        ``variables`` are set on the caller half and copied to the IVR half when the call starts;
        ``caller_id`` is like ``'"Alice" <+4930123>'``.
        """
        actions = normalize_script(script)
        for name, value in (variables or {}).items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_()]*", name):
                raise ValueError(f"variable name {name!r} must be a plain dialplan name like IVRKIT_FLOW")
            if any(c in value for c in ",\\\"\r\n"):
                raise ValueError(
                    f"variable {name}: value {value!r} contains a comma, quote, backslash or line break, which"
                    " Originate would split or mangle; pass plain values"
                )
        base = f"ivrkit-{secrets.token_hex(6)}"
        call = Call(caller_id=f"{base}-caller", ivr_id=f"{base}-ivr", script=list(actions))
        runner = _CallRunner(self, call, actions)
        mark = self.ami.mark()
        response = self.ami.send(
            "Originate",
            Channel=f"Local/{exten}@{context}/n",
            Context=caller_context or self.caller_context,
            Exten="s",
            Priority=1,
            Async=True,
            Timeout=int(self.originate_timeout * 1000),
            ChannelId=call.caller_id,
            OtherChannelId=call.ivr_id,
            CallerID=caller_id,
            Variable=[f"{name}={value}" for name, value in (variables or {}).items()] or None,
        )
        runner.originate_action_id = response.action_id
        thread = threading.Thread(target=runner.run, args=(mark,), name=f"call-{base}", daemon=True)
        self.calls.append(call)
        self._threads.append(thread)
        thread.start()
        return call

    def close(self, timeout: float = 5.0) -> None:
        """Hang up calls still up and stop their threads (the fixture does this after each test)."""
        for call in self.calls:
            if not call.done:
                for channel in (call.ivr_channel, call.caller_channel):
                    if channel:
                        try:
                            self.ami.send("Hangup", Channel=channel, timeout=2.0)
                        except AmiError:
                            continue  # already gone
        for call in self.calls:
            call._done.wait(timeout)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> CallDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _CallRunner:
    """The per-call thread: filters the event stream and plays the script."""

    def __init__(self, driver: CallDriver, call: Call, actions: list[str]) -> None:
        self.driver = driver
        self.call = call
        self.actions = list(actions)
        self.carry = ""  # digits of the current action still to be typed at the next input commands
        self.sending = ""  # digits to press during the running command, after the one in flight
        self.current: AgiCommand | None = None
        self.open_channels: set[str] = set()
        self.seen_channels: set[str] = set()
        self.originate_action_id: str | None = None
        self.originate_failed = False

    def run(self, mark: int) -> None:
        cursor = self.driver.ami.cursor(mark)
        try:
            while not self.driver._stop.is_set() and not self.call.done:
                event = cursor.next(0.5)
                if event is not None and self._belongs(event):
                    self._handle(event)
        except AmiConnectionLost as error:
            self.call.errors.append(f"AMI connection lost: {error}")
        finally:
            self.call.unused_actions = ([self.carry] if self.carry else []) + self.actions
            self.call._done.set()

    def _belongs(self, event: Message) -> bool:
        call = self.call
        if event.get("Uniqueid") in (call.caller_id, call.ivr_id) or event.get("Linkedid") == call.caller_id:
            return True
        return event.name == "OriginateResponse" and event.action_id == self.originate_action_id

    def _handle(self, event: Message) -> None:
        call = self.call
        call.events.append(event)
        name = event.name
        uniqueid = event.get("Uniqueid")
        on_ivr = uniqueid == call.ivr_id
        if name == "Newchannel" and uniqueid:
            self.open_channels.add(uniqueid)
            self.seen_channels.add(uniqueid)
            if on_ivr:
                call.ivr_channel = event.get("Channel")
            elif uniqueid == call.caller_id:
                call.caller_channel = event.get("Channel")
        elif name == "OriginateResponse":
            call.originate_response = event
            if event.get("Response") != "Success":
                self.originate_failed = True
                call.errors.append(f"Originate failed: reason {event.get('Reason')}")
        elif name == "AGIExecStart" and on_ivr:
            self.current = AgiCommand(line=event.get("Command", ""), command_id=event.get("CommandId", ""))
            call.agi_commands.append(self.current)
            self._input_started(self.current)
        elif name == "AGIExecEnd" and on_ivr:
            self._command_ended(event)
        elif name == "DTMFEnd" and on_ivr and event.get("Direction") == "Received":
            call.pressed.append(event.get("Digit", ""))
            if self.current is not None:
                self.current.pressed += event.get("Digit", "")
            if self.sending:
                digit, self.sending = self.sending[0], self.sending[1:]
                self._press(digit)
        elif name == "VarSet" and on_ivr:
            call.variables[event.get("Variable", "")] = event.get("Value", "")
        elif name == "UserEvent":
            call.user_events.append(event)
        elif name == "Hangup" and uniqueid:
            self.open_channels.discard(uniqueid)
            if on_ivr:
                call.hangup_cause, call.hangup_cause_text = event.get("Cause"), event.get("Cause-txt")
        ended = name in ("Hangup", "OriginateResponse") and not self.open_channels
        if ended and (call.caller_id in self.seen_channels or self.originate_failed):
            call._done.set()

    def _input_started(self, command: AgiCommand) -> None:
        reads = input_command(command.args)
        if reads is None:
            return
        if not self.carry:
            if not self.actions:
                return
            action = self.actions.pop(0)
            if action == PRESS_NOTHING:
                return
            if action == HANG_UP:
                self._send("Hangup", Channel=self.call.ivr_channel or "", Cause="16")
                return
            self.carry = action
        if reads == "one":
            keys, self.carry = self.carry[0], self.carry[1:]
        else:
            keys, self.carry = _get_data_share(command.args, self.carry)
        self.sending = keys[1:]
        self._press(keys[0])

    def _command_ended(self, event: Message) -> None:
        command = self.current
        if command is None or command.command_id != event.get("CommandId"):
            return
        command.result_code = event.get("ResultCode")
        command.result = event.get("Result")
        if self.sending:
            self.call.errors.append(f"{command.line!r} ended before digits {self.sending!r} were pressed")
            self.sending = ""
        self.current = None

    def _press(self, digit: str) -> None:
        self._send("PlayDTMF", Channel=self.call.ivr_channel or "", Digit=digit, Receive=True)

    def _send(self, action: str, **headers: str | bool) -> None:
        try:
            self.driver.ami.send_action(action, headers)
        except AmiError as error:
            self.call.errors.append(f"{action} {headers} failed: {error}")


def _get_data_share(args: Sequence[str], typed: str) -> tuple[str, str]:
    """The digits GET DATA takes from what the caller types: up to its maximum, or through ``#``.

    >>> _get_data_share(["GET", "DATA", "beep", "3000", "3"], "12345"), _get_data_share(["GET", "DATA", "x"], "12#9")
    (('123', '45'), ('12#', '9'))
    """
    maximum = int(args[4]) if len(args) > 4 and args[4].isdigit() and int(args[4]) > 0 else 1024
    end = typed.find("#")
    take = min(maximum, end + 1 if end >= 0 else len(typed))
    return typed[:take], typed[take:]


def agi_url(port: int, path: str = "ivr", host: str = "127.0.0.1") -> str:
    return f"agi://{host}:{port}/{path}"


def agi_test_dialplan(
    agi_port: int,
    *,
    agi_path: str = "ivr",
    entry_context: str = "ivr",
    caller_context: str = "quiet",
    agi_args: Sequence[str] = (),
    agi_host: str = "127.0.0.1",
) -> str:
    """extensions.conf text for tests: an entry context running the FastAGI, and the caller's context.

    ``s@<entry_context>`` answers, runs ``AGI(agi://host:port/path[,args])`` and then emits one UserEvent
    ``ivrkit-test`` with ``Where`` (``after-agi``, or ``h`` when the AGI ended with a hang-up), ``AGISTATUS``,
    ``IVRKIT_RESULT`` and ``IVRKIT_OUTCOME`` (values must not contain commas), so a test can assert what the
    dialplan saw. ``s@<caller_context>`` answers and sends silence until hung up (see the module docstring).
    """
    args = "".join(f",{arg}" for arg in agi_args)
    report = (
        "AGISTATUS: ${AGISTATUS},IVRKIT_RESULT: ${IVRKIT_RESULT},IVRKIT_OUTCOME: ${IVRKIT_OUTCOME}"
    )
    return f"""\
[{entry_context}]
exten => s,1,Answer()
 same => n,AGI({agi_url(agi_port, agi_path, agi_host)}{args})
 same => n,Set(IVRKIT_TEST_REPORTED=1)
 same => n,UserEvent({TEST_EVENT},Where: after-agi,{report})
 same => n,Hangup()
exten => h,1,GotoIf($["${{IVRKIT_TEST_REPORTED}}" = "1"]?done)
 same => n,UserEvent({TEST_EVENT},Where: h,{report})
 same => n(done),NoOp()

{caller_dialplan(caller_context)}"""


def caller_dialplan(context: str = "quiet") -> str:
    """The caller half's context: answer, then send silence (keeps injected digits flowing) until hung up."""
    return f"""\
[{context}]
exten => s,1,Answer()
 same => n,PlayTones(0)
 same => n,Wait(3600)
 same => n,Hangup()
"""
