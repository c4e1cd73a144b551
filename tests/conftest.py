"""Shared test fixtures.

Storage backends (section below): a real redis-server and moto's S3 server, one each per
session, plus ``object_store`` and ``live_state`` fixtures that run a test on every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.livestate import LiveState, MemoryLiveState
from storage.local import LocalObjectStore
from storage.objects import ObjectStore
from storage.redis_state import RedisLiveState
from testkit.servers import REDIS_SERVER, MotoServer, RedisServer, s3_store

# ---- storage backends -------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a throwaway redis-server (no persistence) that lives for the session."""
    if not REDIS_SERVER.exists():
        pytest.skip(f"redis-server not found at {REDIS_SERVER}; install it to run Redis tests")
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.discard()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 server for the session; tests that stop it must use ``s3_outage``."""
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.discard()


@pytest.fixture(scope="session")
def s3_endpoint(moto_server: MotoServer) -> str:
    """``host:port`` of the session's S3 server."""
    return moto_server.endpoint


@pytest.fixture
def s3_outage(moto_server: MotoServer) -> Iterator[MotoServer]:
    """The S3 server for a test that stops and restarts it (``stop()``, ``start()``).

    It is running again after the test whatever happened. A restart forgets all buckets.
    """
    try:
        yield moto_server
    finally:
        moto_server.start()


@pytest.fixture(params=["local", "s3"])
async def object_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    """A started, empty object store, once per backend."""
    store: ObjectStore
    if request.param == "local":
        store = LocalObjectStore(tmp_path / "objects")
    else:
        store = s3_store(request.getfixturevalue("s3_endpoint"))
    await store.start()
    try:
        yield store
    finally:
        await store.close()


LiveStateFactory = Callable[..., Awaitable[LiveState]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_live_state(request: pytest.FixtureRequest) -> AsyncIterator[LiveStateFactory]:
    """Factory of started LiveStates on one backend (kwargs go to the constructor).

    Redis states of one test share a unique key prefix, deleted afterwards.
    """
    created: list[LiveState] = []
    prefix = f"takan-test:{uuid.uuid4().hex[:12]}:"
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""

    async def make(**kwargs: Any) -> LiveState:
        state: LiveState
        if request.param == "memory":
            state = MemoryLiveState(**kwargs)
        else:
            state = RedisLiveState(url, prefix=prefix, **kwargs)
        await state.start()
        created.append(state)
        return state

    try:
        yield make
    finally:
        for state in created:
            await state.close()
        if url:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(url)
            try:
                keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()


@pytest.fixture
async def live_state(make_live_state: LiveStateFactory) -> LiveState:
    """A started LiveState with default settings, once per backend."""
    return await make_live_state()
