"""A real Asterisk 22 for the test session, AMI connections, the call driver, and a scriptable FastAGI peer.

One Asterisk instance serves the whole session (it starts in well under a second, stopping takes about one);
each test installs its own dialplan with ``asterisk.reload_dialplan(...)``. Without a built root the tests
are skipped with the command that builds it, except under CI (``$CI`` set), where they fail: they must run.

``tests/ami`` imports these fixtures; the instance is shared through :func:`acquire_instance` so the
session still runs one Asterisk.
"""

from __future__ import annotations

import array
import contextlib
import io
import math
import os
import re
import socket
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ivrkit.ami.client import AmiClient
from ivrkit.qa.asterisk.calls import CallDriver
from ivrkit.qa.asterisk.sandbox import AsteriskInstance, AsteriskRoot


class _Shared:
    """The session's instance, counted by the fixtures that hold it (tests/asterisk and tests/ami)."""

    lock = threading.Lock()
    instance: AsteriskInstance | None = None
    users = 0


def require_root() -> AsteriskRoot:
    """The built root, or skip (fail under CI) with the exact instruction to build it."""
    root = AsteriskRoot()
    problem = root.why_unavailable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"Asterisk tests cannot run in CI: {problem}", pytrace=False)
        pytest.skip(f"real Asterisk unavailable: {problem}")
    return root


def acquire_instance() -> AsteriskInstance:
    with _Shared.lock:
        if _Shared.instance is None:
            _Shared.instance = AsteriskInstance(require_root()).start()
        _Shared.users += 1
        return _Shared.instance


def release_instance() -> None:
    with _Shared.lock:
        _Shared.users -= 1
        if _Shared.users == 0 and _Shared.instance is not None:
            _Shared.instance.stop()
            _Shared.instance = None


@pytest.fixture(scope="session")
def asterisk() -> Iterator[AsteriskInstance]:
    """The session's Asterisk (give each test its dialplan with ``asterisk.reload_dialplan(text)``)."""
    instance = acquire_instance()
    try:
        yield instance
    finally:
        release_instance()


@pytest.fixture
def ami(asterisk: AsteriskInstance) -> Iterator[AmiClient]:
    """A fresh logged-in AMI connection for one test."""
    client = asterisk.ami_client()
    try:
        yield client
    finally:
        client.close()


