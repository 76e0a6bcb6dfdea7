"""Asterisk Manager Interface (AMI): a small thread-based client.

Used by the test harness (a real Asterisk in :mod:`ivrkit.qa.asterisk`) and, later, by the callback dispatcher.
"""

from ivrkit.ami.client import (
    AmiAuthenticationError,
    AmiClient,
    AmiConnectionLost,
    AmiError,
    AmiTimeout,
    ConnectionState,
    EventCursor,
    Message,
)

__all__ = [
    "AmiAuthenticationError",
    "AmiClient",
    "AmiConnectionLost",
    "AmiError",
    "AmiTimeout",
    "ConnectionState",
    "EventCursor",
    "Message",
]
