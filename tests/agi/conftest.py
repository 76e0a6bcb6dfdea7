from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agi.peer import Peer


@pytest.fixture
def peer_factory() -> Iterator[list[Peer]]:
    peers: list[Peer] = []
    yield peers
    for peer in peers:
        peer.thread.join(5)
        peer.close()
