"""LiveQueues: Asterisk's figures through the call's channel, merged with the estimate log on a real SQLite
file; the log completed when the call comes back; the accuracy metrics."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivrkit.engine.channel import CallInfo, Channel
from ivrkit.engine.runner import Engine
from ivrkit.engine.world import QueueExit, QueueJoin, QueueStats, StaticWorld
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.world import LiveQueues
from ivrkit.sim.channel import SimulatedChannel
from ivrkit.sim.script import CallerScript
from ivrkit.store import Database, open_database
from tests.calls import build

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
ASTERISK = QueueStats(waiting=3, logged_in=4, avg_talk=999, avg_hold=42, answered=7000)  # QUEUECOMPLETED: since boot


class QueueChannel(SimulatedChannel):
    """A simulated call whose channel answers ``queue_stats`` as the AGI channel does."""

    asked: list[str]

    def queue_stats(self, name: str) -> QueueStats:
        self.asked.append(name)
        return ASTERISK


def channel(uniqueid: str = "live-1") -> QueueChannel:
    made = QueueChannel(CallInfo(uniqueid, "+4930123456"), NOW, CallerScript([]))
    made.asked = []
    return made


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database(tmp_path) as database:
        yield database


def answered(live: LiveQueues, uniqueid: str, talk: float | None, minutes_ago: float, queue: str = "support") -> None:
    when = NOW - dt.timedelta(minutes=minutes_ago)
    live.log.joined(QueueJoin(uniqueid, "f", queue, 1, None, "off", "position", when))
    live.log.left(QueueExit(uniqueid, "f", queue, 30.0, "answered", talk, when))


def test_asterisks_figures_with_the_logs_recent_answered_calls(database: Database) -> None:
    live = LiveQueues(database, window=3600, clock=NOW.timestamp)
    for index, (talk, minutes_ago) in enumerate([(100.0, 5), (300.0, 30), (None, 50), (900.0, 61)]):
        answered(live, f"old-{index}", talk, minutes_ago)
    answered(live, "other", 50.0, 1, queue="billing")
    call = channel()
    stats = live.queue("support", call)
    assert call.asked == ["support"]
    assert stats == QueueStats(waiting=3, logged_in=4, avg_talk=200.0, avg_hold=42, answered=3)


def test_without_answered_calls_asterisks_talk_time_stays_and_nothing_counts(database: Database) -> None:
    stats = LiveQueues(database, clock=NOW.timestamp).queue("support", channel())
    assert (stats.avg_talk, stats.answered) == (999, 0)


def test_a_channel_without_queue_statistics_sees_an_empty_queue(database: Database) -> None:
    plain: Channel = SimulatedChannel(CallInfo("x"), NOW, CallerScript([]))
    assert LiveQueues(database, clock=NOW.timestamp).queue("support", plain) == QueueStats()


def test_the_window_must_be_positive(database: Database) -> None:
    with pytest.raises(ValueError, match="the estimate window must be positive seconds, not 0"):
        LiveQueues(database, window=0)


class LiveQueueWorld(StaticWorld):
    """The queue part live, the rest static: what the lead's LiveWorld does for queues."""

    def __init__(self, live: LiveQueues):
        super().__init__({}, {})
        self.live = live

    def queue(self, name: str, channel: Any) -> QueueStats:
        return self.live.queue(name, channel)

    def queue_joined(self, join: QueueJoin) -> None:
        self.live.queue_joined(join)

    def queue_left(self, left: QueueExit) -> None:
        self.live.queue_left(left)


FLOW = """
flow: q
start: join
steps:
  join:
    queue: support
    announce: {min_answered: 3}
"""


def call_through_the_queue(live: LiveQueues, **after: str) -> QueueChannel:
    """A call announced and queued, then the hang-up handler's session with what Asterisk left."""
    engine = Engine(build(FLOW), LiveQueueWorld(live))
    call = channel()
    assert engine.run(call, "q").handoff is not None
    call.pass_time(300)
    call.variables.update(after)
    engine.run_hangup(call, "q")
    assert live.flush(10)  # the log is written by the writer thread
    return call


def metric_lines(metrics: ServerMetrics, prefix: str) -> list[str]:
    return [line for line in metrics.render()[0].decode().splitlines() if line.startswith(prefix)]


def test_an_answered_call_is_logged_and_its_error_measured(database: Database) -> None:
    metrics = ServerMetrics()
    live = LiveQueues(database, metrics=metrics, clock=NOW.timestamp)
    for index in range(3):
        answered(live, f"old-{index}", 200.0, 10)
    call_through_the_queue(live, QUEUEWAIT="260", ANSWEREDTIME="95")
    (row, *_) = live.log.entries()
    # 4th in line, 4 agents, 200 s of talk (the log's, not Asterisk's 999): 4 * 200 / 4 = 200 s announced
    assert (row.uniqueid, row.estimate, row.said, row.wait, row.talk, row.result) == (
        "live-1", 200.0, "number", 260.0, 95.0, "answered")
    assert metric_lines(metrics, "ivrkit_wait_estimates_total") == [
        'ivrkit_wait_estimates_total{queue="support",said="number"} 1.0'
    ]
    assert metric_lines(metrics, "ivrkit_wait_estimate_error_seconds_count") == [
        'ivrkit_wait_estimate_error_seconds_count{queue="support"} 1.0'  # no _sum: the buckets go below 0
    ]
    assert 'ivrkit_wait_estimate_error_seconds_bucket{le="60.0",queue="support"} 1.0' in metric_lines(
        metrics, "ivrkit_wait_estimate_error_seconds_bucket")
    assert 'ivrkit_wait_estimate_error_seconds_bucket{le="30.0",queue="support"} 0.0' in metric_lines(
        metrics, "ivrkit_wait_estimate_error_seconds_bucket")
    assert metric_lines(metrics, "ivrkit_wait_estimate_abs_error_seconds_sum") == [
        'ivrkit_wait_estimate_abs_error_seconds_sum{queue="support"} 60.0'
    ]
    assert metric_lines(metrics, "ivrkit_wait_estimate_ratio_sum") == [
        'ivrkit_wait_estimate_ratio_sum{queue="support"} 1.3'
    ]


def test_the_safe_phrase_and_abandoned_calls_are_counted_but_not_measured(database: Database) -> None:
    metrics = ServerMetrics()
    live = LiveQueues(database, metrics=metrics, clock=NOW.timestamp)
    call_through_the_queue(live, QUEUEWAIT="300")  # no answered calls logged: the safe phrase; then abandoned
    (row,) = live.log.entries()
    assert (row.said, row.estimate, row.result) == ("safe", None, "abandoned")
    assert metric_lines(metrics, "ivrkit_wait_estimates_total") == [
        'ivrkit_wait_estimates_total{queue="support",said="safe"} 1.0'
    ]
    assert metric_lines(metrics, "ivrkit_wait_estimate_error_seconds_count") == []


def test_a_failing_store_never_reaches_the_call(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    live = LiveQueues(database, clock=NOW.timestamp)
    with database.transaction() as conn:
        conn.execute("DROP TABLE queue_waits")
    caplog.set_level(logging.WARNING)
    assert live.queue("support", channel()) == ASTERISK
    join = QueueJoin("x", "f", "support", 1, None, "safe", "position", NOW)
    live.queue_joined(join)
    live.queue_left(QueueExit("x", "f", "support", 1.0, "answered", None, NOW))
    assert live.close(10)
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        "estimate log not read, using Asterisk's figures for queue support",
        "estimate for queue support not logged",
        "wait in queue support not logged",
    ]
