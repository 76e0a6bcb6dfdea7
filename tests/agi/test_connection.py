"""Each pyst2 defect that would hurt a live call, proven fixed over a real socket."""

from __future__ import annotations

import threading

import pytest
from asterisk.agi import AGIInvalidCommand, AGIUsageError

from ivrkit.agi.connection import (
    CallerHungUp,
    CommandFailed,
    DeadChannel,
    PeerClosed,
    ReplyTimeout,
)
from ivrkit.agi.wire import ProtocolError, quote, split_words
from tests.agi.pbx import environment
from tests.agi.peer import Peer, make


def test_works_outside_the_main_thread_and_writes_nothing_to_stderr(
    peer_factory: list[Peer], capfd: pytest.CaptureFixture[str]
) -> None:
    results: list[object] = []

    def in_thread() -> None:
        _, connection = make(peer_factory, [["200 result=1"]])
        connection.set_variable("X", "1")  # a pyst2 helper, on our transport
        results.append(connection.env["agi_uniqueid"])

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(5)
    assert results == ["1763712000.1"]
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_environment_is_read_and_a_split_value_is_joined(peer_factory: list[Peer]) -> None:
    env = environment("support", agi_calleridname="Bob\nEXEC Dial(PJSIP/666)")
    _, connection = make(peer_factory, [], env)
    assert connection.env["agi_calleridname"] == "Bob\nEXEC Dial(PJSIP/666)"
    assert connection.env["agi_callingpres"] == "0"  # the lines after it are still read
    assert connection.ignored_environment_lines == 1


def with_line_ends(block: bytes, newline: bytes) -> bytes:
    """The block's lines ended by ``newline``, the block still ended by an empty line."""
    return block.rstrip(b"\n").replace(b"\n", newline) + newline + b"\n"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_a_plain_environment_reads_as_the_line_by_line_reader_reads_it(
    peer_factory: list[Peer], newline: bytes
) -> None:
    """Asterisk's usual block takes a shortcut (one match over it); a block with a split value, the long way.
    Both give the same values for the same lines, CRs dropped."""
    env = environment("support", agi_calleridname="Ann (€) : x", agi_arg_1="")
    _, plain = make(peer_factory, [], with_line_ends(env, newline))
    split = environment("support", agi_calleridname="Ann (€) : x", agi_arg_1="", agi_extra="a\nb")
    _, joined = make(peer_factory, [], with_line_ends(split, newline))
    assert plain.ignored_environment_lines == 0 and joined.ignored_environment_lines == 1
    assert joined.env.pop("agi_extra") == "a\nb"
    assert plain.env == joined.env
    assert plain.env["agi_calleridname"] == "Ann (€) : x" and plain.env["agi_arg_1"] == ""


def test_hangup_line_before_the_reply_is_remembered(peer_factory: list[Peer]) -> None:
    peer, connection = make(peer_factory, [["HANGUP", "200 result=1"], ["200 result=1"]])
    connection.run("SET VARIABLE", "A", "1")
    assert connection.hung_up
    with pytest.raises(CallerHungUp, match="STREAM FILE is not sent"):
        connection.run("STREAM FILE", "welcome", "")
    connection.run("SET VARIABLE", "B", "2")  # dead-capable commands still go out
    assert [split_words(line.strip())[2] for line in peer.received] == ["A", "B"]


def test_minus_one_after_hangup_is_a_hangup_otherwise_a_failure(peer_factory: list[Peer]) -> None:
    _, connection = make(peer_factory, [["200 result=-1 endpos=0"], ["HANGUP", "200 result=-1 endpos=400"]])
    with pytest.raises(CommandFailed):
        connection.run("STREAM FILE", "missing", "")
    with pytest.raises(CallerHungUp):
        connection.run("STREAM FILE", "welcome", "")


def test_511_is_a_dead_channel(peer_factory: list[Peer]) -> None:
    _, connection = make(peer_factory, [["511 Command Not Permitted on a dead channel or intercept routine"]])
    with pytest.raises(DeadChannel):
        connection.run("CHANNEL STATUS")
    assert connection.hung_up


def test_pyst2_quoting_is_replaced(peer_factory: list[Peer]) -> None:
    peer, connection = make(peer_factory, [["200 result=1"], ["200 result=1 (x)"]])
    connection.set_variable("NAME", 'say "hi" \\ now\nEXEC Dial')
    connection.database_get("family", "key")
    assert split_words(peer.received[0].rstrip("\n")) == ["SET", "VARIABLE", "NAME", 'say "hi" \\ now EXEC Dial']
    assert split_words(peer.received[1].rstrip("\n")) == ["DATABASE", "GET", "family", "key"]
    assert all(line.count("\n") == 1 for line in peer.received)


