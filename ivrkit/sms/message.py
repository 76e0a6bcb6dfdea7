"""The message a gateway sends: one text to one number, with the key that makes re-sending harmless."""

from __future__ import annotations

from dataclasses import dataclass

from ivrkit.store.outbox import OutboxEntry


@dataclass(frozen=True)
class Message:
    """A text to send. ``key`` is the idempotency key: gateways pass it on (the webhook as the
    ``Idempotency-Key`` header) so a provider can drop a retry of a message it already accepted."""

    key: str
    to: str
    text: str
    attempt: int = 1  # 1 for the first try
    id: int | None = None  # the outbox row

    @classmethod
    def from_entry(cls, entry: OutboxEntry) -> Message:
        return cls(entry.key, entry.recipient, entry.body, entry.attempts, entry.id)
