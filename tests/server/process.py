"""``ivrkit serve`` as a real process for tests: its JSON log lines read as they come, its admin API at hand."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CLI = "import sys; from ivrkit.cli import main; sys.exit(main())"


class IvrkitProcess:
    """``ivrkit ARGV…`` as a real process; its JSON log lines (standard error) read as they come."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, stdout: int | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-c", CLI, *argv], stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
        )
        self.logs: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                self.logs.put(json.loads(line))
            except json.JSONDecodeError:
                self.logs.put({"msg": line.rstrip(), "level": "RAW"})

    def wait_log(self, match: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
        """The first log record from now on that ``match``es; AssertionError (with the lines seen) after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                record = self.logs.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no such log line within {timeout} s; seen: {self.seen}") from None
            self.seen.append(record)
            if match(record):
                return record

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)  # it ends at the end of the log: never close the stream under it
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class ServeProcess(IvrkitProcess):
    """``ivrkit serve --flows FLOWS`` with free ports, the admin token ``TOKEN`` and ``args``, run in ``tmp``."""

    def __init__(self, flows: Path, tmp: Path, *args: str):
        self.port, self.admin_port = free_port(), free_port()
        super().__init__(
            ["serve", "--flows", str(flows), "--prompts", str(tmp / "no-prompts"), "--port", str(self.port),
             "--admin-port", str(self.admin_port), "--log-format", "json", *args],
            cwd=tmp, env={**os.environ, "IVRKIT_ADMIN_TOKEN": TOKEN}, stdout=subprocess.PIPE,
        )  # fmt: skip

    def get(self, path: str, token: str | None = TOKEN) -> tuple[int, str]:
        """GET on the admin endpoint: (status, body)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read().decode()
