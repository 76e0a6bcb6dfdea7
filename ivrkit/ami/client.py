"""A small, thread-based AMI client (standard library only).

One socket, one reader thread. Actions are correlated with their responses by ``ActionID`` so several
threads may send at once; every wait has a deadline, and a lost connection fails waiting senders at once
instead of leaving them blocked. Events are kept in a bounded, numbered history so a test can take a
:meth:`AmiClient.mark`, do something, and then wait for an event that may already have arrived.

Wire format (AMI over TCP): a banner line ``Asterisk Call Manager/<version>``, then messages made of
``Key: Value`` lines ended by an empty line, all lines ended by CR LF. Keys may repeat (``Variable``,
``Output``), so a :class:`Message` keeps its headers as an ordered list of pairs.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

log = logging.getLogger(__name__)

HeaderValue = str | int | float | bool | Sequence[str] | None
"""A header value to send: a list or tuple sends the header once per item; ``None`` leaves it out."""

DEFAULT_TIMEOUT = 10.0
MAX_LINE = 1 << 20  # a longer line means the peer is not speaking AMI


class AmiError(Exception):
    """An AMI action failed (``Response: Error``) or could not be carried out."""

    def __init__(self, message: str, response: Message | None = None) -> None:
        super().__init__(message)
        self.response = response

    def response_message(self) -> str:
        """Asterisk's own words (the response's ``Message`` header), else this error's text."""
        return (self.response.get("Message") if self.response is not None else None) or str(self)


class AmiTimeout(AmiError):
    """No response (or no matching event) arrived before the deadline."""


class AmiConnectionLost(AmiError):
    """The connection to Asterisk is gone (closed, reset, or never opened)."""


class AmiAuthenticationError(AmiError):
    """Asterisk refused the login."""


class ConnectionState(enum.Enum):
    """Where the connection stands; kept so that reconnecting can be added later without guessing."""

    NEW = "new"
    CONNECTED = "connected"  # banner received, not logged in
    AUTHENTICATED = "authenticated"
    LOST = "lost"  # the peer went away or the socket failed
    CLOSED = "closed"  # close() was called


class Message:
    """One AMI message: its headers in order (repeats kept), read like a case-insensitive mapping.

    >>> m = Message([("Response", "Success"), ("Output", "a"), ("Output", "b")])
    >>> m["response"], m.get_all("Output"), m.get("Missing", "-")
    ('Success', ['a', 'b'], '-')
    """

    __slots__ = ("events", "headers")

    def __init__(self, headers: Iterable[tuple[str, str]] = (), events: list[Message] | None = None) -> None:
        self.headers: list[tuple[str, str]] = list(headers)
        self.events: list[Message] = events if events is not None else []
        """For an event-list action (:meth:`AmiClient.send_list`): the events of the list, in order."""

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str) -> str: ...
    @overload
    def get(self, key: str, default: None) -> str | None: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key`` (case-insensitive), or ``default``."""
        wanted = key.lower()
        for name, value in self.headers:
            if name.lower() == wanted:
                return value
        return default

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key``, in order (e.g. the ``Output`` lines of a ``Command``)."""
        wanted = key.lower()
        return [value for name, value in self.headers if name.lower() == wanted]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(f"AMI message has no header {key!r}: {self.summary()}")
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and self.headers == other.headers and self.events == other.events

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def is_event(self) -> bool:
        return "Event" in self

    @property
    def is_response(self) -> bool:
        return not self.is_event and "Response" in self

    @property
    def name(self) -> str:
        """The event name, or the response status (``Success``, ``Error``...)."""
        return self.get("Event") or self.get("Response") or ""

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def as_dict(self) -> dict[str, str]:
        """First value per header name; for quick reading and assertions."""
        result: dict[str, str] = {}
        for name, value in self.headers:
            result.setdefault(name, value)
        return result

    def summary(self, limit: int = 6) -> str:
        """A one-line description for error messages."""
        shown = ", ".join(f"{name}: {value}" for name, value in self.headers[:limit])
        more = f", ... ({len(self.headers) - limit} more)" if len(self.headers) > limit else ""
        return "{" + shown + more + "}"

    def __repr__(self) -> str:
        events = f", {len(self.events)} events" if self.events else ""
        return f"Message({self.summary()}{events})"


