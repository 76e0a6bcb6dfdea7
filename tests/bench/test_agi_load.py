"""The FastAGI load generator (tools/bench/agi_load.py): Asterisk's tokenizer and replies, and a real run.

The benchmark's numbers are only as good as the generator's imitation of Asterisk, and its counts are what
the reports compare, so both are pinned here.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PATH = Path(__file__).resolve().parents[2] / "tools" / "bench" / "agi_load.py"


def _load() -> ModuleType:
    """tools/ is no package: load the script as a module (registered, so its dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location("agi_load", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["agi_load"] = module
    spec.loader.exec_module(module)
    return module


agi_load = _load()


# -- the tokenizer ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("ANSWER", ["ANSWER"]),
        ("STREAM FILE  welcome\t\t1", ["STREAM", "FILE", "welcome", "1"]),
        ('STREAM FILE welcome ""', ["STREAM", "FILE", "welcome", ""]),
        ('SET VARIABLE GREETING "hello world"', ["SET", "VARIABLE", "GREETING", "hello world"]),
        ('SET VARIABLE X a"b c"d', ["SET", "VARIABLE", "X", "ab cd"]),
        (r"SET VARIABLE X a\ b", ["SET", "VARIABLE", "X", "a b"]),
        (r'SET VARIABLE X "say \"hi\""', ["SET", "VARIABLE", "X", 'say "hi"']),
        (r"SET VARIABLE X back\\slash", ["SET", "VARIABLE", "X", "back\\slash"]),
        ("NOOP trailing\\", ["NOOP", "trailing"]),
        ('SET VARIABLE S "{\\"f\\":\\"bench\\",\\"n\\":1}"', ["SET", "VARIABLE", "S", '{"f":"bench","n":1}']),
        ("ANSWER\r", ["ANSWER\r"]),  # Asterisk strips only the newline
        ("", []),
        ("   ", []),
    ],
)
def test_split_args_follows_asterisk_parse_args(line: str, words: list[str]) -> None:
    assert agi_load.split_args(line) == words


def test_split_args_keeps_at_most_127_words_like_asterisk() -> None:
    assert len(agi_load.split_args(" ".join(["w"] * 300))) == 127
    assert len(agi_load.split_args('"x" ' + " ".join(["w"] * 300))) == 127


def test_commands_match_word_by_word_without_case() -> None:
    assert agi_load.match_command(["get", "Full", "variable", "${X}"]) == ("GET FULL VARIABLE", ["${X}"])
    assert agi_load.match_command(["GET", "VARIABLE", "X"]) == ("GET VARIABLE", ["X"])
    assert agi_load.match_command(["STREAM"]) == (None, ["STREAM"])
    assert agi_load.match_command(["PLAY", "x"]) == (None, ["PLAY", "x"])


def test_expand_substitutes_like_get_full_variable() -> None:
    values = {"A": "1", "B": "A", "QUEUE_WAITING_COUNT(support)": "3"}

    def lookup(name: str) -> str:
        return values.get(name, "")

    assert agi_load.expand("${QUEUE_WAITING_COUNT(support)}", lookup) == "3"
    assert agi_load.expand("x${A}y${UNSET}z", lookup) == "x1yz"
    assert agi_load.expand("${${B}}", lookup) == "1"
    assert agi_load.expand("open ${A", lookup) == "open ${A"
    assert agi_load.expand("no variables", lookup) == "no variables"


# -- the replies --------------------------------------------------------------------------------------------


def reply(responder: Any, line: str, caller: Any) -> str:
    answer, _ = responder.reply(line.encode(), caller)
    return str(answer.decode())


@pytest.fixture
def responder() -> Any:
    return agi_load.Responder({"QUEUE_WAITING_COUNT(support)": "3", "EMPTY": ""}, endpos=16000)


