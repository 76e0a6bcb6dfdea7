"""Server metrics: what the lead's server records shows up, with the right values, in the Prometheus text."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivrkit.callbacks.model import NewCallback, Origin, Result, State
from ivrkit.ops import metrics as metrics_module
from ivrkit.ops.metrics import COMMAND_BUCKETS, ServerMetrics
from ivrkit.store import CallbackSummary, SqliteCallbacks, open_database


def samples(metrics: ServerMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for s in family.samples
    }


def value(metrics: ServerMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def test_render_gives_prometheus_text_and_its_content_type() -> None:
    body, content_type = ServerMetrics().render()
    assert content_type.startswith("text/plain; version=")
    assert b"# TYPE ivrkit_agi_command_seconds histogram" in body
    assert b"# TYPE ivrkit_sessions_total counter" in body


def test_sessions_active_started_outcomes_and_duration() -> None:
    m = ServerMetrics()
    m.session_started("support")
    m.session_started("support")
    m.session_started("billing")
    m.session_ended("support", "queue", 12.5)
    assert value(m, "ivrkit_sessions_active") == 2
    assert value(m, "ivrkit_sessions_total", flow="support") == 2
    assert value(m, "ivrkit_sessions_total", flow="billing") == 1
    assert value(m, "ivrkit_session_outcomes_total", flow="support", outcome="queue") == 1
    assert value(m, "ivrkit_session_outcomes_total", flow="billing", outcome="queue") is None
    assert value(m, "ivrkit_session_duration_seconds_count") == 1
    assert value(m, "ivrkit_session_duration_seconds_sum") == 12.5
    assert value(m, "ivrkit_session_duration_seconds_bucket", le="10.0") == 0
    assert value(m, "ivrkit_session_duration_seconds_bucket", le="20.0") == 1


def test_command_round_trips_by_verb_in_the_documented_buckets() -> None:
    m = ServerMetrics()
    m.command("STREAM FILE", 0.02)
    m.command("STREAM FILE", 3.0)
    m.command("GET VARIABLE", 0.0004)
    s = samples(m)
    buckets = sorted(
        float(dict(labels)["le"])
        for (name, labels), _ in s.items()
        if name == "ivrkit_agi_command_seconds_bucket" and dict(labels)["command"] == "STREAM FILE"
    )
    assert buckets == [*COMMAND_BUCKETS, float("inf")]
    assert value(m, "ivrkit_agi_command_seconds_count", command="STREAM FILE") == 2
    assert value(m, "ivrkit_agi_command_seconds_sum", command="STREAM FILE") == pytest.approx(3.02)
    assert value(m, "ivrkit_agi_command_seconds_bucket", command="STREAM FILE", le="0.025") == 1
    assert value(m, "ivrkit_agi_command_seconds_bucket", command="STREAM FILE", le="5.0") == 2
    assert value(m, "ivrkit_agi_command_seconds_bucket", command="GET VARIABLE", le="0.0005") == 1


def test_unknown_verbs_are_counted_as_other_and_spellings_fold_into_the_verb() -> None:
    m = ServerMetrics()
    m.command("FROBNICATE", 0.001)
    m.command("launch missiles\nnow", 0.001)
    m.command("stream  file", 0.001)
    m.command("STREAM FILE welcome 0123", 0.001)
    commands = {dict(labels)["command"] for (name, labels) in samples(m) if name == "ivrkit_agi_command_seconds_count"}
    assert commands == {"OTHER", "STREAM FILE"}
    assert value(m, "ivrkit_agi_command_seconds_count", command="OTHER") == 2
    assert value(m, "ivrkit_agi_command_seconds_count", command="STREAM FILE") == 2


def test_errors_are_exported_at_zero_before_they_happen() -> None:
    m = ServerMetrics()
    assert value(m, "ivrkit_errors_total", kind="crash") == 0
    m.error("timeout")
    m.error("timeout")
    m.error("refused-capacity")
    assert value(m, "ivrkit_errors_total", kind="timeout") == 2
    assert value(m, "ivrkit_errors_total", kind="refused-capacity") == 1
    assert value(m, "ivrkit_errors_total", kind="crash") == 0


def test_flow_loads_set_the_gauges_and_count_by_result() -> None:
    m = ServerMetrics()
    m.flows_loaded(2, True)
    assert (value(m, "ivrkit_flows_loaded"), value(m, "ivrkit_flow_reload_ok")) == (2, 1)
    m.flows_loaded(2, False)
    m.flows_loaded(3, False)
    assert (value(m, "ivrkit_flows_loaded"), value(m, "ivrkit_flow_reload_ok")) == (3, 0)
    assert value(m, "ivrkit_flow_reloads_total", result="ok") == 1
    assert value(m, "ivrkit_flow_reloads_total", result="failed") == 2


def test_each_instance_counts_on_its_own() -> None:
    a, b = ServerMetrics(), ServerMetrics()
    a.session_started("support")
    a.command("NOOP", 0.001)
    assert value(a, "ivrkit_sessions_total", flow="support") == 1
    assert value(b, "ivrkit_sessions_total", flow="support") is None
    assert value(b, "ivrkit_agi_command_seconds_count", command="NOOP") is None


def test_label_values_from_the_network_cannot_grow_the_series_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "MAX_SERIES", 5)
    m = ServerMetrics()
    for i in range(20):
        m.session_started(f"flow{i}")
    flows = {dict(labels)["flow"]: v for (name, labels), v in samples(m).items() if name == "ivrkit_sessions_total"}
    assert len(flows) == 6
    assert flows["other"] == 15
    assert flows["flow0"] == 1


# -- callbacks --------------------------------------------------------------------------------------


def test_callback_attempts_are_counted_by_result_and_exported_at_zero_before_they_happen() -> None:
    m = ServerMetrics()
    for result in Result:
        assert value(m, "ivrkit_callback_attempts_total", result=result.value) == 0
    m.callback_attempt(Result.BUSY)
    m.callback_attempt(Result.BUSY)
    m.callback_attempt("no-answer")
    assert value(m, "ivrkit_callback_attempts_total", result="busy") == 2
    assert value(m, "ivrkit_callback_attempts_total", result="no-answer") == 1
    assert value(m, "ivrkit_callback_attempts_total", result="answered") == 0


def test_callback_gauges_are_absent_without_a_source() -> None:
    names = {name for name, _ in samples(ServerMetrics())}
    assert "ivrkit_callbacks" not in names
    assert "ivrkit_callback_oldest_pending_seconds" not in names


def test_callback_gauges_are_read_from_the_source_at_every_scrape() -> None:
    m = ServerMetrics()
    reads: list[int] = []
    summary = CallbackSummary({State.PENDING: 3, State.DIALING: 1}, 95.5)

    def source() -> CallbackSummary:
        reads.append(1)
        return summary

    m.watch_callbacks(source)
    assert value(m, "ivrkit_callbacks", state="pending") == 3
    assert value(m, "ivrkit_callbacks", state="dialing") == 1
    assert value(m, "ivrkit_callbacks", state="failed") == 0  # every state, missing ones at 0
    assert value(m, "ivrkit_callback_oldest_pending_seconds") == 95.5
    summary = CallbackSummary(dict.fromkeys(State, 0), None)
    m.callbacks_changed()
    assert value(m, "ivrkit_callbacks", state="pending") == 0
    assert value(m, "ivrkit_callback_oldest_pending_seconds") == 0  # none pending
    assert len(reads) == 6  # no caching: each scrape (here each value()) reads the store
    m.watch_callbacks(None)
    assert value(m, "ivrkit_callbacks", state="pending") is None


def test_a_failing_callback_source_leaves_the_gauges_out_and_the_rest_in(caplog: pytest.LogCaptureFixture) -> None:
    m = ServerMetrics()
    m.session_started("support")

    def broken() -> CallbackSummary:
        raise sqlite3.OperationalError("database is locked")

    m.watch_callbacks(broken)
    with caplog.at_level(logging.WARNING, logger="ivrkit.metrics"):
        s = samples(m)
    assert ("ivrkit_sessions_total", frozenset({("flow", "support")})) in s
    assert not any(name.startswith("ivrkit_callbacks") for name, _ in s)
    assert "callback metrics not read from the store: database is locked" in caplog.text


def test_callback_gauges_follow_a_real_store(tmp_path: Path) -> None:
    with open_database(tmp_path) as database:
        store = SqliteCallbacks(database, clock=lambda: 1_000.0)
        m = ServerMetrics()
        m.watch_callbacks(lambda: store.summary(1_100.0))
        assert value(m, "ivrkit_callbacks", state="pending") == 0
        for index, at in enumerate((1_000.0, 1_040.0)):
            store.request(NewCallback(f"+49301234{index}", "support", "support", Origin.REQUEST, at, at))
        first = store.list(limit=10)[-1]
        store.cancel(first.id, by="ops")
        assert value(m, "ivrkit_callbacks", state="pending") == 1
        assert value(m, "ivrkit_callbacks", state="cancelled") == 1
        assert value(m, "ivrkit_callback_oldest_pending_seconds") == 60


def test_session_length_is_exported_at_zero_before_the_first_session() -> None:
    m = ServerMetrics()
    assert value(m, "ivrkit_session_duration_seconds_count") == 0
    assert value(m, "ivrkit_session_duration_seconds_bucket", le="+Inf") == 0
    assert value(m, "ivrkit_agi_command_seconds_count", command="ANSWER") is None  # verbs appear when used


def test_a_round_trip_on_a_bucket_bound_counts_in_that_bucket() -> None:
    m = ServerMetrics()
    m.command("ANSWER", 0.001)
    assert value(m, "ivrkit_agi_command_seconds_bucket", command="ANSWER", le="0.0005") == 0
    assert value(m, "ivrkit_agi_command_seconds_bucket", command="ANSWER", le="0.001") == 1
    assert value(m, "ivrkit_agi_command_seconds_bucket", command="ANSWER", le="+Inf") == 1
