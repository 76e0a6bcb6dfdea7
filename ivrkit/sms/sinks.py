"""Gateways for development: messages go to a file (JSON lines) or to the console instead of a phone.

They exercise everything else for real (the outbox, the worker, the link tokens), so a flow can be tried
end to end on a laptop. A file sink is also what an integration test or a batch job can read.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

from ivrkit.flow.fields import Option, Text
from ivrkit.sms.gateway import Gateway, TemporaryError
from ivrkit.sms.message import Message


def _record(message: Message) -> dict[str, Any]:
    return {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "key": message.key,
        "to": message.to,
        "text": message.text,
    }


@dataclass
class FileSink(Gateway):
    kind: ClassVar[str] = "file"
    summary: ClassVar[str] = "Appends each message to a file as one JSON line (development, tests)."
    options: ClassVar[dict[str, Option]] = {
        "path": Option(Text(what="file path"), "The file; relative paths start at the config file's folder.",
                       required=True),
    }

    path: Path

    @classmethod
    def from_settings(cls, settings: dict[str, Any], config_dir: Path) -> Gateway:
        return cls(config_dir / settings["path"])

    def describe(self) -> str:
        return f"file {self.path}"

    def send(self, message: Message) -> str:
        line = (json.dumps(_record(message), ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)  # one write with O_APPEND: lines of several processes never interleave
            finally:
                os.close(fd)
        except OSError as error:
            raise TemporaryError(f"{self.path}: {error.strerror}") from None
        return message.key


@dataclass
class ConsoleSink(Gateway):
    kind: ClassVar[str] = "console"
    summary: ClassVar[str] = "Prints each message on standard output (development; the default without a config)."

    stream: TextIO | None = None  # None: sys.stdout at the time of sending
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> str:
        return "console (standard output; no message reaches a phone)"

    def send(self, message: Message) -> str:
        with self._lock:
            stream = self.stream or sys.stdout
            stream.write(f"SMS to {message.to} [{message.key}]: {message.text}\n")
            stream.flush()
        return message.key