def test_fixed_replies(responder: Any) -> None:
    caller = agi_load.Caller("")
    assert reply(responder, "ANSWER", caller) == "200 result=0\n"
    assert reply(responder, "answer", caller) == "200 result=0\n"
    assert reply(responder, "SET VARIABLE X 1", caller) == "200 result=1\n"
    assert reply(responder, "SAY NUMBER 3 \"\"", caller) == "200 result=0\n"
    assert reply(responder, "SAY DIGITS 123 *", caller) == "200 result=0\n"
    assert reply(responder, "CHANNEL STATUS", caller) == "200 result=6\n"
    assert reply(responder, 'VERBOSE "hello" 1', caller) == "200 result=1\n"
    assert reply(responder, "NOOP", caller) == "200 result=0\n"
    assert reply(responder, "EXEC Playback beep", caller) == "200 result=0\n"


def test_unknown_commands_and_bad_syntax_are_counted_as_protocol_errors(responder: Any) -> None:
    caller = agi_load.Caller("")
    answer, entry = responder.reply(b"PLAY welcome", caller)
    assert (answer, entry.problem) == (b"510 Invalid or unknown command\n", "unknown-command")
    answer, entry = responder.reply(b"ANSWER\r", caller)
    assert entry.problem == "unknown-command"
    answer, entry = responder.reply(b"SAY NUMBER three \"\"", caller)
    assert entry.problem == "bad-syntax"
    assert answer.startswith(b"520-Invalid command syntax.  Proper usage follows:\n")
    assert answer.endswith(b"\n520 End of proper usage.\n")
    _, entry = responder.reply(b"STREAM FILE welcome", caller)
    assert entry.problem == "bad-syntax"  # the escape digits are required


def test_stream_file_is_interrupted_only_by_a_pressed_escape_key(responder: Any) -> None:
    caller = agi_load.Caller("1")
    assert reply(responder, 'STREAM FILE welcome ""', caller) == "200 result=0 endpos=16000\n"
    assert reply(responder, "STREAM FILE welcome *", caller) == "200 result=0 endpos=16000\n"
    assert caller.keys == "1"
    assert reply(responder, "STREAM FILE menu 0123456789*#", caller) == "200 result=49 endpos=8000\n"
    assert caller.keys == ""
    assert reply(responder, "STREAM FILE menu 0123456789*#", caller) == "200 result=0 endpos=16000\n"


def test_without_barge_in_keys_wait_for_wait_for_digit() -> None:
    responder = agi_load.Responder(barge_in=False)
    caller = agi_load.Caller("#")
    assert reply(responder, "STREAM FILE menu 0123456789*#", caller) == "200 result=0 endpos=16000\n"
    assert reply(responder, "WAIT FOR DIGIT 5000", caller) == "200 result=35\n"
    assert reply(responder, "WAIT FOR DIGIT 5000", caller) == "200 result=0\n"


@pytest.mark.parametrize(
    ("keys", "line", "expected", "left"),
    [
        ("1", "GET DATA menu 5000 1", "200 result=1\n", ""),
        ("123", "GET DATA menu 5000 2", "200 result=12\n", "3"),
        ("12#9", "GET DATA account 5000 8", "200 result=12\n", "9"),
        ("12", "GET DATA account 5000 8", "200 result=12 (timeout)\n", ""),
        ("", "GET DATA account", "200 result= (timeout)\n", ""),
        ("#", "GET DATA account 5000 8", "200 result=\n", ""),
    ],
)
def test_get_data(responder: Any, keys: str, line: str, expected: str, left: str) -> None:
    caller = agi_load.Caller(keys)
    assert reply(responder, line, caller) == expected
    assert caller.keys == left


def test_get_option_returns_a_key_only_when_it_is_an_escape_key(responder: Any) -> None:
    assert reply(responder, "GET OPTION menu 12 3000", agi_load.Caller("2")) == "200 result=50 endpos=8000\n"
    assert reply(responder, "GET OPTION menu 12 3000", agi_load.Caller("5")) == "200 result=0 endpos=8000\n"
    assert reply(responder, "GET OPTION menu 12 3000", agi_load.Caller("")) == "200 result=0 endpos=16000\n"


