"""An AMI connection that comes back by itself: the callback dispatcher's link to Asterisk.

An :class:`~ivrkit.ami.client.AmiClient` is one TCP connection and ends with it. :class:`AmiSession` keeps one
logged in: a thread of its own connects and logs in, retries with back-off (1 s doubling to 30 s) while
Asterisk is down or refuses the login, pings now and then so a peer that went silent (a half-open TCP
connection, a frozen Asterisk) is noticed, and connects again when the connection goes.

What a user of the session relies on:

- listeners added once hear the events of every connection (on its reader thread: be quick, never send);
- ``on_connected`` hooks run after every login, first one included, before anything else is sent on that
  connection by the session: where the dispatcher asks Asterisk what became of calls in flight, because
  events sent while the session was down are lost for good;
- :meth:`AmiSession.send` raises :class:`~ivrkit.ami.client.AmiConnectionLost` at once while down, never
  queues the action to send it later (a re-sent ``Originate`` would dial twice); ``generation=`` refuses to
  send on a connection other than the one the caller checked its state against;
- :meth:`AmiSession.stop` logs off and ends the thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

from ivrkit.ami.client import (
    AmiAuthenticationError,
    AmiClient,
    AmiConnectionLost,
    AmiError,
    AmiTimeout,
    HeaderValue,
    Listener,
    Message,
    subscribe,
)

log = logging.getLogger("ivrkit.ami")

MIN_DELAY = 1.0  # seconds before the first reconnect
MAX_DELAY = 30.0
PING_INTERVAL = 20.0  # seconds of a quiet connection between two pings
PING_TIMEOUT = 10.0

ConnectedHook = Callable[[int], None]
"""Called with the connection's generation (1 for the first connection, then 2, 3...)."""


def backoff_delays(first: float = MIN_DELAY, longest: float = MAX_DELAY) -> Iterator[float]:
    """The waits between connection attempts: ``first``, doubling, then ``longest`` for ever.

    >>> delays = backoff_delays(1, 30)
    >>> [next(delays) for _ in range(7)]
    [1, 2, 4, 8, 16, 30, 30]
    """
    delay = first
    while True:
        yield min(delay, longest)
        delay = min(delay * 2, longest)


