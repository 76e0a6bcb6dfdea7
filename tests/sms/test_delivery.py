"""Texts through the outbox, the worker thread and the webhook gateway to a real local HTTP server."""

from __future__ import annotations

import datetime as dt
import json
import queue
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivrkit.engine.world import TextRequest
from ivrkit.flow.expressions import Template
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.sms.gateway import PermanentError, TemporaryError
from ivrkit.sms.links import LinkContext, LinkSigner
from ivrkit.sms.message import Message
from ivrkit.sms.texts import OutboxTexts
from ivrkit.sms.webhook import WebhookGateway
from ivrkit.sms.worker import FAILED, RETRY, SENT, Delivery, OutboxWorker, RetryPolicy
from ivrkit.store import SqliteOutbox, open_database
from ivrkit.store.outbox import PENDING
from tests.sms.gateway_server import Answer, GatewayServer, gateway_server

NUMBER = "+4915112345678"
FAST = RetryPolicy(max_attempts=3, first_delay=0.01, max_delay=0.05, lease=30)
WAIT = 15.0


@dataclass
class Rig:
    """A store, the texts side a call uses, a worker thread and the gateway it sends to."""

    gateway: GatewayServer
    outbox: SqliteOutbox
    signer: LinkSigner
    texts: OutboxTexts
    worker: OutboxWorker
    metrics: ServerMetrics
    deliveries: queue.Queue[Delivery]

    def queue_text(self, key: str = "1763712000.1/support/send_link", text: str = "Continue: {link}") -> str:
        at = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
        context = {"caller": NUMBER, "flow": "support", "queue": "support", "position": 7}
        request = TextRequest(NUMBER, key, lambda link: text.replace("{link}", link), "https://example.com/continue",
                              context, at)
        self.texts.send_text(request)
        return key

    def next(self) -> Delivery:
        return self.deliveries.get(timeout=WAIT)

    def counter(self, name: str) -> float:
        for family in text_string_to_metric_families(self.metrics.render()[0].decode()):
            for sample in family.samples:
                if sample.name == name:
                    return sample.value
        raise KeyError(name)


def make_rig(tmp_path: Path, gateway: GatewayServer, **webhook: object) -> Iterator[Rig]:
    with open_database(tmp_path) as db:
        outbox = SqliteOutbox(db)
        metrics = ServerMetrics()
        worker = OutboxWorker(outbox, WebhookGateway(gateway.url, **webhook), FAST, metrics=metrics,  # type: ignore[arg-type]
                              poll=60)  # only a wake (or a due retry) makes it look: proves wake works
        deliveries: queue.Queue[Delivery] = queue.Queue()
        worker.listeners.append(deliveries.put)
        signer = LinkSigner.from_data_dir(tmp_path)
        texts = OutboxTexts(outbox, signer, 3600.0, on_queued=worker.wake)
        worker.start()
        try:
            yield Rig(gateway, outbox, signer, texts, worker, metrics, deliveries)
        finally:
            assert worker.stop(10)


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    with gateway_server() as server:
        yield server


@pytest.fixture
def rig(tmp_path: Path, gateway: GatewayServer) -> Iterator[Rig]:
    yield from make_rig(tmp_path, gateway, timeout=0.5)


def test_the_message_reaches_the_gateway_with_its_key_and_a_link_that_verifies(rig: Rig) -> None:
    key = rig.queue_text()
    request = rig.gateway.next_request()
    delivery = rig.next()
    assert (delivery.outcome, delivery.provider_id) == (SENT, "p-1")
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["Idempotency-Key"] == key
    assert request.headers["Content-Type"] == "application/json"
    body = request.json()
    assert (body["to"], body["reference"]) == (NUMBER, key)
    link = re.fullmatch(r"Continue: (https://example\.com/continue\?t=(\S+))", body["text"])
    assert link is not None
    context = rig.signer.verify(link.group(2), now=dt.datetime(2026, 11, 23, 10, 30, tzinfo=dt.UTC).timestamp())
    assert context == LinkContext(NUMBER, "support", "support", 7, 1795428000, 1795428000 + 3600)
    entry = rig.outbox.get(key)
    assert entry is not None and (entry.state, entry.provider_id, entry.attempts) == ("sent", "p-1", 1)
    assert rig.counter("ivrkit_sms_sent_total") == 1


def test_a_second_request_with_the_same_key_sends_nothing_more(rig: Rig) -> None:
    key = rig.queue_text()
    assert rig.next().outcome == SENT
    rig.queue_text(key)  # the caller came back to the step
    rig.queue_text("other-key")
    assert rig.next().entry.key == "other-key"
    assert len(rig.gateway.requests_for(key)) == 1


