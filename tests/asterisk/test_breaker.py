"""The circuit breaker on a real Asterisk 22 and a real ``ivrkit serve``: a burst of calls trips it, the next
call hears the emergency announcement, the audit trail and the metrics show it, an operator clears it.

The calls are placed through AMI into the dialplan ``ivrkit compile`` wrote for the flow, exactly as callers
reach it; the server is a separate ``ivrkit serve`` process with its own store, read back through its admin
API and the ``ivrkit maintenance`` command, as an operator would.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivrkit.ami.client import AmiClient
from ivrkit.cli import main
from ivrkit.qa.asterisk.calls import CallDriver
from ivrkit.qa.asterisk.sandbox import QUEUES_CONF, AsteriskInstance
from tests.asterisk.conftest import wav
from tests.asterisk.test_compiled_dialplan import compile_for, install
from tests.server.process import ServeProcess

pytestmark = pytest.mark.asterisk

LIMIT = 4
SURGE = f"""
flow: surge
start: hello
maintenance:
  emergency: {{prompt: maintenance-emergency, then: hangup}}
  breaker: {{max_calls_per_minute: {LIMIT}, quiet: 1m, clear: operator}}
steps:
  hello:
    hangup: {{play: welcome, outcome: greeted}}
"""
BURST = LIMIT + 3


@pytest.fixture
def server(tmp_path: Path, asterisk: AsteriskInstance, ami: AmiClient) -> Iterator[ServeProcess]:
    """``ivrkit serve`` for the flow, and the flow's compiled dialplan pointing at it."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "surge.yaml").write_text(textwrap.dedent(SURGE))
    for prompt in ("welcome", "maintenance-emergency"):
        asterisk.install_sound(f"ivrkit/{prompt}.wav", wav(0.15), language="en")
    server = ServeProcess(flows, tmp_path)
    try:
        server.wait_log(lambda record: record["msg"].startswith("admin endpoint"))
        report = install(asterisk, compile_for(flows, f"agi://127.0.0.1:{server.port}"), ami)
        assert report.ok, report.render()
        yield server
    finally:
        server.close()
        asterisk.write_config("queues.conf", QUEUES_CONF)  # the session's other tests know only the default queue
        ami.send("QueueReload")


def history(server: ServeProcess) -> list[dict[str, Any]]:
    """The flow's audit trail from the admin API, oldest first."""
    status, body = server.get("/v1/maintenance/history?flow=surge")
    assert status == 200, body
    return list(reversed(json.loads(body)["entries"]))


def changes(server: ServeProcess) -> list[tuple[str, str, str, str | None]]:
    return [(entry["action"], entry["by"], entry["source"], entry["mode"]) for entry in history(server)]


def metric(server: ServeProcess, name: str) -> float:
    status, body = server.get("/metrics")
    assert status == 200
    found = re.search(rf'^{name}{{flow="surge"}} (\S+)$', body, re.M)
    assert found is not None, f"{name} not exported"
    return float(found.group(1))


def test_a_burst_of_calls_trips_the_breaker_and_the_next_call_hears_the_emergency(
    server: ServeProcess, call_driver: CallDriver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert any(record["msg"] == "circuit breaker watches flow surge" for record in server.seen)
    assert (metric(server, "ivrkit_breaker_tripped"), metric(server, "ivrkit_breaker_trips_total")) == (0, 0)

    burst = [call_driver.place("ivrkit-surge") for _ in range(BURST)]
    tripped = server.wait_log(lambda record: record["msg"].startswith("circuit breaker tripped"), timeout=30)
    assert tripped["flow"] == "surge" and tripped["level"] == "WARNING"
    outcomes = [call.wait(30).variables.get("IVRKIT_OUTCOME") for call in burst]
    # Each ran the flow or met the emergency, depending on whether it reached the flow's start before the trip
    # (the breaker's thread switches while the crossing call answers): in a burst this close, most meet it.
    assert set(outcomes) <= {"greeted", "maintenance-emergency"}, outcomes

    call = call_driver.place("ivrkit-surge").wait(30)
    assert call.prompts_streamed == ["en/ivrkit/maintenance-emergency"], call.describe()
    assert (call.variables["IVRKIT_OUTCOME"], call.variables["IVRKIT_RESULT"]) == ("maintenance-emergency", "hangup")

    assert changes(server) == [("tripped", "system", "breaker", "emergency")]
    [entry] = history(server)
    assert re.fullmatch(rf"{LIMIT + 1} calls started in the last minute, over the limit of {LIMIT} a minute",
                        entry["reason"]), entry  # fmt: skip
    assert (metric(server, "ivrkit_breaker_tripped"), metric(server, "ivrkit_breaker_trips_total")) == (1, 1)

    # clear: operator — it stays on until an operator switches it off; then the next call runs the flow
    data = str(tmp_path / ".ivrkit")
    assert main(["maintenance", "off", "--flow", "surge", "--by", "ops", "--reason", "surge over",
                 "--data-dir", data]) == 0, capsys.readouterr().err  # fmt: skip
    server.wait_log(lambda record: record["msg"].startswith("circuit breaker for flow surge watches again"))
    call = call_driver.place("ivrkit-surge").wait(30)
    assert call.prompts_streamed == ["en/ivrkit/welcome"], call.describe()
    assert call.variables["IVRKIT_OUTCOME"] == "greeted"
    assert changes(server) == [("tripped", "system", "breaker", "emergency"), ("cleared", "ops", "cli", "emergency")]
    assert main(["maintenance", "history", "--flow", "surge", "--data-dir", data]) == 0
    shown = capsys.readouterr().out
    assert "tripped" in shown and "system" in shown and "breaker" in shown, shown
    assert metric(server, "ivrkit_breaker_tripped") == 0
