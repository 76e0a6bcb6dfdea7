"""Live queue statistics: the expressions sent to Asterisk, the reading of its answers, the round trips made.

What the real Asterisk answers to these expressions is proven by tests/asterisk/test_queues.py; here the
replies are canned, so the edge cases (a missing queue, setqueuevar off, many members) are cheap to cover.
"""

from __future__ import annotations

import doctest

import pytest

from ivrkit.agi import queue_stats
from ivrkit.agi.channel import AgiChannel, call_info
from ivrkit.agi.queue_stats import MAX_EXPRESSION, count_paused, parse_stats, paused_expressions, stats_expression
from ivrkit.agi.wire import parse_route, split_words
from ivrkit.engine.world import QueueStats
from tests.agi.peer import Peer, make


def test_doctests() -> None:
    failures, tried = doctest.testmod(queue_stats)
    assert tried > 0 and failures == 0


def test_one_expression_reads_the_queue_in_the_order_asterisk_expands_it() -> None:
    assert stats_expression("support").split(",") == [
        "${QUEUE_EXISTS(support)}",
        "${QUEUE_WAITING_COUNT(support)}",
        "${QUEUE_MEMBER(support", "logged)}",
        "${QUEUE_MEMBER(support", "ready)}",
        "${QUEUE_MEMBER(support", "free)}",
        "${QUEUE_VARIABLES(support)}",  # sets the three variables read next
        "${QUEUEHOLDTIME}",
        "${QUEUETALKTIME}",
        "${QUEUECOMPLETED}",
        "${QUEUE_MEMBER_LIST(support)}",  # last: the list holds commas of its own
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["", "sup port", "a,b", "x)}", "${SHELL(id)}", "q\nEXEC Dial", "-q", "q" * 64])
def test_a_queue_name_that_is_not_one_never_reaches_the_wire(peer_factory: list[Peer], name: str) -> None:
    peer, ch = channel(peer_factory, [])
    with pytest.raises(ValueError, match="is not a queue name"):
        ch.queue_stats(name)
    assert peer.received == []
    with pytest.raises(ValueError):
        paused_expressions(name, ("PJSIP/201",))


def test_reading_a_busy_queue() -> None:
    reading = parse_stats("1,4,5,1,2,0,95,240,17,PJSIP/201,PJSIP/202,Local/203@agents/n,SIP/x y,PJSIP/204")
    assert reading.stats == QueueStats(
        waiting=4, logged_in=5, ready=1, free=2, avg_hold=95.0, avg_talk=240.0, position=5, answered=17
    )
    assert reading.members == ("PJSIP/201", "PJSIP/202", "Local/203@agents/n", "PJSIP/204")  # the odd one left out
    assert reading.may_have_paused


@pytest.mark.parametrize(
    "text",
    [None, "", "0,0,0,0,0,-1,0,0,0,", "garbage", "1,2,3", "2,0,0,0,0,0,0,0,0,"],
    ids=["unset", "empty", "missing queue", "garbage", "cut short", "not a flag"],
)
def test_what_cannot_be_read_is_a_queue_that_does_not_exist(text: str | None) -> None:
    assert parse_stats(text).stats == QueueStats(exists=False)


def test_numbers_that_are_not_numbers_read_as_zero() -> None:
    stats = parse_stats("1,x,3,-1,,0,1.5,,7,").stats
    assert (stats.waiting, stats.logged_in, stats.ready, stats.free, stats.avg_hold, stats.answered) == (
        0, 3, 0, 0, 0.0, 7)  # fmt: skip
    assert stats.position == 1 and stats.exists


def test_a_queue_without_setqueuevar_gives_no_averages() -> None:
    """QUEUE_VARIABLES answers -1 and sets nothing: QUEUEHOLDTIME may still hold an earlier queue's value."""
    stats = parse_stats("1,0,2,2,2,-1,40,95,12,PJSIP/201").stats
    assert (stats.avg_hold, stats.avg_talk, stats.answered, stats.logged_in) == (0.0, 0.0, 0, 2)


def test_paused_flags_are_read_in_groups_asterisk_reads_whole() -> None:
    members = tuple(f"Local/agent{n:03d}@ivrkit-test-members/n" for n in range(200))
    groups = paused_expressions("support", members)
    assert len(groups) > 1 and all(len(group) <= MAX_EXPRESSION for group in groups)
    assert ",".join(groups).split("},") == [f"${{QUEUE_MEMBER(support,paused,{m})" for m in members[:-1]] + [
        f"${{QUEUE_MEMBER(support,paused,{members[-1]})}}"]  # fmt: skip
    assert paused_expressions("support", ()) == []
    with pytest.raises(ValueError, match="cannot be written"):
        paused_expressions("support", ("PJSIP/a)},${SHELL(id)",))
    assert count_paused("1,0,0,1,garbage,1") == 3


def channel(peers: list[Peer], replies: list[list[str]]) -> tuple[Peer, AgiChannel]:
    peer, connection = make(peers, replies)
    return peer, AgiChannel(connection, call_info(connection.env, parse_route("support")))


def sent(peer: Peer) -> list[list[str]]:
    return [split_words(line.rstrip("\n")) for line in peer.received]


def test_one_round_trip_when_every_logged_in_agent_is_free(peer_factory: list[Peer]) -> None:
    peer, ch = channel(peer_factory, [["200 result=1 (1,2,3,3,3,0,30,60,9,PJSIP/1,PJSIP/2,PJSIP/3)"]])
    stats = ch.queue_stats("support")
    assert (stats.waiting, stats.position, stats.logged_in, stats.ready, stats.paused) == (2, 3, 3, 3, 0)
    assert sent(peer) == [["GET", "FULL", "VARIABLE", stats_expression("support")]]


def test_paused_agents_are_counted_member_by_member(peer_factory: list[Peer]) -> None:
    replies = [["200 result=1 (1,0,3,0,1,0,0,0,0,PJSIP/1,PJSIP/2,PJSIP/3)"], ["200 result=1 (1,0,1)"]]
    peer, ch = channel(peer_factory, replies)
    stats = ch.queue_stats("support")
    assert (stats.logged_in, stats.free, stats.paused) == (3, 1, 2)
    assert sent(peer)[1] == ["GET", "FULL", "VARIABLE", *paused_expressions("support", ("PJSIP/1", "PJSIP/2",
                                                                                          "PJSIP/3"))]  # fmt: skip


def test_a_missing_queue_reads_as_absent(peer_factory: list[Peer]) -> None:
    _, ch = channel(peer_factory, [["200 result=1 (0,0,0,0,0,-1,0,0,0,)"]])
    assert ch.queue_stats("nosuch") == QueueStats(exists=False)
