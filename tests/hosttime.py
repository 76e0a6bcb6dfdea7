"""Pinning the host's time zone for tests of output that shows local times."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


@contextlib.contextmanager
def host_timezone(name: str) -> Iterator[None]:
    """Run the block with ``TZ=name``; the previous zone comes back afterwards."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