def test_variables(responder: Any) -> None:
    caller = agi_load.Caller("")
    assert reply(responder, "GET FULL VARIABLE ${QUEUE_WAITING_COUNT(support)}", caller) == "200 result=1 (3)\n"
    assert reply(responder, 'GET FULL VARIABLE "${UNSET}"', caller) == "200 result=1 ()\n"
    assert reply(responder, "GET VARIABLE QUEUE_WAITING_COUNT(support)", caller) == "200 result=1 (3)\n"
    assert reply(responder, "GET VARIABLE EMPTY", caller) == "200 result=1 ()\n"
    assert reply(responder, "GET VARIABLE UNSET", caller) == "200 result=0\n"  # Asterisk: unset reads as 0
    assert reply(responder, 'SET VARIABLE CHOICE "1 2"', caller) == "200 result=1\n"
    assert reply(responder, "GET VARIABLE CHOICE", caller) == "200 result=1 (1 2)\n"
    assert reply(responder, "GET FULL VARIABLE [${CHOICE}]", caller) == "200 result=1 ([1 2])\n"
    assert reply(responder, "GET FULL VARIABLE ${QUEUE_WAITING_COUNT(support)}", caller) == "200 result=1 (3)\n"
    assert reply(responder, "SET VARIABLE QUEUE_WAITING_COUNT(support) 7", caller) == "200 result=1\n"
    assert reply(responder, "GET FULL VARIABLE ${QUEUE_WAITING_COUNT(support)}", caller) == "200 result=1 (7)\n"
    assert reply(responder, "SET VARIABLE WHICH CHOICE", caller) == "200 result=1\n"
    assert reply(responder, "GET FULL VARIABLE ${${WHICH}}", caller) == "200 result=1 (1 2)\n"
    assert reply(responder, "GET VARIABLE CHOICE", agi_load.Caller("")) == "200 result=0\n"  # per call


def test_exec_set_and_mset_set_variables(responder: Any) -> None:
    caller = agi_load.Caller("")
    assert reply(responder, "EXEC MSet IVRKIT_TARGET=support,IVRKIT_RESULT=queue", caller) == "200 result=0\n"
    assert reply(responder, 'EXEC Set "GREETING=a,b"', caller) == "200 result=0\n"
    assert reply(responder, "EXEC Playback beep", caller) == "200 result=0\n"
    assert caller.vars == {"IVRKIT_TARGET": "support", "IVRKIT_RESULT": "queue", "GREETING": "a,b"}


def test_after_hangup_only_dead_capable_commands_work(responder: Any) -> None:
    caller = agi_load.Caller("1")
    assert reply(responder, "HANGUP", caller) == "200 result=1\nHANGUP\n"
    assert reply(responder, "STREAM FILE goodbye \"\"", caller).startswith("511 ")
    assert reply(responder, "HANGUP", caller).startswith("511 ")
    assert reply(responder, "SET VARIABLE IVRKIT_RESULT hangup", caller) == "200 result=1\n"
    assert reply(responder, "GET FULL VARIABLE ${QUEUE_WAITING_COUNT(support)}", caller) == "200 result=1 (3)\n"


def test_each_distinct_line_is_parsed_once(responder: Any) -> None:
    first = responder.parse(b"STREAM FILE welcome \"\"")
    assert responder.parse(b"STREAM FILE welcome \"\"") is first


def test_environment_block_has_asterisks_lines_in_order() -> None:
    block = agi_load.environment("bench", "127.0.0.1", 4573, 7, ["a", "b"], 1700000000).decode()
    assert block.endswith("\n\n")
    names = [line.split(":", 1)[0] for line in block.split("\n")[:-2]]
    assert names == [
        "agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language", "agi_type",
        "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname", "agi_callingpres", "agi_callingani2",
        "agi_callington", "agi_callingtns", "agi_dnid", "agi_rdnis", "agi_context", "agi_extension",
        "agi_priority", "agi_enhanced", "agi_accountcode", "agi_threadid", "agi_arg_1", "agi_arg_2",
    ]  # fmt: skip
    assert "agi_network_script: bench\nagi_request: agi://127.0.0.1:4573/bench\n" in block
    assert "agi_uniqueid: 1700000000.7\n" in block
    assert "agi_accountcode: \n" in block
    assert "agi_network_script" not in agi_load.environment("", "127.0.0.1", 4573, 1, [], 1).decode()


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    result = agi_load.percentiles([i / 1000 for i in range(1, 101)])
    assert (result["n"], result["p50"], result["p99"], result["max"]) == (100, 50.0, 99.0, 100.0)
    assert agi_load.percentiles([]) == {}


