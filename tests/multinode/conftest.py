"""Fixtures of the several-nodes tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from testkit.servers import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own: the nodes' Socket.IO channel is shared by design."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.discard()