def test_a_500_is_retried_with_the_same_key_until_it_goes_through(rig: Rig) -> None:
    rig.gateway.script(Answer(500, "upstream down"), Answer(503, "", {"Retry-After": "0"}))
    key = rig.queue_text()
    first, second, third = rig.next(), rig.next(), rig.next()
    assert (first.outcome, first.error) == (RETRY, "HTTP 500: upstream down")
    assert (second.outcome, second.error) == (RETRY, "HTTP 503")
    assert third.outcome == SENT
    assert [r.headers["Idempotency-Key"] for r in rig.gateway.received] == [key] * 3
    entry = rig.outbox.get(key)
    assert entry is not None and (entry.state, entry.attempts) == ("sent", 3)
    assert (rig.counter("ivrkit_sms_retried_total"), rig.counter("ivrkit_sms_sent_total")) == (2, 1)


def test_a_gateway_that_does_not_answer_in_time_is_retried(rig: Rig) -> None:
    rig.gateway.script(Answer(hang=True))
    key = rig.queue_text()
    first, second = rig.next(), rig.next()
    assert first.outcome == RETRY and first.error is not None and "timed out" in first.error
    assert second.outcome == SENT
    assert len(rig.gateway.requests_for(key)) == 2


def test_a_400_fails_at_once(rig: Rig) -> None:
    rig.gateway.script(Answer(400, '{"error": "invalid number"}'))
    key = rig.queue_text()
    delivery = rig.next()
    assert (delivery.outcome, delivery.error) == (FAILED, 'HTTP 400: {"error": "invalid number"}')
    entry = rig.outbox.get(key)
    assert entry is not None and (entry.state, entry.last_error) == ("failed", delivery.error)
    assert len(rig.gateway.received) == 1
    assert rig.counter("ivrkit_sms_failed_total") == 1


def test_after_the_last_attempt_the_message_fails(rig: Rig) -> None:
    rig.gateway.script(*[Answer(502, "bad gateway")] * 3)
    rig.queue_text()
    outcomes = [rig.next() for _ in range(3)]
    assert [d.outcome for d in outcomes] == [RETRY, RETRY, FAILED]
    assert outcomes[-1].error == "gave up after 3 attempts: HTTP 502: bad gateway"


def test_templates_headers_and_method_are_the_operators(tmp_path: Path, gateway: GatewayServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_TOKEN", "s3cret")
    headers = {"Authorization": Template.compile("Bearer {{ env.SMS_TOKEN }}"),
               "Content-Type": Template.compile("application/x-www-form-urlencoded"),
               "Idempotency-Key": Template.compile("ignored: ours wins")}  # fmt: skip
    body = Template.compile("to={{ to | urlencode }}&msg={{ text | urlencode }}&try={{ attempt }}")
    for rig in make_rig(tmp_path, gateway, method="PUT", headers=headers, body=body, timeout=2.0):
        key = rig.queue_text(text="Hi & bye {link}")
        request = gateway.next_request()
        assert rig.next().outcome == SENT
    assert request.method == "PUT"
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Idempotency-Key"] == key
    assert request.body.decode().startswith("to=%2B4915112345678&msg=Hi%20%26%20bye%20https%3A//example.com/")
    assert request.body.decode().endswith("&try=1")


MESSAGE = Message("k-1", NUMBER, "hello", 1, 1)


def test_answers_are_sorted_into_temporary_and_permanent(gateway: GatewayServer) -> None:
    webhook = WebhookGateway(gateway.url, timeout=2.0)
    gateway.script(Answer(429, "slow down", {"Retry-After": "120"}), Answer(404, "no such API"),
                   Answer(302, "", {"Location": "https://elsewhere.example/"}), Answer(202, "not json"),
                   Answer(201, json.dumps({"message_id": 7})))  # fmt: skip
    with pytest.raises(TemporaryError) as limited:
        webhook.send(MESSAGE)
    assert (str(limited.value), limited.value.retry_after) == ("HTTP 429: slow down", 120.0)
    with pytest.raises(PermanentError, match=r"^HTTP 404: no such API$"):
        webhook.send(MESSAGE)
    with pytest.raises(PermanentError, match=r"redirect to https://elsewhere.example/: put the final URL in the SMS"):
        webhook.send(MESSAGE)
    assert webhook.send(MESSAGE) == "k-1"  # no id in the answer: our key identifies it
    assert WebhookGateway(gateway.url, id_field="message_id").send(MESSAGE) == "7"


def test_a_gateway_nobody_listens_on_is_temporary() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TemporaryError, match=f"^http://127.0.0.1:{port}/sms not reached: .*refused"):
        WebhookGateway(f"http://127.0.0.1:{port}/sms", timeout=2.0).send(MESSAGE)


def test_a_stopped_worker_leaves_new_messages_for_the_next_start(rig: Rig) -> None:
    assert rig.worker.stop(10) and not rig.worker.running
    rig.queue_text("after-stop")
    entry = rig.outbox.get("after-stop")
    assert entry is not None and entry.state == PENDING
    rig.worker.start()
    assert rig.next().outcome == SENT


def test_a_header_that_would_break_the_request_fails_the_message(gateway: GatewayServer) -> None:
    webhook = WebhookGateway(gateway.url, headers={"X-Text": Template.compile("{{ text }}")})
    with pytest.raises(PermanentError, match=r"^the request cannot be sent: Invalid header value"):
        webhook.send(Message("k-1", NUMBER, "hello\r\nX-Injected: 1"))
    assert gateway.received == []