class AmiSession:
    """A logged-in AMI connection kept up by a thread of its own; see the module docstring.

    ::

        session = AmiSession("127.0.0.1", 5038, "ivrkit", secret)
        session.add_listener(lambda event: ...)
        session.on_connected(lambda generation: ...)
        session.start()
        session.wait_connected(10)
        session.send("Ping")
        session.stop()
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        timeout: float = 10.0,
        min_delay: float = MIN_DELAY,
        max_delay: float = MAX_DELAY,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
        name: str = "ami",
    ) -> None:
        if min_delay <= 0 or max_delay < min_delay:
            raise ValueError(f"reconnect delays must be 0 < min_delay <= max_delay, got {min_delay}, {max_delay}")
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.timeout = timeout
        """Default deadline (seconds) for responses, and for connecting and logging in."""
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.name = name
        self.last_error: str | None = None
        """Why the latest connection attempt failed or the latest connection ended (None: none yet)."""
        self.delays: list[float] = []
        """The waits before reconnecting so far (the latest 100), for the logs and tests."""
        self._client: AmiClient | None = None
        self._generation = 0
        self._lock = threading.Lock()
        self._up = threading.Condition(self._lock)  # notified when a connection comes up or the session stops
        self._stopping = threading.Event()
        self._listeners: list[Listener] = []
        self._hooks: list[ConnectedHook] = []
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "connected" if self.connected else "down"
        return f"AmiSession({self.username}@{self.host}:{self.port}, {state}, generation {self._generation})"

    # -- subscribing -------------------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Hear every event of every connection from now on; returns a remover."""
        return subscribe(self._lock, self._listeners, listener)

    def on_connected(self, hook: ConnectedHook) -> Callable[[], None]:
        """Run ``hook(generation)`` on the session's thread after each login; returns a remover.

        Listeners already hear the new connection's events when it runs. A hook may send; one that raises is
        logged and the connection stays up.
        """
        return subscribe(self._lock, self._hooks, hook)

    # -- state -------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.connected

    @property
    def generation(self) -> int:
        """The number of the current (or latest) connection: 0 before the first login, then 1, 2..."""
        return self._generation

    def wait_connected(self, timeout: float) -> bool:
        """Block until a connection is up (or ``timeout`` passes, or the session stops); True when up."""
        with self._up:
            return self._up.wait_for(lambda: self.connected or self._stopping.is_set(), timeout) and self.connected

    # -- actions -----------------------------------------------------------------------------------------

    def send(
        self, action: str, /, *, timeout: float | None = None, generation: int | None = None, **headers: HeaderValue
    ) -> Message:
        """:meth:`AmiClient.send` on the current connection; :class:`AmiConnectionLost` while down."""
        return self.send_action(action, headers, timeout=timeout, generation=generation)

    def send_list(
        self, action: str, /, *, timeout: float | None = None, generation: int | None = None, **headers: HeaderValue
    ) -> Message:
        """:meth:`AmiClient.send_list` on the current connection; :class:`AmiConnectionLost` while down."""
        return self.send_action(action, headers, timeout=timeout, generation=generation, collect_list=True)

    def send_action(
        self,
        action: str,
        headers: Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]] = (),
        *,
        timeout: float | None = None,
        generation: int | None = None,
        collect_list: bool = False,
    ) -> Message:
        """Send on the current connection. With ``generation``, only on that connection: a caller that looked
        at Asterisk's state on connection 3 must not act on connection 4 before it looked again."""
        with self._lock:
            client, current = self._client, self._generation
        if client is None or not client.connected:
            reason = f" ({self.last_error})" if self.last_error else ""
            raise AmiConnectionLost(
                f"cannot send AMI action {action!r}: not connected to {self.host}:{self.port}{reason};"
                " the session is reconnecting"
            )
        if generation is not None and generation != current:
            raise AmiConnectionLost(
                f"cannot send AMI action {action!r}: connection {generation} is gone (now {current})"
            )
        return client.send_action(
            action, headers, timeout=self.timeout if timeout is None else timeout, collect_list=collect_list
        )

    # -- lifetime ----------------------------------------------------------------------------------------

    def start(self) -> AmiSession:
        """Start connecting in the background; returns at once (see :meth:`wait_connected`)."""
        if self._thread is not None:
            raise RuntimeError("this AMI session is already started; create another AmiSession")
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-session", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Log off, close the connection and end the session's thread. Final; safe to call twice."""
        self._stopping.set()
        with self._up:
            client = self._client
            self._up.notify_all()
        if client is not None:
            client.close(timeout=min(timeout, 2.0))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def drop(self) -> None:
        """Close the current connection as if the network had dropped it; the session connects again."""
        client = self._client
        if client is not None:
            client.close(timeout=1.0)

    def __enter__(self) -> AmiSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the session's thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        delays = backoff_delays(self.min_delay, self.max_delay)
        first = True
        while not self._stopping.is_set():
            if not first:
                delay = next(delays)
                self.delays = [*self.delays[-99:], delay]
                log.info("reconnecting to AMI at %s:%s in %g s", self.host, self.port, delay,
                         extra={"delay": delay})  # fmt: skip
                if self._stopping.wait(delay):
                    break
            first = False
            client = self._connect()
            if client is None:
                continue
            delays = backoff_delays(self.min_delay, self.max_delay)  # a good login starts the back-off over
            self._serve(client)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close(timeout=1.0)

    def _connect(self) -> AmiClient | None:
        """A logged-in client whose events reach the listeners, or None (why: ``last_error``, logged)."""
        client = AmiClient(timeout=self.timeout)
        client.add_listener(self._deliver)
        try:
            client.connect(self.host, self.port, timeout=self.timeout)
            client.login(self.username, self._secret)
        except AmiAuthenticationError as error:
            client.close(timeout=1.0)
            self.last_error = str(error)
            log.error("%s", error)
            return None
        except AmiError as error:
            client.close(timeout=1.0)
            self.last_error = str(error)
            log.warning("AMI connection failed: %s", error)
            return None
        with self._up:
            if self._stopping.is_set():
                client.close(timeout=1.0)
                return None
            self._client = client
            self._generation += 1
            self.last_error = None
            generation = self._generation
            hooks = list(self._hooks)
            self._up.notify_all()
        log.info("AMI connected to %s:%s as %s (%s), connection %d", self.host, self.port, self.username,
                 client.banner, generation, extra={"generation": generation})  # fmt: skip
        for hook in hooks:
            try:
                hook(generation)
            except Exception:
                log.exception("AMI on_connected hook %r failed", hook)
        return client

    def _serve(self, client: AmiClient) -> None:
        """Until the connection goes: ping it when it has been quiet, so a silent peer is noticed."""
        while not client.wait_closed(self.ping_interval):
            if self._stopping.is_set():
                return
            try:
                client.send("Ping", timeout=self.ping_timeout)
            except AmiTimeout:
                log.warning("AMI at %s:%s did not answer a Ping within %g s; connecting again", self.host,
                            self.port, self.ping_timeout)  # fmt: skip
                client.close(timeout=0.1)  # a Logoff would go unanswered too
            except AmiError:
                continue  # the connection went; wait_closed says so
        if not self._stopping.is_set():
            self.last_error = client.lost_reason or "the AMI connection ended"
            log.warning("AMI connection %d to %s:%s lost: %s", self._generation, self.host, self.port,
                        self.last_error, extra={"generation": self._generation})  # fmt: skip
        with contextlib.suppress(AmiError):
            client.close(timeout=1.0)

    def _deliver(self, event: Message) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("AMI session listener %r failed on %s", listener, event.summary())
