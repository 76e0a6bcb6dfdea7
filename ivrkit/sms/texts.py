"""The live world's texts: sign the link, render the message, write it to the outbox. The gateway comes later,
in the worker thread, so a call spends one short SQLite transaction on a text and never waits for a network.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable

from ivrkit.engine.world import SentText, TextNotQueued, TextRequest, link_with_token
from ivrkit.sms.links import LinkSigner
from ivrkit.store.database import StoreError
from ivrkit.store.outbox import Outbox

log = logging.getLogger("ivrkit.sms")

MAX_TEXT_LENGTH = 1600  # ten SMS segments; longer texts are a flow mistake, not something to send


class OutboxTexts:
    """Implements ``World.send_text`` for live calls (composed into the server's world)."""

    def __init__(
        self,
        outbox: Outbox,
        signer: LinkSigner,
        link_ttl: float,
        *,
        on_queued: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.outbox = outbox
        self.signer = signer
        self.link_ttl = link_ttl
        self.on_queued = on_queued  # e.g. OutboxWorker.wake: send now rather than at the next poll
        self._clock = clock

    def send_text(self, request: TextRequest) -> SentText:
        at = request.at.timestamp() if request.at is not None else self._clock()
        link = ""
        if request.link:
            context = request.context
            position = context.get("position")
            token = self.signer.issue(
                str(context.get("caller") or request.to),
                str(context.get("flow") or ""),
                context.get("queue") or None,
                position if isinstance(position, int) and position > 0 else None,
                at,
                self.link_ttl,
            )
            link = link_with_token(request.link, token)
        text = request.render(link)
        if len(text) > MAX_TEXT_LENGTH:
            raise ValueError(f"the text is {len(text)} characters long, more than {MAX_TEXT_LENGTH}: shorten it")
        try:
            queued = self.outbox.enqueue(request.key, request.to, text)
        except (sqlite3.Error, StoreError) as error:
            log.error("cannot queue a text: %s", error, extra={"key": request.key})
            raise TextNotQueued(f"the outbox is not writable: {error}") from error
        if queued.created and self.on_queued is not None:
            self.on_queued()
        entry = queued.entry
        return SentText(entry.recipient, entry.body, link if queued.created else "", entry.key, queued.created)