def documented_ami_rights() -> dict[str, str]:
    """``read`` and ``write`` of the callback dispatcher's AMI user, as docs/callbacks.md tells an admin to write
    them in manager.conf: the tests give the dispatcher exactly these."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "callbacks.md").read_text()
    block = re.search(r"```\n\[ivrkit-dispatcher\]\n(.*?)```", text, re.S)
    assert block is not None, "docs/callbacks.md no longer shows the dispatcher's manager.conf section"
    rights = dict(re.findall(r"^(read|write) = (\S+)$", block.group(1), re.M))
    assert set(rights) == {"read", "write"}, block.group(1)
    return rights


def without(rights: str, right: str) -> str:
    """``rights`` (comma-separated) less one of them."""
    return ",".join(r for r in rights.split(",") if r != right)


@pytest.fixture
def ami_users(asterisk: AsteriskInstance) -> Iterator[Callable[[str, str, str], tuple[str, str]]]:
    """``ami_users(name, read, write)``: an AMI user with exactly these rights, as an admin writes it in
    manager.conf; returns (user, secret). manager.conf is restored after the test."""
    path = asterisk.config_path("manager.conf")
    original = path.read_text()
    sections: list[str] = []

    def add(name: str, read: str, write: str) -> tuple[str, str]:
        secret = f"secret-{name}"
        sections.append(f"\n[{name}]\nsecret = {secret}\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
                        f"read = {read}\nwrite = {write}\n")  # fmt: skip
        asterisk.write_config("manager.conf", original + "".join(sections))
        asterisk.command("manager reload")
        return name, secret

    yield add
    if sections:
        asterisk.write_config("manager.conf", original)
        asterisk.command("manager reload")


@pytest.fixture
def call_driver(ami: AmiClient) -> Iterator[CallDriver]:
    """Places test calls; calls still up at the end of the test are hung up."""
    driver = CallDriver(ami)
    try:
        yield driver
    finally:
        driver.close()


class AgiSession:
    """One FastAGI connection from Asterisk, driven by a test script: send a command, read the reply."""

    def __init__(self, conn: socket.socket) -> None:
        conn.settimeout(30)  # a test that forgets to end its call must not leave this thread blocked forever
        self.conn = conn
        self.reader = conn.makefile("rb")
        self.env: dict[str, str] = {}
        self.transcript: list[tuple[str, str]] = []
        """("sent", line) and ("received", line) in order, including unsolicited ``HANGUP`` lines."""

    def read_env(self) -> None:
        while line := self._read():
            key, _, value = line.partition(": ")
            self.env[key] = value

    def read_line(self) -> str:
        line = self._read()
        self.transcript.append(("received", line))
        return line

    def _read(self) -> str:
        raw = self.reader.readline()
        if not raw:
            raise EOFError("Asterisk closed the AGI connection")
        return raw.decode().rstrip("\n")

    def command(self, line: str) -> str:
        """Send one command and return its reply, skipping (but recording) ``HANGUP`` notices."""
        self.conn.sendall(line.encode() + b"\n")
        self.transcript.append(("sent", line))
        while True:
            reply = self.read_line()
            if reply == "HANGUP":
                continue
            if reply.startswith("520-"):  # multi-line usage text, ended by "520 End of proper usage."
                while not self.read_line().startswith("520 "):
                    pass
            return reply

    def received(self) -> list[str]:
        """Every line Asterisk sent after the environment block."""
        return [line for kind, line in self.transcript if kind == "received"]


class FastAgiPeer:
    """A tiny FastAGI server on 127.0.0.1 running ``script(session)`` for each connection, on a thread.

    A real peer speaking the real protocol, with no ivrkit server code involved. Exceptions in the script
    are kept and re-raised by :meth:`check`, so a broken peer fails the test instead of hiding.
    """

    def __init__(self, script: Callable[[AgiSession], None]) -> None:
        self.script = script
        self.sessions: list[AgiSession] = []
        self.errors: list[BaseException] = []
        self.finished = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, name="fastagi-peer", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # closed before a call came
        session = AgiSession(conn)
        self.sessions.append(session)
        try:
            session.read_env()
            self.script(session)
        except BaseException as error:
            self.errors.append(error)
        finally:
            session.reader.close()
            conn.close()
            self.finished.set()

    @property
    def session(self) -> AgiSession:
        assert self.sessions, "Asterisk never connected to the FastAGI peer"
        return self.sessions[0]

    def check(self, timeout: float = 10.0) -> AgiSession:
        """Wait for the session's script to finish and re-raise what went wrong in it."""
        assert self.finished.wait(timeout), "the FastAGI peer's script did not finish"
        if self.errors:
            raise self.errors[0]
        return self.session

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept() of a peer no call reached (close() alone does not)
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the FastAGI peer's script is still running"


def wav(seconds: float, frequency: int = 440) -> bytes:
    """A prompt as Asterisk plays it natively: 8 kHz, 16-bit, mono WAV (a quiet tone)."""
    frames = int(8000 * seconds)
    samples = array.array("h", (int(3000 * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(frames)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


@pytest.fixture
def fastagi() -> Iterator[Callable[[Callable[[AgiSession], None]], FastAgiPeer]]:
    """``fastagi(script)`` starts a one-call FastAGI peer; its ``port`` goes into the dialplan."""
    peers: list[FastAgiPeer] = []

    def start(script: Callable[[AgiSession], None]) -> FastAgiPeer:
        peer = FastAgiPeer(script)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.close()
