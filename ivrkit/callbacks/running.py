"""The dispatcher as a running part: the one-per-data-directory lock, the AMI session and the dispatcher
thread, started and stopped together. ``ivrkit serve`` (with ``--ami``) and ``ivrkit dispatcher`` both run
one of these, so the two cannot drift apart.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ivrkit.ami.session import AmiSession
from ivrkit.callbacks.dispatcher import Dispatcher, DispatcherLock, DispatchMetrics
from ivrkit.store.callbacks import CallbackStore

if TYPE_CHECKING:
    from ivrkit.flow.model import Flow

log = logging.getLogger("ivrkit.dispatcher")

SECRET_ENV = "IVRKIT_AMI_SECRET"


@dataclass(frozen=True)
class AmiSettings:
    host: str
    port: int
    username: str
    secret: str = ""  # never logged

    def __repr__(self) -> str:
        return f"AmiSettings({self.host}:{self.port} as {self.username})"

    @classmethod
    def parse(cls, address: str, username: str, secret_file: Path | None) -> AmiSettings:
        """From ``HOST:PORT``, the user, and the secret from ``secret_file`` or ``$IVRKIT_AMI_SECRET``;
        ValueError says what is wrong and what to pass instead."""
        host, port = parse_address(address)
        return cls(host, port, username, read_secret(secret_file))


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:5038`` for IPv6) → (host, port); ValueError says what is expected.

    >>> parse_address("127.0.0.1:5038"), parse_address("[::1]:5039"), parse_address("pbx")
    (('127.0.0.1', 5038), ('::1', 5039), ('pbx', 5038))
    """
    host, port = text, "5038"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--ami {text!r} is not HOST:PORT, e.g. 127.0.0.1:5038")
    return host, int(port)


def read_secret(secret_file: Path | None) -> str:
    if secret_file is not None:
        try:
            secret = secret_file.read_text().strip()
        except OSError as error:
            raise ValueError(f"cannot read the AMI secret from {secret_file}: {error.strerror}") from None
        if not secret:
            raise ValueError(f"the AMI secret file {secret_file} is empty")
        return secret
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise ValueError(
            f"no AMI secret: set ${SECRET_ENV} or pass --ami-secret-file (the `secret` of the user's section in "
            "manager.conf)"
        )
    return secret


class CallbackDispatch:
    """Lock, AMI session and dispatcher. :meth:`start` raises
    :class:`~ivrkit.callbacks.dispatcher.DispatcherLocked` when another dispatcher serves the data directory."""

    def __init__(
        self,
        data_dir: Path,
        store: CallbackStore,
        flows: Callable[[], Mapping[str, Flow]],
        ami: AmiSettings,
        *,
        maintenance: Callable[[str], str | None] = lambda flow: None,
        metrics: DispatchMetrics | None = None,
        poll: float = 1.0,
        clock: Callable[[], float] = time.time,
    ):
        self.ami = ami
        self.lock = DispatcherLock(data_dir)
        self.session = AmiSession(ami.host, ami.port, ami.username, ami.secret, name="dispatcher-ami")
        self.dispatcher = Dispatcher(
            store, flows, self.session, clock=clock, maintenance=maintenance, metrics=metrics, poll=poll
        )

    def start(self) -> None:
        self.lock.acquire()
        log.info("callback dispatcher starting: AMI %s:%d as %s", self.ami.host, self.ami.port, self.ami.username)
        self.dispatcher.start()
        self.session.start()

    def wake(self) -> None:
        self.dispatcher.wake()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop dialling; attempts in flight stay recorded for the next start. False when the dispatcher's
        thread did not end in time (then the store must stay open)."""
        stopped = self.dispatcher.stop(timeout)
        self.session.stop()
        self.lock.release()
        return stopped
