"""Nothing is lost when the server dies between accepting a text and sending it, and nothing goes out twice.

A real process queues a text (and, in one case, starts sending it) and is killed with SIGKILL before any
request leaves. Then ``ivrkit serve`` starts on the same data directory with a webhook to a real local HTTP
server: it sends the message once, the link in it verifies on the admin endpoint, the metrics count it, and
SIGTERM stops the worker and closes the store.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.store.database import DATABASE_FILE
from tests.server.conftest import DESK, write_flows
from tests.server.process import ServeProcess
from tests.sms.gateway_server import GatewayServer, gateway_server

KEY = "1763712000.7/support/send_link"
NUMBER = "+4915112345678"
WAIT = 20.0

CHILD = textwrap.dedent(
    f"""
    import sys, threading
    from pathlib import Path
    from ivrkit.engine.world import TextRequest
    from ivrkit.sms.gateway import Gateway
    from ivrkit.sms.links import LinkSigner
    from ivrkit.sms.texts import OutboxTexts
    from ivrkit.sms.worker import OutboxWorker, RetryPolicy
    from ivrkit.store import SqliteOutbox, open_database

    class Stuck(Gateway):
        kind = "stuck"

        def send(self, message):
            print("sending", flush=True)
            threading.Event().wait()  # SIGKILL arrives here, before any request leaves
            return ""

    data, mode = Path(sys.argv[1]), sys.argv[2]
    outbox = SqliteOutbox(open_database(data))
    texts = OutboxTexts(outbox, LinkSigner.from_data_dir(data), 3600)
    context = {{"caller": "{NUMBER}", "flow": "support", "queue": "support", "position": 4}}
    render = lambda link: "Continue on the web: " + link
    texts.send_text(TextRequest("{NUMBER}", "{KEY}", render, "https://example.com/continue", context))
    print("queued", flush=True)
    if mode == "sending":
        OutboxWorker(outbox, Stuck(), RetryPolicy(lease=1.0)).start()
    threading.Event().wait()
    """
)


def row(data: Path) -> tuple[str, int]:
    with sqlite3.connect(data / DATABASE_FILE) as conn:
        state, attempts = conn.execute("SELECT state, attempts FROM outbox WHERE key = ?", (KEY,)).fetchone()
    conn.close()
    return state, attempts


def queue_and_die(data: Path, mode: str) -> None:
    """A process that accepts the text (and maybe starts sending it), then is killed."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(data), mode], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline() == "queued\n"
    if mode == "sending":
        assert child.stdout.readline() == "sending\n"
    child.send_signal(signal.SIGKILL)
    assert child.wait(10) == -signal.SIGKILL
    child.stdout.close()


def start_serve(tmp: Path, *args: str) -> ServeProcess:
    return ServeProcess(write_flows(tmp / "flows", desk=DESK), tmp, *args)


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    with gateway_server() as server:
        yield server


def sms_config(path: Path, gateway: GatewayServer) -> Path:
    path.write_text(f"gateway: {{webhook: {{url: '{gateway.url}', timeout: 2s}}}}\nretry: {{lease: 3s}}\n")
    return path


@pytest.mark.parametrize("mode", ["queued", "sending"])
def test_a_text_accepted_by_a_killed_process_is_sent_once_after_a_restart(
    tmp_path: Path, gateway: GatewayServer, mode: str
) -> None:
    data = tmp_path / "data"
    queue_and_die(data, mode)
    assert row(data) == (("pending", 0) if mode == "queued" else ("sending", 1))
    assert gateway.received == []

    config = sms_config(tmp_path / "sms.yaml", gateway)
    serve = start_serve(tmp_path, "--data-dir", str(data), "--sms-config", str(config))
    try:
        request = gateway.next_request(WAIT)
        sent = serve.wait_log(lambda r: r["msg"] == "text sent", WAIT)
        assert (sent["key"], sent["provider_id"]) == (KEY, "p-1")
        assert row(data) == ("sent", 1 if mode == "queued" else 2)
        assert request.headers["Idempotency-Key"] == KEY
        assert request.json()["to"] == NUMBER

        link = re.fullmatch(r"Continue on the web: https://example\.com/continue\?t=(\S+)", request.json()["text"])
        assert link is not None
        status, body = serve.get(f"/v1/links/verify?token={link.group(1)}")  # the key survived in the data dir
        assert status == 200
        assert {k: v for k, v in json.loads(body).items() if k not in ("time", "exp")} == {
            "caller": NUMBER, "flow": "support", "queue": "support", "position": 4}  # fmt: skip
        status, metrics = serve.get("/metrics")
        assert "ivrkit_sms_sent_total 1.0" in metrics.splitlines()

        serve.process.send_signal(signal.SIGTERM)
        serve.wait_log(lambda r: r["msg"] == "outbox worker stopped")
        assert serve.process.wait(10) == 0
    finally:
        serve.close()
    assert len(gateway.requests_for(KEY)) == 1


def test_without_an_sms_config_texts_go_to_the_console_and_the_log_says_so(tmp_path: Path) -> None:
    serve = start_serve(tmp_path)
    try:
        warning = serve.wait_log(lambda r: r["msg"].startswith("no SMS config"))
        assert warning["level"] == "WARNING"
        started = serve.wait_log(lambda r: r["msg"].startswith("outbox worker started"))
        assert started["msg"].endswith("texts go to console (standard output; no message reaches a phone)")
        assert (tmp_path / ".ivrkit" / DATABASE_FILE).is_file()  # the default data directory
        assert (tmp_path / ".ivrkit" / "link-key").is_file()
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(10) == 0
    finally:
        serve.close()


def test_a_broken_sms_config_stops_the_server_with_the_line_to_fix(tmp_path: Path) -> None:
    config = tmp_path / "sms.yaml"
    config.write_text("gateway:\n  webhook: {url: 'https://sms.example.com/', timeout: ten}\n")
    serve = start_serve(tmp_path, "--sms-config", str(config))
    try:
        assert serve.process.wait(20) == 1
    finally:
        serve.close()
    error = serve.logs.get(timeout=WAIT)["msg"]
    assert error.startswith("ivrkit serve: sms.yaml:2:55: error: expected a duration such as 5s, 500ms or 2m, "
                            "got 'ten'")
