"""``ivrkit serve`` as operators run it: a real process, real signals, real HTTP, real files."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agi.pbx import FakePbx, Transcript, environment
from tests.server.conftest import DESK, write_flows
from tests.server.process import ServeProcess
from tests.server.test_listener import readline


class Server(ServeProcess):
    """The server with the test flows, ready once its admin endpoint listens."""

    def __init__(self, flows: Path, tmp: Path, reload_interval: float = 0.2):
        super().__init__(flows, tmp, "--reload-interval", str(reload_interval))
        self.wait_log(lambda r: r["msg"].startswith("admin endpoint"))

    def call(self, actions: list[str] | None = None) -> Transcript:
        return FakePbx("desk", ["1"] if actions is None else actions).run(
            socket.create_connection(("127.0.0.1", self.port))
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(write_flows(tmp_path / "flows", desk=DESK), tmp_path)
    yield server
    server.close()


def test_sigterm_drains_running_calls_then_exits(server: Server) -> None:
    held = socket.create_connection(("127.0.0.1", server.port))
    held.sendall(environment("desk"))
    assert readline(held) == b"ANSWER\n"
    server.process.send_signal(signal.SIGTERM)
    server.wait_log(lambda r: r["msg"].startswith("draining"))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)
    assert server.get("/healthz")[0] == 503  # load balancers stop sending calls
    assert server.process.poll() is None  # still serving the running call
    held.sendall(b"200 result=0\n")
    assert readline(held).startswith(b"STREAM FILE")
    held.close()
    assert server.process.wait(10) == 0


def test_flows_reload_on_change_and_a_broken_file_keeps_the_last_good_version(server: Server, tmp_path: Path) -> None:
    flow_file = tmp_path / "flows" / "desk.yaml"
    held = socket.create_connection(("127.0.0.1", server.port))  # a call that started on the old version
    held.sendall(environment("desk"))
    assert readline(held) == b"ANSWER\n"

    flow_file.write_text(flow_file.read_text().replace("play: welcome", "play: welcome-v2"))
    server.wait_log(lambda r: r["msg"].startswith("flows loaded"))
    assert server.call().played[0] == "en/ivrkit/welcome-v2"

    flow_file.write_text(flow_file.read_text().replace("  greeting:\n", "  greeting:\n    paly: x\n"))
    error = server.wait_log(lambda r: r["level"] == "ERROR")
    assert "desk.yaml:" in error["msg"] and "paly" in error["msg"]
    server.wait_log(lambda r: "keep their previous version" in r["msg"])
    assert server.call().played[0] == "en/ivrkit/welcome-v2"

    held.sendall(b"200 result=0\n")
    assert readline(held).startswith(b"STREAM FILE en/ivrkit/welcome ")  # the running call kept its version
    held.close()

    status, body = server.get("/healthz")
    health = json.loads(body)
    assert (status, health["last_reload_ok"], health["flows_kept_after_errors"]) == (200, False, ["desk"])


def test_sighup_reloads_now(tmp_path: Path) -> None:
    flows = write_flows(tmp_path / "flows", desk=DESK)
    server = Server(flows, tmp_path, reload_interval=0)
    try:
        (flows / "desk.yaml").write_text(DESK.replace("play: welcome", "play: hello"))
        server.process.send_signal(signal.SIGHUP)
        server.wait_log(lambda r: r["msg"].startswith("reloading flows (SIGHUP)"))
        server.wait_log(lambda r: r["msg"].startswith("flows loaded"))
        assert server.call().played[0] == "en/ivrkit/hello"
    finally:
        server.close()


def test_admin_endpoint_needs_the_token_and_reports(server: Server) -> None:
    assert server.call().variables["IVRKIT_RESULT"] == "queue"
    assert server.get("/healthz", token=None)[0] == 401
    assert server.get("/metrics", token="wrong-token-wrong-token")[0] == 401
    status, body = server.get("/healthz")
    assert status == 200 and json.loads(body)["flows"] == ["desk"]
    status, metrics = server.get("/metrics")
    assert status == 200
    assert 'ivrkit_sessions_total{flow="desk"} 1.0' in metrics
    assert 'ivrkit_session_outcomes_total{flow="desk",outcome="handoff"} 1.0' in metrics
    assert 'ivrkit_agi_command_seconds_count{command="STREAM FILE"} 2.0' in metrics


def test_every_log_line_of_a_call_carries_its_unique_id(server: Server) -> None:
    server.call()
    record = server.wait_log(lambda r: r["msg"] == "session ended")
    assert (record["uniqueid"], record["flow"], record["outcome"]) == ("1763712000.1", "desk", "handoff")
    assert record["step"] == "sales_queue"


def test_a_started_server_takes_its_start_up_heap_out_of_the_collectors_way() -> None:
    """Run in a process of its own: freezing the heap is for the whole process."""
    code = (
        "import gc; from ivrkit.server.service import GC_THRESHOLDS, _settle_heap\n"
        "before = gc.get_freeze_count(); _settle_heap()\n"
        "print(before, gc.get_freeze_count() > 10_000, gc.get_threshold() == GC_THRESHOLDS)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["0", "True", "True"]
