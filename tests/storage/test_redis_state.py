"""RedisLiveState specifics: shared between nodes, keys under the prefix, outages reported."""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio

from storage.objects import StorageUnavailable
from storage.redis_state import RedisLiveState
from testkit.servers import free_port

pytestmark = pytest.mark.redis


async def test_two_nodes_share_state_and_only_touch_their_prefix(redis_url: str) -> None:
    prefix = f"takan-test:{uuid.uuid4().hex[:12]}:"
    node_a = RedisLiveState(redis_url, prefix=prefix)
    node_b = RedisLiveState(redis_url, prefix=prefix)
    other = RedisLiveState(redis_url, prefix=prefix + "other:")
    for state in (node_a, node_b, other):
        await state.start()
    try:
        await node_a.set_presence("room", "p1", {"node": "a"})
        assert await node_a.claim_role("room", "inspector", "sid-a") is None
        assert await node_b.claim_role("room", "inspector", "sid-b") == "sid-a"
        await node_a.set_room_node("room", "node-a")
        assert await node_b.presence("room") == {"p1": {"node": "a"}}
        assert await node_b.room_node("room") == "node-a"
        first = await node_a.hit("k", 3600)
        assert await node_b.hit("k", 3600) in (first + 1, 1)  # 1 only if an hour just began
        assert await other.presence("room") == {}
        assert await other.role_holder("room", "inspector") is None

        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            assert keys and all(key.startswith(prefix) for key in keys)
            # Room keys expire eventually, so abandoned rooms do not pile up.
            for key in keys:
                assert await client.pttl(key) > 0
            await client.delete(*keys)
        finally:
            await client.aclose()
    finally:
        for state in (node_a, node_b, other):
            await state.close()


async def test_unreachable_redis_is_reported_fast() -> None:
    state = RedisLiveState(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="unreachable"):
        await state.start()
    assert time.monotonic() - started < 3
    await state.close()
