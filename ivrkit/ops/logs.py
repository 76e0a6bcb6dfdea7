"""Structured logs: every line carries the call's unique id, flow and step, and stays one line.

The call context lives in `contextvars`, so each session thread (whose context starts empty) tags its own lines
without passing anything around. Caller names and keys come from the network: no message or field can break a
line and forge another record, in either format.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

LOGGER = "ivrkit"
FORMATS = ("json", "text")

_uniqueid: ContextVar[str | None] = ContextVar("ivrkit_uniqueid", default=None)
_flow: ContextVar[str | None] = ContextVar("ivrkit_flow", default=None)
Where = Callable[[], tuple[str | None, str | None]]  # the call's (flow, step) now; None for either: not known
_where: ContextVar[Where | None] = ContextVar("ivrkit_where", default=None)

_CALL_FIELDS = ("uniqueid", "flow", "step")
# Attributes every LogRecord has; whatever else a record carries came from `extra={...}`.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName", *_CALL_FIELDS,
}  # fmt: skip
_CORE_KEYS = frozenset({"ts", "level", "logger", "msg", "exc", "stack", *_CALL_FIELDS})


@contextmanager
def call_context(uniqueid: str, flow: str, where: Where | None = None) -> Iterator[None]:
    """Tag every log line written inside the block (in this thread or task) with the call and its flow.
    ``where`` is asked for the call's flow and step only when a line is written (the session's journal knows
    them), so a call pays nothing for its steps while nothing is logged."""
    tokens = (_uniqueid.set(uniqueid), _flow.set(flow), _where.set(where))
    try:
        yield
    finally:
        _where.reset(tokens[2])
        _flow.reset(tokens[1])
        _uniqueid.reset(tokens[0])


class CallContextFilter(logging.Filter):
    """Adds `uniqueid`, `flow` and `step` to every record (None outside a call); `extra=` values win."""

    def filter(self, record: logging.LogRecord) -> bool:
        d = record.__dict__
        if "uniqueid" not in d:
            d["uniqueid"] = _uniqueid.get()
        where = _where.get()
        flow, step = where() if where is not None else (None, None)
        if "flow" not in d:
            d["flow"] = flow or _flow.get()
        if "step" not in d:
            d["step"] = step
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _extras(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    for key, value in record.__dict__.items():
        if key not in _RECORD_ATTRS:
            yield key, value


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={...}` fields become top-level keys (`key_` if they clash)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _CALL_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        for key, value in _extras(record):
            out[f"{key}_" if key in _CORE_KEYS else key] = value
        exc = _exception_text(self, record)
        if exc:
            out["exc"] = exc
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii: U+2028, U+0085 and friends split lines for some readers; escaped they cannot.
        return json.dumps(out, default=str, ensure_ascii=True)


# Anything a reader might take for a line break or a terminal control: C0, DEL, C1, U+2028/U+2029.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_QUOTES = re.compile(r'[\s="]')


def _escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def _field(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return json.dumps(text)  # quoted and escaped, so `a=b c` cannot pose as a second field
    return _escape(text)


class TextFormatter(logging.Formatter):
    """`2026-11-21T10:00:00.123Z INFO ivrkit.agi [1712345678.42 support/main_menu] msg key=value`, one line."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.name]
        uniqueid, flow, step = (getattr(record, key, None) for key in _CALL_FIELDS)
        if uniqueid is not None or flow is not None:
            where = "/".join(str(x) for x in (flow, step) if x is not None)
            parts.append(_escape(f"[{' '.join(str(x) for x in (uniqueid, where) if x)}]"))
        parts.append(_escape(record.getMessage()))
        parts.extend(f"{_escape(key)}={_field(value)}" for key, value in _extras(record))
        exc = _exception_text(self, record)
        if exc:
            parts.append(f"exc={_field(exc)}")
        if record.stack_info:
            parts.append(f"stack={_field(self.formatStack(record.stack_info))}")
        return " ".join(parts)


class _Handler(logging.StreamHandler[TextIO]):
    """Marks the handler `configure` installed, so a second call replaces it instead of adding another."""


def configure(format: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Send the `ivrkit` loggers' records to `stream` (default: stderr) as JSON lines or text; safe to repeat.

    The root logger is left alone and `ivrkit` records stop propagating to it, so nothing is written twice
    when the embedding application has its own handlers.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown log format {format!r}: use one of {', '.join(FORMATS)}")
    levels = logging.getLevelNamesMapping()
    number = levels.get(level.upper())
    if number is None:
        choices = ", ".join(name.lower() for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
        raise ValueError(f"unknown log level {level!r}: use one of {choices}")
    logger = logging.getLogger(LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
        logger.removeHandler(old)
        old.close()
    handler = _Handler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(CallContextFilter())
    logger.addHandler(handler)
    logger.setLevel(number)
    logger.propagate = False