# -- a real run against a tiny FastAGI server -----------------------------------------------------------------

SESSION = [b"ANSWER", b'STREAM FILE menu "0123456789*#"', b"SET VARIABLE CHOICE 1"]
EXPECTED = [b"200 result=0", b"200 result=49 endpos=8000", b"200 result=1"]


class TinyServer:
    """A thread-per-call FastAGI server on a real socket, counting what it sees from the generator."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.listener.settimeout(0.05)  # closing a socket does not wake a blocked accept(): poll a flag
        self.port = self.listener.getsockname()[1]
        self.closing = False
        self.lock = threading.Lock()
        self.sessions = self.commands = self.hangups = 0
        self.failures: list[str] = []
        self.threads: list[threading.Thread] = []
        self.accepting = threading.Thread(target=self.accept, daemon=True)
        self.accepting.start()

    def accept(self) -> None:
        while not self.closing:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            thread = threading.Thread(target=self.session, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            env = []
            while (line := lines.readline()) not in (b"\n", b""):
                env.append(line)
            if not env or env[1] != b"agi_network_script: tiny\n":
                self.fail(f"environment: {env[:2]}")
                return
            for command, expected in zip(SESSION, EXPECTED):
                conn.sendall(command + b"\n")
                answer = lines.readline().rstrip(b"\n")
                with self.lock:
                    self.commands += 1
                if answer != expected:
                    self.fail(f"{command!r} got {answer!r}")
                    return
            conn.shutdown(socket.SHUT_WR)  # the call is over for us; Asterisk answers with HANGUP
            rest = lines.read()
        with self.lock:
            self.sessions += 1
            self.hangups += rest == b"HANGUP\n"

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def close(self) -> None:
        self.closing = True
        self.accepting.join(5)
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def tiny() -> Iterator[TinyServer]:
    server = TinyServer()
    yield server
    server.close()


def test_a_throughput_run_counts_what_the_server_saw(tiny: TinyServer) -> None:
    settings = agi_load.Settings(port=tiny.port, script="tiny", concurrency=4, duration=0.3, warmup=0.05,
                                 expect_commands=3)  # fmt: skip
    report = agi_load.run(settings)
    tiny.close()
    assert tiny.failures == []
    assert report["errors"] == {} and report["protocol_errors"] == {}
    assert report["calls_ok"] == report["calls_started"] == tiny.sessions == tiny.hangups > 0
    assert report["commands"] == tiny.commands == 3 * tiny.sessions
    assert report["commands_per_call"] == 3
    assert 0 < report["calls_in_window"] <= report["calls_ok"]
    assert report["commands_in_window"] == report["turnaround_ms"]["n"]
    assert report["calls_per_s"] > 0 and report["peak_connected_calls"] <= 4


def test_a_hold_run_keeps_every_call_open_at_once(tiny: TinyServer) -> None:
    settings = agi_load.Settings(mode="hold", port=tiny.port, script="tiny", concurrency=20, delay=0.2, ramp=0,
                                 call_timeout=10)  # fmt: skip
    report = agi_load.run(settings)
    tiny.close()
    assert tiny.failures == []
    assert report["held"] == report["peak_connected_calls"] == 20 and report["all_held"]
    assert report["first_command_ms"]["n"] == 20
    assert report["calls_ok"] == tiny.sessions == 20
    assert report["commands"] == tiny.commands == 60


def test_a_refused_connection_is_counted() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connects are refused
        report = agi_load.run(agi_load.Settings(port=port, concurrency=2, duration=0.1, warmup=0))
    assert report["calls_ok"] == 0
    assert report["errors"]["refused"] == report["calls_started"] > 0