def encode_action(action: str, headers: Iterable[tuple[str, HeaderValue]]) -> bytes:
    """The wire form of an action; refuses line breaks, which would inject headers of their own.

    >>> encode_action("Originate", [("Variable", ["A=1", "B=2"]), ("Async", True), ("Account", None)])
    b'Action: Originate\\r\\nVariable: A=1\\r\\nVariable: B=2\\r\\nAsync: true\\r\\n\\r\\n'
    >>> encode_action("Setvar", [("Value", "x\\r\\nAction: Command")])
    Traceback (most recent call last):
    ...
    ValueError: AMI header 'Value' contains a line break, which would inject AMI headers; remove CR/LF from the value
    """
    lines = [_header_line("Action", action)]
    for key, value in headers:
        for item in _values(key, value):
            lines.append(_header_line(key, item))
    return ("".join(lines) + "\r\n").encode("utf-8")


def _values(key: str, value: HeaderValue) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str | int | float):
        return [str(value)]
    if isinstance(value, Sequence):
        items = list(value)
        for item in items:
            if not isinstance(item, str):
                raise TypeError(f"AMI header {key!r}: list items must be strings, got {type(item).__name__}")
        return items
    raise TypeError(f"AMI header {key!r}: unsupported value type {type(value).__name__}")


def _header_line(key: str, value: str) -> str:
    if not key or any(c in key for c in "\r\n:") or key != key.strip():
        raise ValueError(f"invalid AMI header name {key!r}: use a plain name without ':', spaces or line breaks")
    if "\r" in value or "\n" in value:
        raise ValueError(
            f"AMI header {key!r} contains a line break, which would inject AMI headers;"
            " remove CR/LF from the value"
        )
    return f"{key}: {value}\r\n"


def parse_header(line: str) -> tuple[str, str]:
    """``"Key: Value"`` → ``("Key", "Value")``; only the one space after the colon is dropped.

    >>> parse_header("Output:   indented"), parse_header("Message:"), parse_header("no colon")
    (('Output', '  indented'), ('Message', ''), ('', 'no colon'))
    """
    key, sep, value = line.partition(":")
    if not sep:
        return "", line
    return key, value[1:] if value.startswith(" ") else value


class _Pending:
    """A sent action waiting for its response (and, for list actions, its events)."""

    __slots__ = ("action", "done", "error", "events", "is_list", "listing", "response")

    def __init__(self, action: str, is_list: bool) -> None:
        self.action = action
        self.is_list = is_list
        self.listing = False  # the response said "EventList: start"; events follow
        self.response: Message | None = None
        self.events: list[Message] = []
        self.error: AmiError | None = None
        self.done = threading.Event()


Listener = Callable[[Message], None]


