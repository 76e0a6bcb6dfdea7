"""The live world's texts (sign, render, queue) and the development sinks."""

from __future__ import annotations

import io
import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.engine.world import SentText, TextNotQueued, TextRequest
from ivrkit.sms.links import LinkSigner
from ivrkit.sms.message import Message
from ivrkit.sms.sinks import ConsoleSink, FileSink
from ivrkit.sms.texts import MAX_TEXT_LENGTH, OutboxTexts
from ivrkit.store import SqliteOutbox, open_database
from ivrkit.store.outbox import Enqueued

T0 = 1_795_428_000.0
SIGNER = LinkSigner(b"t" * 32)
NUMBER = "+4915112345678"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SqliteOutbox]:
    with open_database(tmp_path) as db:
        yield SqliteOutbox(db)


def request(key: str = "u1/support/send_link", text: str = "Go: {link}",
            link: str | None = "https://x.example/c?a=1") -> TextRequest:
    context = {"caller": NUMBER, "flow": "support", "queue": None, "position": None}
    return TextRequest(NUMBER, key, lambda url: text.replace("{link}", url), link, context)


def test_the_text_is_queued_with_a_signed_link_and_the_worker_is_woken(outbox: SqliteOutbox) -> None:
    woken: list[bool] = []
    texts = OutboxTexts(outbox, SIGNER, 600, on_queued=lambda: woken.append(True), clock=lambda: T0)
    sent = texts.send_text(request())
    assert sent.link.startswith("https://x.example/c?a=1&t=") and sent.text == f"Go: {sent.link}"
    assert SIGNER.verify(sent.link.split("&t=")[1], now=T0).exp == T0 + 600
    entry = outbox.get("u1/support/send_link")
    assert entry is not None and (entry.recipient, entry.body, entry.state) == (NUMBER, sent.text, "pending")
    again = texts.send_text(request(text="Something else {link}"))
    assert again == SentText(NUMBER, sent.text, "", "u1/support/send_link", new=False)
    assert woken == [True]  # only a new message needs the worker


def test_without_a_link_nothing_is_signed(outbox: SqliteOutbox) -> None:
    sent = OutboxTexts(outbox, SIGNER, 600).send_text(request(text="We will call you back.", link=None))
    assert (sent.text, sent.link) == ("We will call you back.", "")


def test_an_overlong_text_is_a_flow_mistake(outbox: SqliteOutbox) -> None:
    with pytest.raises(ValueError, match=f"more than {MAX_TEXT_LENGTH}: shorten it"):
        OutboxTexts(outbox, SIGNER, 600).send_text(request(text="x" * (MAX_TEXT_LENGTH + 1)))


class FullDisk(SqliteOutbox):
    def enqueue(self, key: str, recipient: str, body: str, *, now: float | None = None) -> Enqueued:
        raise sqlite3.OperationalError("database or disk is full")


def test_a_store_that_fails_means_no_text_for_this_caller(outbox: SqliteOutbox) -> None:
    with pytest.raises(TextNotQueued, match="the outbox is not writable: database or disk is full"):
        OutboxTexts(FullDisk(outbox.database), SIGNER, 600).send_text(request())


def test_the_file_sink_appends_json_lines_readable_by_the_owner_only(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "out" / "sms.jsonl")
    assert sink.send(Message("k1", NUMBER, "first")) == "k1"
    sink.send(Message("k2", NUMBER, "zweite Nachricht ü"))
    lines = [json.loads(line) for line in (tmp_path / "out" / "sms.jsonl").read_text().splitlines()]
    assert [(r["key"], r["to"], r["text"]) for r in lines] == [("k1", NUMBER, "first"),
                                                               ("k2", NUMBER, "zweite Nachricht ü")]
    assert stat.S_IMODE((tmp_path / "out" / "sms.jsonl").stat().st_mode) == 0o600


def test_the_console_sink_prints_the_message() -> None:
    stream = io.StringIO()
    assert ConsoleSink(stream).send(Message("k1", NUMBER, "hello")) == "k1"
    assert stream.getvalue() == f"SMS to {NUMBER} [k1]: hello\n"
