"""Reading a queue's availability from the real Asterisk's ``QueueStatus``: members ready, paused, on a call,
wrapping up or unknown to Asterisk, and callers waiting with their join times and priorities. The count of
ready members must be Asterisk's own (``QUEUE_MEMBER(q,ready)``), so flows and the dispatcher agree."""

from __future__ import annotations

import doctest
import time
from collections.abc import Callable, Iterator

import pytest

import ivrkit.callbacks.availability
from ivrkit.ami.client import AmiClient, Message
from ivrkit.callbacks.availability import parse_queue_status
from ivrkit.qa.asterisk.calls import caller_dialplan
from ivrkit.qa.asterisk.sandbox import QUEUES_CONF, AsteriskInstance
from tests.asterisk.conftest import ami, asterisk

__all__ = ["ami", "asterisk"]

QUEUE = "cbavail"
WRAPUP = 60
QUEUES = f"{QUEUES_CONF}\n[{QUEUE}]\nstrategy = ringall\ntimeout = 15\nwrapuptime = {WRAPUP}\nringinuse = no\n"
MEMBERS = "cbavail-members"
DIALPLAN = f"""\
[{MEMBERS}]
exten => ready,1,Answer()
 same => n,Wait(60)
exten => paused,1,Answer()
 same => n,Wait(60)
exten => busy,1,Answer()
 same => n,Wait(60)
exten => wrapper,1,Answer()
 same => n,Hangup()

[cbavail-callers]
exten => s,1,Answer()
 same => n,Set(QUEUE_MAX_PENALTY=0)
 same => n,Set(QUEUE_PRIO=${{PRIO}})
 same => n,Queue({QUEUE})
 same => n,Hangup()

{caller_dialplan()}"""


@pytest.fixture
def queue(asterisk: AsteriskInstance, ami: AmiClient) -> Iterator[str]:
    asterisk.reload_dialplan(DIALPLAN)
    asterisk.write_config("queues.conf", QUEUES)
    ami.send("QueueReload")
    try:
        yield QUEUE
    finally:
        ami.send("Hangup", Channel=f"/^Local/(s@cbavail-callers|busy@{MEMBERS})-/")
        asterisk.write_config("queues.conf", QUEUES_CONF)
        ami.send("QueueReload")


def add(ami: AmiClient, member: str, penalty: int = 1, paused: bool = False) -> None:
    ami.send("QueueAdd", Queue=QUEUE, Interface=f"Local/{member}@{MEMBERS}", MemberName=member, Penalty=penalty,
             Paused=paused)  # fmt: skip


def caller_joined(uniqueid: str) -> Callable[[Message], bool]:
    return lambda event: event.name == "QueueCallerJoin" and event.get("Uniqueid") == uniqueid


@pytest.mark.asterisk
def test_ready_members_and_waiting_callers_are_read_as_asterisk_counts_them(ami: AmiClient, queue: str) -> None:
    # `wrapper` answers one queue call and hangs up: it is not in use, but wraps up for a minute
    add(ami, "wrapper", penalty=0)
    mark = ami.mark()
    ami.send("Originate", Channel="Local/s@cbavail-callers/n", Context="quiet", Exten="s", Priority=1, Async=True,
             Variable="PRIO=0")  # fmt: skip
    ami.wait_for(lambda e: e.name == "AgentComplete" and e.get("Queue") == QUEUE, 15, since=mark)
    add(ami, "ready")
    add(ami, "paused", paused=True)
    add(ami, "busy")
    add(ami, "nosuch")  # no such extension: Asterisk reports the device invalid
    mark = ami.mark()
    ami.send("Originate", Channel=f"Local/busy@{MEMBERS}/n", Application="Wait", Data="60", Async=True)
    ami.wait_for(lambda e: e.name == "Newexten" and e.get("Exten") == "busy" and e.get("Application") == "Wait", 10,
                 since=mark)  # fmt: skip
    # two callers who may only take penalty-0 members (wrapper, wrapping up): they keep waiting
    joined = {}
    for token, priority in (("first", 0), ("second", 5)):
        uniqueid = f"cbavail-{token}-2"
        mark = ami.mark()
        ami.send("Originate", Channel="Local/s@cbavail-callers/n", Context="quiet", Exten="s", Priority=1,
                 Async=True, ChannelId=f"cbavail-{token}", OtherChannelId=f"cbavail-{token}-2",
                 Variable=f"PRIO={priority}")  # fmt: skip
        ami.wait_for(caller_joined(uniqueid), 10, since=mark)
        joined[uniqueid] = time.time()

    now = time.time()
    response = ami.send_list("QueueStatus", Queue=QUEUE)
    status = parse_queue_status(QUEUE, response.events, now, wrapup=WRAPUP)

    states = {m.name: (m.status, m.paused, m.ready(now, WRAPUP)) for m in status.members}
    assert states == {
        "ready": (1, False, True),
        "paused": (1, True, False),
        "busy": (2, False, False),
        "wrapper": (1, False, False),  # not in use, but its last call ended less than the wrap-up ago
        "nosuch": (4, False, False),
    }, response.events
    asterisk_ready = ami.send("Getvar", Variable=f"QUEUE_MEMBER({QUEUE},ready)")["Value"]
    assert status.ready == int(asterisk_ready) == 1
    assert parse_queue_status(QUEUE, response.events, now).ready == 2  # without the queue's wrap-up: wrapper too

    by_id = {entry.uniqueid: entry for entry in status.entries}
    assert sorted(by_id) == ["cbavail-first-2", "cbavail-second-2"]
    assert by_id["cbavail-second-2"].position == 1 and by_id["cbavail-second-2"].priority == 5  # jumped ahead
    for uniqueid, at in joined.items():
        assert at - 1.5 <= by_id[uniqueid].joined_at <= at + 0.5  # Wait is whole seconds
    assert status.ahead_of(now + 1) == 2
    assert status.ahead_of(now + 1, ignore=["cbavail-second-2"]) == 1
    assert status.ahead_of(min(joined.values()) - 2) == 0


@pytest.mark.asterisk
def test_a_queue_asterisk_does_not_know_reads_as_nobody_ready(ami: AmiClient) -> None:
    response = ami.send_list("QueueStatus", Queue="no-such-queue")
    assert response["Message"] == "Queue status will follow" and response.events == []
    status = parse_queue_status("no-such-queue", response.events, time.time())
    assert (status.ready, status.members, status.entries) == (0, (), ())


@pytest.mark.asterisk
def test_events_of_other_queues_and_garbled_fields_are_not_counted(ami: AmiClient, queue: str) -> None:
    add(ami, "ready")
    events = ami.send_list("QueueStatus").events  # every queue: the session's default queue too
    assert {e.get("Queue") for e in events} >= {QUEUE, "ivrkit-test"}
    assert parse_queue_status(QUEUE, events, time.time()).ready == 1
    (member,) = [e for e in events if e.name == "QueueMember"]
    garbled = type(member)([(k, "x" if k in ("Paused", "InCall") else v) for k, v in member.headers])
    assert parse_queue_status(QUEUE, [garbled], time.time()).ready == 0


def test_doctests() -> None:
    assert doctest.testmod(ivrkit.callbacks.availability).failed == 0