class AmiClient:
    """A connection to the Asterisk Manager Interface.

    Typical use::

        ami = AmiClient()
        ami.connect("127.0.0.1", 5038)
        ami.login("user", "secret")
        mark = ami.mark()
        ami.send("Originate", Channel="Local/s@ivr/n", Context="quiet", Exten="s", Priority=1, Async=True)
        ami.wait_for(lambda e: e.name == "Hangup", timeout=10, since=mark)
        ami.close()

    Listeners run on the reader thread: they must be quick and must not call :meth:`send` (that would wait
    for a response only the reader thread can deliver; it raises instead). To react to events with
    actions, consume them from another thread with :meth:`cursor`.
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, history: int = 20000) -> None:
        self.timeout = timeout
        """Default deadline (seconds) for responses."""
        self.state = ConnectionState.NEW
        self.banner: str | None = None
        self.host: str | None = None
        self.port: int | None = None
        self.username: str | None = None
        self.lost_reason: str | None = None
        self._closing = False
        self._initial = b""
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._reader_ident: int | None = None
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # new event, or the connection went away
        self._pending: dict[str, _Pending] = {}
        self._events: deque[Message] = deque(maxlen=history)
        self._next_seq = 0  # number of the next event to arrive; events[0] is number next_seq - len(events)
        self._listeners: list[Listener] = []
        self._ids = itertools.count(1)
        self._id_prefix = f"ivrkit-{os.getpid()}-{id(self) & 0xFFFFFF:x}"

    # -- connection ------------------------------------------------------------------------------------

    def connect(self, host: str, port: int, timeout: float | None = None) -> str:
        """Open the TCP connection and read the banner; returns it (e.g. ``Asterisk Call Manager/9.0.0``)."""
        if self.state is not ConnectionState.NEW:
            raise AmiError(f"this AMI client is {self.state.value}; create a new AmiClient to connect again")
        deadline = timeout if timeout is not None else self.timeout
        self.host, self.port = host, port
        try:
            sock = socket.create_connection((host, port), timeout=deadline)
        except OSError as error:
            raise AmiConnectionLost(
                f"cannot connect to AMI at {host}:{port}: {error}. Is Asterisk running with manager.conf"
                " enabled on that address and port?"
            ) from error
        try:
            banner = self._read_banner(sock)
        except (OSError, AmiError):
            sock.close()
            raise
        sock.settimeout(None)  # the reader blocks; close() wakes it with shutdown()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._sock, self.banner = sock, banner
        self.state = ConnectionState.CONNECTED
        self._reader = threading.Thread(target=self._read_loop, args=(sock,), name=f"ami-reader-{port}", daemon=True)
        self._reader.start()
        return banner

    def _read_banner(self, sock: socket.socket) -> str:
        data = b""
        try:
            while b"\n" not in data:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
                if len(data) > 4096:
                    break
        except TimeoutError as error:
            raise AmiTimeout(f"{self.host}:{self.port} accepted the connection but sent no AMI banner") from error
        line, _, rest = data.partition(b"\n")
        text = line.decode("utf-8", "replace").strip()
        if not data:
            raise AmiConnectionLost(
                f"{self.host}:{self.port} closed the connection before sending the AMI banner: Asterisk may be"
                " starting or stopping, or its manager.conf refuses this address"
            )
        if not text.startswith("Asterisk Call Manager"):
            raise AmiConnectionLost(
                f"{self.host}:{self.port} is not an Asterisk manager interface (it sent {text[:80]!r});"
                " check the AMI port in manager.conf"
            )
        self._initial = rest  # bytes after the banner belong to the first message
        return text

    def login(self, username: str, secret: str, *, events: bool = True, timeout: float | None = None) -> Message:
        """Log in with a plain secret. ``events=False`` asks Asterisk not to send events to this session."""
        self.username = username
        try:
            response = self.send(
                "Login", timeout=timeout, Username=username, Secret=secret, Events="on" if events else "off"
            )
        except (AmiConnectionLost, AmiTimeout):
            raise
        except AmiError as error:
            raise AmiAuthenticationError(
                f"AMI login as {username!r} at {self.host}:{self.port} was refused ({error.response_message()}):"
                " check the user's secret in manager.conf and its permit/deny lines for this address",
                error.response,
            ) from None
        self.state = ConnectionState.AUTHENTICATED
        return response

    def close(self, timeout: float = 2.0) -> None:
        """Log off (best effort), close the socket and stop the reader thread. Final; safe to call twice."""
        with self._lock:
            was_connected = self.connected
            self._closing = True
        if was_connected:
            with contextlib.suppress(AmiError):  # the connection is going away anyway
                self.send("Logoff", timeout=timeout)
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already disconnected
                sock.shutdown(socket.SHUT_RDWR)
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
        if sock is not None:
            sock.close()
        self._connection_gone("the AMI client was closed")

    def __enter__(self) -> AmiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending_actions(self) -> int:
        """Actions sent and still waiting for their response."""
        with self._lock:
            return len(self._pending)

    @property
    def connected(self) -> bool:
        return self.state in (ConnectionState.CONNECTED, ConnectionState.AUTHENTICATED)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the connection is gone (lost or closed) or ``timeout`` passes; True when it is gone.

        What a supervisor waits on to reconnect (:class:`ivrkit.ami.session.AmiSession`).
        """
        gone = (ConnectionState.LOST, ConnectionState.CLOSED)
        with self._changed:
            return self._changed.wait_for(lambda: self.state in gone, timeout)

    # -- actions ---------------------------------------------------------------------------------------

    def send(self, action: str, /, *, timeout: float | None = None, **headers: HeaderValue) -> Message:
        """Send an action and return its response; ``Response: Error`` raises :class:`AmiError`.

        A list or tuple value repeats the header (``Variable=["A=1", "B=2"]``). For actions whose header
        names are not Python identifiers, use :meth:`send_action`.
        """
        return self.send_action(action, headers, timeout=timeout)

    def send_list(self, action: str, /, *, timeout: float | None = None, **headers: HeaderValue) -> Message:
        """Send an event-list action (``CoreShowChannels``, ``QueueStatus``...) and collect its events.

        Returns the response with :attr:`Message.events` holding the events up to (not including) the
        ``...Complete`` event; the deadline covers the whole list.
        """
        return self.send_action(action, headers, timeout=timeout, collect_list=True)

    def send_action(
        self,
        action: str,
        headers: Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]] = (),
        *,
        timeout: float | None = None,
        collect_list: bool = False,
    ) -> Message:
        """The general form of :meth:`send` / :meth:`send_list`, with headers as a mapping or pairs."""
        if self._reader_ident is not None and threading.get_ident() == self._reader_ident:
            raise RuntimeError(
                "AmiClient.send called from an event listener: listeners run on the reader thread, which is the"
                " only one that can deliver the response. Act on events from another thread (see cursor())."
            )
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        action_id = None
        for key, value in pairs:
            if key.lower() == "actionid":
                action_id = str(value)
        if action_id is None:
            action_id = f"{self._id_prefix}-{next(self._ids)}"
            pairs.append(("ActionID", action_id))
        data = encode_action(action, pairs)  # refuses CR/LF before anything is registered
        pending = _Pending(action, collect_list)
        with self._lock:
            if not self.connected:
                raise AmiConnectionLost(self._not_connected_message(action))
            if action_id in self._pending:
                raise ValueError(f"ActionID {action_id!r} is already waiting for a response; use a unique ActionID")
            self._pending[action_id] = pending
        try:
            self._write(data)
            wait = self.timeout if timeout is None else timeout
            if not pending.done.wait(wait):
                got = (
                    "its response"
                    if pending.response is None
                    else f"the end of its event list ({len(pending.events)} events so far)"
                )
                raise AmiTimeout(
                    f"AMI action {action!r} (ActionID {action_id}) got no {got} within {wait:g} s: Asterisk runs one"
                    " action at a time per AMI session, so an earlier blocking action (e.g. Originate without"
                    " Async) may hold it; otherwise Asterisk is overloaded"
                )
        finally:
            with self._lock:
                self._pending.pop(action_id, None)
        if pending.error is not None:
            raise pending.error
        response = pending.response
        assert response is not None  # done is set only with a response or an error
        if response.get("Response", "").lower() == "error":
            raise AmiError(f"AMI action {action!r} failed: {response.get('Message', '(no message)')}", response)
        response.events = pending.events
        return response

    def _write(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise AmiConnectionLost("not connected to AMI: call connect() first")
        try:
            with self._write_lock:
                sock.sendall(data)
        except OSError as error:
            self._connection_gone(f"writing to AMI failed: {error}")
            raise AmiConnectionLost(f"the AMI connection to {self.host}:{self.port} was lost: {error}") from error

    def _not_connected_message(self, action: str) -> str:
        if self.state is ConnectionState.NEW:
            return f"cannot send AMI action {action!r}: not connected (call connect() and login() first)"
        reason = f" ({self.lost_reason})" if self.lost_reason else ""
        return f"cannot send AMI action {action!r}: the connection is {self.state.value}{reason}"

    # -- events ----------------------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event from now on (on the reader thread); returns a remover."""
        return subscribe(self._lock, self._listeners, listener)

    def mark(self) -> int:
        """A position in the event history: events arriving from now on are "since" this mark."""
        with self._lock:
            return self._next_seq

    def events_since(self, mark: int) -> list[Message]:
        """The events that arrived since ``mark`` and are still in the (bounded) history."""
        with self._lock:
            first = self._next_seq - len(self._events)
            return list(itertools.islice(self._events, max(0, mark - first), None))

    def cursor(self, since: int | None = None) -> EventCursor:
        """A reader of the event stream from ``since`` (default: now), consuming events in order."""
        return EventCursor(self, self.mark() if since is None else since)

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float, *, since: int | None = None) -> Message:
        """The first event matching ``predicate`` since ``since`` (a :meth:`mark`; default: now).

        Take the mark *before* doing what causes the event, so an event that arrives quickly is not missed.
        Raises :class:`AmiTimeout` at the deadline, :class:`AmiConnectionLost` if the connection goes away.
        """
        return self.cursor(since).wait_for(predicate, timeout)

    # -- reader thread ---------------------------------------------------------------------------------

    def _read_loop(self, sock: socket.socket) -> None:
        self._reader_ident = threading.get_ident()
        buffer = self._initial
        lines: list[tuple[str, str]] = []
        reason = "Asterisk closed the AMI connection"
        try:
            while True:
                while True:
                    end = buffer.find(b"\n")
                    if end < 0:
                        break
                    raw, buffer = buffer[:end], buffer[end + 1 :]
                    text = raw.rstrip(b"\r").decode("utf-8", "replace")
                    if text:
                        lines.append(parse_header(text))
                    elif lines:
                        self._dispatch(Message(lines))
                        lines = []
                if len(buffer) > MAX_LINE:
                    reason = f"AMI line longer than {MAX_LINE} bytes; the peer is not speaking AMI"
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
        except OSError as error:
            reason = f"AMI connection error: {error}"
        except Exception:  # a bug in dispatching must not leave senders waiting forever
            log.exception("AMI reader thread failed")
            reason = "the AMI reader thread failed (see the log)"
        self._connection_gone(reason)
        sock.close()  # nobody reads it any more; a sender gets OSError → AmiConnectionLost

    def _dispatch(self, message: Message) -> None:
        action_id = message.action_id
        if message.is_event:
            if action_id is not None and self._list_event(action_id, message):
                return
            self._publish(message)
            return
        if action_id is None:
            log.debug("AMI message without ActionID ignored: %s", message.summary())
            return
        with self._lock:
            pending = self._pending.get(action_id)
            if pending is None:
                log.debug("AMI response for an action no longer waited for: %s", message.summary())
                return
            pending.response = message
            failed = message.get("Response", "").lower() == "error"
            if pending.is_list and not failed and (message.get("EventList") or "").lower() == "start":
                pending.listing = True
                return
            pending.done.set()

    def _list_event(self, action_id: str, event: Message) -> bool:
        """Collect ``event`` into a waiting event-list action; False when it belongs to no list."""
        with self._lock:
            pending = self._pending.get(action_id)
            if pending is None or not pending.listing:
                return False
            if (event.get("EventList") or "").lower() == "complete":
                pending.done.set()
            else:
                pending.events.append(event)
            return True

    def _publish(self, event: Message) -> None:
        with self._lock:
            self._events.append(event)
            self._next_seq += 1
            self._changed.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("AMI event listener %r failed on %s", listener, event.summary())

    def _connection_gone(self, reason: str) -> None:
        """The socket is unusable: record why, and fail every sender still waiting."""
        with self._lock:
            if self.lost_reason is None:
                self.lost_reason = "the AMI client was closed" if self._closing else reason
            self.state = ConnectionState.CLOSED if self._closing else ConnectionState.LOST
            pending = list(self._pending.values())
            self._changed.notify_all()
        for entry in pending:
            if not entry.done.is_set():
                entry.error = AmiConnectionLost(f"AMI action {entry.action!r} got no response: {self.lost_reason}")
                entry.done.set()


