"""What every SMS gateway is: one small class whose ``send`` returns the provider's id or raises.

A provider is added by subclassing :class:`Gateway` (its ``kind``, its ``options`` as they are written in the
SMS config file, ``send``) and listing it in :data:`ivrkit.sms.settings.GATEWAYS`. ``send`` decides only
whether a failure is worth retrying (:class:`TemporaryError`) or not (:class:`PermanentError`); when to retry
and how often is the worker's business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.fields import Option
from ivrkit.sms.message import Message


class GatewayError(Exception):
    """A message was not sent; the text says why."""


class TemporaryError(GatewayError):
    """Not sent now, may work later (gateway down, slow, rate-limited): the worker retries with back-off."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after  # seconds the gateway asked us to wait (HTTP Retry-After), if any


class PermanentError(GatewayError):
    """Will never be sent as it is (refused number, bad credentials, bad request): the message fails now."""


class Gateway:
    """Sends one message. Called from the outbox worker thread only, one message at a time."""

    kind: ClassVar[str]
    summary: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}  # the gateway's settings in the SMS config file

    @classmethod
    def from_settings(cls, settings: dict[str, Any], config_dir: Path) -> Gateway:
        """Build from the parsed ``options`` (relative paths are relative to the config file's folder)."""
        return cls(**settings)

    def send(self, message: Message) -> str:
        """Send the message; return the provider's id for it. Raise TemporaryError or PermanentError."""
        raise NotImplementedError

    def check(self, diagnostics: Diagnostics) -> None:
        """Report, at their place in the config file, problems that show only when trying (a template that
        fails); called once when the server starts."""

    def describe(self) -> str:
        """One line for the start-up log: where messages go."""
        return self.kind

    def close(self) -> None:
        """Release what the gateway holds (files, connections)."""
