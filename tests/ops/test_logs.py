"""Structured logs: one line per record, tagged with the call in force in the logging thread, never forgeable."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ivrkit.engine.journal import Journal
from ivrkit.ops import logs

log = logging.getLogger("ivrkit.agi")


@pytest.fixture(autouse=True)
def restore_ivrkit_logger() -> Iterator[None]:
    """configure() changes the `ivrkit` logger for the process; put it back for the other tests."""
    logger = logging.getLogger("ivrkit")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def configured(format: str, level: str = "info") -> io.StringIO:
    out = io.StringIO()
    logs.configure(format, level, stream=out)
    return out


def json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_line_has_time_level_logger_message_call_fields_and_extras() -> None:
    out = configured("json")
    with logs.call_context("1712345678.42", "support", where=lambda: ("support", "main_menu")):
        log.info("session ended", extra={"outcome": "queue", "commands": 12})
    [line] = json_lines(out)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("ts"))
    assert line == {
        "level": "INFO",
        "logger": "ivrkit.agi",
        "msg": "session ended",
        "uniqueid": "1712345678.42",
        "flow": "support",
        "step": "main_menu",
        "outcome": "queue",
        "commands": 12,
    }


def test_json_outside_a_call_has_no_call_fields_and_odd_values_are_strings() -> None:
    out = configured("json")

    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    log.warning("reload %s", "failed", extra={"thing": Opaque(), "level": 3})
    [line] = json_lines(out)
    assert line["msg"] == "reload failed"
    assert line["level"] == "WARNING"
    assert line["thing"] == "opaque!"
    assert line["level_"] == 3  # an extra field never overwrites a core one
    assert not {"uniqueid", "flow", "step"} & line.keys()


def test_json_carries_the_exception_as_a_string() -> None:
    out = configured("json")
    try:
        raise RuntimeError("engine fell over")
    except RuntimeError:
        log.exception("session crashed")
    [line] = json_lines(out)
    assert line["msg"] == "session crashed"
    assert line["exc"].startswith("Traceback")
    assert "RuntimeError: engine fell over" in line["exc"]


def test_text_line_layout() -> None:
    out = configured("text")
    step: list[str | None] = [None]
    with logs.call_context("1712345678.42", "support", where=lambda: ("support", step[0])):
        log.info("session started")
        step[0] = "main_menu"
        log.info("session ended", extra={"outcome": "queue", "commands": 12})
    log.info("idle", extra={"note": "two words", "empty": ""})
    first, second, third = out.getvalue().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(stamp + r" INFO ivrkit\.agi \[1712345678\.42 support\] session started", first)
    assert re.fullmatch(
        stamp + r" INFO ivrkit\.agi \[1712345678\.42 support/main_menu\] session ended outcome=queue commands=12",
        second,
    )
    assert re.fullmatch(stamp + r' INFO ivrkit\.agi idle note="two words" empty=""', third)


def test_each_thread_logs_its_own_call_while_both_run_at_once() -> None:
    out = configured("json")
    both_inside = threading.Barrier(2, timeout=10)
    failures: list[BaseException] = []

    def session(uniqueid: str, flow: str, step: str) -> None:
        try:
            with logs.call_context(uniqueid, flow, where=lambda: (flow, step)):
                both_inside.wait()  # the other thread has set its own call by now
                log.info(f"in {uniqueid}")
                both_inside.wait()
            log.info(f"after {uniqueid}")
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [
        threading.Thread(target=session, args=("100.1", "support", "main_menu")),
        threading.Thread(target=session, args=("200.2", "billing", "account_entry")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    by_msg = {line["msg"]: line for line in json_lines(out)}
    assert {k: by_msg["in 100.1"].get(k) for k in ("uniqueid", "flow", "step")} == {
        "uniqueid": "100.1",
        "flow": "support",
        "step": "main_menu",
    }
    assert {k: by_msg["in 200.2"].get(k) for k in ("uniqueid", "flow", "step")} == {
        "uniqueid": "200.2",
        "flow": "billing",
        "step": "account_entry",
    }
    for uniqueid in ("100.1", "200.2"):
        assert "uniqueid" not in by_msg[f"after {uniqueid}"]


def test_call_context_restores_what_was_there_and_the_journal_can_move_the_call_to_another_flow() -> None:
    out = configured("json")
    with logs.call_context("1.1", "support", where=lambda: ("billing", "transfer")):
        log.info("moved")
        with logs.call_context("2.2", "other"):
            log.info("nested")
        log.info("back")
    log.info("outside")
    lines = {line["msg"]: line for line in json_lines(out)}
    assert (lines["moved"]["flow"], lines["moved"]["step"]) == ("billing", "transfer")
    assert (lines["nested"]["uniqueid"], lines["nested"]["flow"], "step" in lines["nested"]) == ("2.2", "other", False)
    assert (lines["back"]["uniqueid"], lines["back"]["flow"], lines["back"]["step"]) == ("1.1", "billing", "transfer")
    assert "uniqueid" not in lines["outside"]


FORGED = 'Bob\n2026-11-21T10:00:00.000Z INFO ivrkit.agi {"msg": "admin logged in"}\r\u2028x'


@pytest.mark.parametrize("format", ["json", "text"])
def test_newlines_from_the_network_cannot_forge_a_log_line(format: str) -> None:
    out = configured(format)
    with logs.call_context("1.1\n2", FORGED):
        log.info("caller %s", FORGED, extra={"caller": FORGED})
        try:
            raise ValueError(FORGED)
        except ValueError:
            log.exception("bad name %s", FORGED)
    text = out.getvalue()
    assert text.count("\n") == 2 and text.endswith("\n")
    assert len(text.splitlines()) == 2  # str.splitlines also splits at \r, \u2028, \x1c…
    if format == "json":
        first = json_lines(out)[0]
        assert first["msg"] == f"caller {FORGED}"
        assert first["caller"] == first["flow"] == FORGED
    else:
        assert "Bob\\n2026" in text and "\\r" in text


def test_configure_twice_does_not_duplicate_lines_and_leaves_the_root_logger_alone() -> None:
    root_handlers = logging.getLogger().handlers[:]
    first = configured("text")
    second = configured("json")
    log.info("once")
    assert first.getvalue() == ""
    assert [line["msg"] for line in json_lines(second)] == ["once"]
    assert logging.getLogger().handlers == root_handlers


def test_level_filters_and_bad_settings_say_what_is_allowed() -> None:
    out = configured("json", "warning")
    log.info("quiet")
    log.warning("loud")
    assert [line["msg"] for line in json_lines(out)] == ["loud"]
    with pytest.raises(ValueError, match="use one of json, text"):
        logs.configure("xml")
    with pytest.raises(ValueError, match="use one of debug, info, warning, error, critical"):
        logs.configure("json", "chatty")


def test_the_step_comes_from_the_calls_journal_when_a_line_is_written() -> None:
    """The session's journal is asked where the call is only when a line is written: nothing per step."""
    out = configured("json")
    journal = Journal(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with logs.call_context("1.1", "support", where=journal.where):
        log.info("before any step")
        journal.record(journal.started, "step", "support", "main_menu")
        log.info("in the menu")
        journal.record(journal.started, "step", "billing", "pay")  # a goto to another flow
        log.info("in another flow")
    assert [(line["flow"], line.get("step")) for line in json_lines(out)] == [
        ("support", None),
        ("support", "main_menu"),
        ("billing", "pay"),
    ]