def test_remembered_quoting_gives_what_quoting_afresh_gives(peer_factory: list[Peer]) -> None:
    """Short values are quoted once and remembered; the same value sent twice, True next to 1, a str subclass
    and a long value with a newline all reach the wire exactly as quoting each afresh writes them."""

    class Name(str):
        pass

    values: list[object] = ["Bob\nHANGUP", "Bob\nHANGUP", 1, True, Name("a b"), "x" * 70 + "\nEXEC Dial", ""]
    peer, connection = make(peer_factory, [["200 result=1"]] * len(values))
    for value in values:
        connection.run("SET VARIABLE", "V", value)
    assert [line.rstrip("\n") for line in peer.received] == [f"SET VARIABLE V {quote(v)}" for v in values]
    words = [split_words(line.rstrip("\n"))[3] for line in peer.received[:4]]
    assert words == ["Bob HANGUP", "Bob HANGUP", "1", "True"]


def test_exec_keeps_options_with_blanks_as_one_argument(peer_factory: list[Peer]) -> None:
    peer, connection = make(peer_factory, [["200 result=0"]])
    connection.exec_command("Playback", "hello world", "noanswer")
    assert split_words(peer.received[0].rstrip("\n")) == ["EXEC", "Playback", "hello world,noanswer"]


def test_endpos_and_timeout_marker_are_kept(peer_factory: list[Peer]) -> None:
    _, connection = make(peer_factory, [["200 result=0 endpos=12345"], ["200 result=12 (timeout)"]])
    assert connection.run("STREAM FILE", "welcome", "").endpos == 12345
    reply = connection.run("GET DATA", "menu", 3000, 4)
    assert (reply.result, reply.timed_out) == ("12", True)


def test_value_with_a_newline_in_a_reply_is_read_whole(peer_factory: list[Peer]) -> None:
    _, connection = make(peer_factory, [["200 result=1 (Bob", "EXEC Dial(PJSIP/666))"], ["200 result=1"]])
    assert connection.run("GET FULL VARIABLE", "${CALLERID(name)}").data == "Bob\nEXEC Dial(PJSIP/666)"
    assert connection.run("SET VARIABLE", "A", "1").result == "1"  # still in step


def test_usage_error_is_read_to_its_end(peer_factory: list[Peer]) -> None:
    usage = [
        "520-Invalid command syntax.  Proper usage follows:",
        "Usage: SAY NUMBER <number> <escape digits>",
        "520 End of proper usage.",
    ]
    _, connection = make(peer_factory, [usage, ["510 Invalid or unknown command"], ["200 result=0"]])
    with pytest.raises(AGIUsageError, match="Usage: SAY NUMBER"):
        connection.run("SAY NUMBER", "x", "")
    with pytest.raises(AGIInvalidCommand):
        connection.run("FLY")
    assert connection.run("ANSWER").result == "0"


def test_silent_peer_times_out(peer_factory: list[Peer]) -> None:
    peer = Peer([[]])  # reads the command, never answers
    peer_factory.append(peer)
    connection = peer.connect(command_seconds=0.2)
    with pytest.raises(ReplyTimeout, match="no reply to SET VARIABLE"):
        connection.run("SET VARIABLE", "A", "1")


def test_closed_peer(peer_factory: list[Peer]) -> None:
    peer, connection = make(peer_factory, [])
    peer.thread.join(5)
    peer.reader.close()
    peer.pbx.close()  # Asterisk's side goes away
    with pytest.raises(PeerClosed):
        connection.run("ANSWER")
    assert connection.closed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (b"\n", "empty"),
        (b"GET /index.html HTTP/1.1\n\n", "does not start with agi_ lines"),
        (b"agi_network: yes\n" * 300, "more than 200 lines"),
        (b"agi_x: " + b"y" * 20000 + b"\n\n", "longer than 16384"),
    ],
)
def test_bad_environments(peer_factory: list[Peer], env: bytes, message: str) -> None:
    peer = Peer([], env)
    peer_factory.append(peer)
    with pytest.raises(ProtocolError, match=message):
        peer.connect()


def test_no_command_is_written_past_asterisks_line_limit(peer_factory: list[Peer]) -> None:
    _, connection = make(peer_factory, [])
    with pytest.raises(ValueError, match="at most 8192"):
        connection.run("SET VARIABLE", "A", "x" * 9000)