class EventCursor:
    """Reads the client's event history in order from a position; each cursor has its own position.

    Not shared between threads: give each consumer its own cursor.
    """

    def __init__(self, client: AmiClient, position: int) -> None:
        self.client = client
        self.position = position
        self.missed = 0
        """Events that fell out of the bounded history before this cursor read them."""

    def next(self, timeout: float | None) -> Message | None:
        """The next event, waiting up to ``timeout`` seconds (``None``: no wait); ``None`` if none came.

        Raises :class:`AmiConnectionLost` once the connection is gone and every buffered event was read.
        """
        client = self.client
        deadline = None if timeout is None else time.monotonic() + timeout
        with client._changed:
            while True:
                first = client._next_seq - len(client._events)
                if self.position < first:
                    self.missed += first - self.position
                    self.position = first
                if self.position < client._next_seq:
                    event = client._events[self.position - first]
                    self.position += 1
                    return event
                if not client.connected and client.state is not ConnectionState.NEW:
                    raise AmiConnectionLost(
                        f"no more AMI events: the connection is {client.state.value}"
                        + (f" ({client.lost_reason})" if client.lost_reason else "")
                    )
                remaining = 0.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    return None
                client._changed.wait(remaining)

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float) -> Message:
        """Consume events until one matches ``predicate``; :class:`AmiTimeout` at the deadline."""
        deadline = time.monotonic() + timeout
        seen: deque[str] = deque(maxlen=5)
        while True:
            event = self.next(max(0.0, deadline - time.monotonic()))
            if event is None:
                recent = "; ".join(seen) or "none"
                raise AmiTimeout(f"no matching AMI event within {timeout:g} s (last events seen: {recent})")
            if predicate(event):
                return event
            seen.append(event.name)


def subscribe(lock: threading.Lock, items: list[Any], item: Any) -> Callable[[], None]:
    """Add ``item`` to ``items`` under ``lock``; returns the function that takes it out again (at most once)."""
    with lock:
        items.append(item)

    def remove() -> None:
        with lock:
            if item in items:
                items.remove(item)

    return remove
