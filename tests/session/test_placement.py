"""Placement: heartbeats, which node hosts a room, and the take-over of a dead node's rooms.

Two Placements on one live state stand for two nodes (both backends: in-process and a real
redis-server); "killing" a node is stopping its heartbeat task without withdrawing it, as a
SIGKILL would.
"""

from __future__ import annotations

import asyncio
from typing import Optional

import pytest

from session.placement import Placement
from storage.livestate import LiveState


def node(live: LiveState, name: str, adopted: list[tuple[str, str, Optional[str]]]) -> Placement:
    placement = Placement(live, name, f"http://{name}.test:8080/", ttl_s=0.6, every_s=0.15)

    async def adopt(room: str, previous: Optional[str]) -> None:
        adopted.append((name, room, previous))

    placement.on_adopt(adopt)
    return placement


async def test_one_node_hosts_a_room_and_the_other_points_at_it(live_state: LiveState) -> None:
    adopted: list[tuple[str, str, Optional[str]]] = []
    a, b = node(live_state, "node-a", adopted), node(live_state, "node-b", adopted)
    await a.start()
    await b.start()
    try:
        here = await a.locate("room-1")
        assert here.here and here.node_id == "node-a" and here.url == "http://node-a.test:8080"
        there = await b.locate("room-1")
        assert not there.here and there.node_id == "node-a" and there.url == "http://node-a.test:8080"
        assert await b.elsewhere("room-1") and not await a.elsewhere("room-1")
        assert adopted == [("node-a", "room-1", None)]
        # it keeps beating: still there after several TTLs
        await asyncio.sleep(1.5)
        assert (await b.locate("room-1")).node_id == "node-a"
    finally:
        await a.close()
        await b.close()


async def test_a_dead_node_s_room_is_taken_once_its_heartbeat_lapses(live_state: LiveState) -> None:
    adopted: list[tuple[str, str, Optional[str]]] = []
    a, b, c = (node(live_state, n, adopted) for n in ("node-a", "node-b", "node-c"))
    for p in (a, b, c):
        await p.start()
    try:
        await a.locate("room-1")
        await a._background.close()  # SIGKILL: no more beats, nothing withdrawn
        assert (await b.locate("room-1")).node_id == "node-a"  # not dead yet
        await asyncio.sleep(0.8)
        # two nodes asked at once: exactly one takes it, the other is sent there
        places = await asyncio.gather(b.locate("room-1"), c.locate("room-1"))
        assert sorted(p.here for p in places) == [False, True]
        winner = next(p for p in places if p.here).node_id
        assert {p.node_id for p in places} == {winner}
        assert adopted[1:] == [(winner, "room-1", "node-a")]
    finally:
        for p in (a, b, c):
            await p.close()


async def test_close_withdraws_the_heartbeat_and_is_idempotent(live_state: LiveState) -> None:
    a = node(live_state, "node-a", [])
    b = node(live_state, "node-b", [])
    await a.start()
    await a.start()
    await b.start()
    await a.locate("room-1")
    await a.close()
    await a.close()
    assert await b.node_url("node-a") is None  # at once, not after the TTL
    assert (await b.locate("room-1")).here
    await b.close()


def test_the_heartbeat_must_beat_within_its_ttl(live_state: LiveState) -> None:
    with pytest.raises(ValueError, match="more often"):
        Placement(live_state, "n", "http://n", ttl_s=1.0, every_s=1.0)


# -- fencing: a node cut off from Redis steps aside before another can take its rooms ----------


async def test_a_node_cut_off_from_redis_fences_itself_before_its_rooms_can_be_taken(redis_url) -> None:
    """Node A reaches Redis through a proxy that the test blackholes (a partition: requests
    hang); node B keeps Redis. A must refuse to write before B can take its room, B takes it
    once A's heartbeat lapses, and A, back, rejoins without touching the room."""
    import uuid

    from evidence.journal import LogFence
    from session.placement import Fenced
    from storage.redis_state import RedisLiveState
    from testkit.servers import free_port
    from testkit.tcpproxy import TcpProxy

    host, port = redis_url.split("//")[1].split("/")[0].split(":")
    proxy = TcpProxy(host, int(port), free_port())
    await proxy.start()
    prefix = f"takan-test:{uuid.uuid4().hex[:12]}:"
    live_a = RedisLiveState(f"redis://127.0.0.1:{proxy.port}/0", prefix=prefix, timeout_s=1.0)
    live_b = RedisLiveState(redis_url, prefix=prefix)
    await live_a.start()
    await live_b.start()
    adopted: list[tuple[str, str, Optional[str]]] = []
    # A fences 0.75 s after its last renewal and its heartbeat lapses 0.75 s later: the order
    # checked below is no race on a loaded machine
    a = Placement(live_a, "node-a", "http://node-a.test:8080/", ttl_s=1.5, every_s=0.25, fence_after_s=0.75)
    b = Placement(live_b, "node-b", "http://node-b.test:8080/", ttl_s=1.5, every_s=0.25)

    async def adopt(room: str, previous: Optional[str]) -> None:
        adopted.append(("node-b", room, previous))

    b.on_adopt(adopt)
    fenced: list[tuple[float, list[str]]] = []
    loop = asyncio.get_running_loop()

    async def step_aside(rooms: list[str]) -> None:
        fenced.append((loop.time(), rooms))

    a.on_fence(step_aside)
    fence: LogFence = a  # what the journal asks
    try:
        await a.start()
        await b.start()
        assert (await a.locate("room-1")).here
        node_a, epoch_a = await live_b.room_lease("room-1")
        assert node_a == "node-a" and epoch_a >= 1
        fence.check_append("room-1")
        assert await fence.may_ship("room-1") is True
        a.check_serving("room-1")

        proxy.blackhole()
        cut = loop.time()
        for _ in range(250):  # A fences within fence_after_s (0.75 s) of its last renewal
            if fenced:
                break
            await asyncio.sleep(0.02)
        assert fenced and fenced[0][1] == ["room-1"], fenced
        with pytest.raises(Fenced):
            fence.check_append("room-1")
        with pytest.raises(Fenced):
            a.check_serving("room-1")
        assert await fence.may_ship("room-1") is False  # lost: never shipped from here again
        with pytest.raises(Fenced):
            await a.locate("room-2")  # a fenced node takes nothing
        # B cannot take the room before A's heartbeat lapses, i.e. after A fenced itself
        taken_at = None
        for _ in range(250):
            place = await b.locate("room-1")
            if place.here:
                taken_at = loop.time()
                break
            await asyncio.sleep(0.02)
        assert taken_at is not None and fenced[0][0] < taken_at, (cut, fenced, taken_at)
        node_b, epoch_b = await live_b.room_lease("room-1")
        assert node_b == "node-b" and epoch_b == epoch_a + 1
        assert ("node-b", "room-1", "node-a") in adopted

        proxy.restore()
        for _ in range(250):  # A beats again: a new lease
            if a.lease_valid:
                break
            await asyncio.sleep(0.02)
        assert a.lease_valid and a.fences == 1
        fence.check_append("room-2")  # other inspections' logs may be written again
        with pytest.raises(Fenced):
            fence.check_append("room-1")  # but not the lost room's
        there = await a.locate("room-1")
        assert not there.here and there.node_id == "node-b"  # it does not resume B's room
        assert await live_b.room_lease("room-1") == ("node-b", epoch_b)
    finally:
        await a.close()
        await b.close()
        await live_a.close()
        await live_b.close()
        await proxy.stop()


async def test_a_room_whose_epoch_moved_is_not_shipped(live_state: LiveState) -> None:
    """The fencing token: Redis lost the room's key (or another process took it) while this
    node's lease looked fine; the shipper's check finds another node at another epoch."""
    a = node(live_state, "node-a", [])
    await a.start()
    try:
        await a.locate("room-1")
        assert await a.may_ship("room-1") is True
        await live_state.clear_room("room-1")  # closed: nobody hosts it, still ours to ship
        assert await a.may_ship("room-1") is True
        assert await live_state.take_room("room-1", "node-x", None)
        assert await a.may_ship("room-1") is False
        from session.placement import Fenced

        with pytest.raises(Fenced):
            a.check_append("room-1")
        a.check_append("room-2")
    finally:
        await a.close()


async def test_without_fencing_a_lone_node_never_steps_aside(live_state: LiveState) -> None:
    a = Placement(live_state, "node-a", "http://a", ttl_s=0.6, every_s=0.15, fencing=False)
    await a.start()
    try:
        await a.locate("room-1")
        a._renewed_at = 0.0  # as if the loop had stalled for ages
        assert a.lease_valid
        a.check_serving("room-1")
        a.check_append("room-1")
        assert (await a.locate("room-1")).here
    finally:
        await a.close()


async def test_without_fencing_a_lapsed_heartbeat_does_not_fence_a_lone_node(live_state: LiveState) -> None:
    """A starved single node (its loop stalled past the heartbeat's TTL) found its key gone
    at the next beat and fenced itself, refusing every event (events benchmark, 4 runs of
    8); with nothing else to take its rooms it now carries on."""
    fenced: list[list[str]] = []

    async def fencer(rooms: list[str]) -> None:
        fenced.append(rooms)

    a = Placement(live_state, "node-a", "http://a", ttl_s=0.6, every_s=0.15, fencing=False)
    a.on_fence(fencer)
    await a.start()
    try:
        await a.locate("room-1")
        await live_state.delete_value(a._key("node-a"))  # as if the key had lapsed during a stall
        await asyncio.sleep(0.4)  # the next beats find it gone
        assert fenced == [] and a.fences == 0
        a.check_serving("room-1")
        a.check_append("room-1")
        assert (await a.locate("room-1")).here
    finally:
        await a.close()


async def test_a_write_spooled_before_the_room_moved_is_not_uploaded_over_the_next_node_s(live_state: LiveState, tmp_path) -> None:
    """Node A spools a segment while S3 is down, dies; B takes the room and stores its own;
    A's spool drains later (its restart): the stale write is quarantined, not uploaded."""
    from storage.local import LocalObjectStore
    from storage.objects import ObjectInfo, StorageUnavailable
    from storage.spool import SpoolingStore

    class Down(LocalObjectStore):  # the bucket as seen from A: unreachable while down
        down = True

        async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
            if self.down:
                raise StorageUnavailable("S3 unreachable from node A")
            return await super().put(key, data, content_type)

    bucket = tmp_path / "bucket"
    adopted: list[tuple[str, str, Optional[str]]] = []
    a, b = node(live_state, "node-a", adopted), node(live_state, "node-b", adopted)
    await a.start()
    await b.start()
    seen_by_a = Down(bucket)
    spool = SpoolingStore(seen_by_a, tmp_path / "spool-a", retry_interval_s=0.05, max_backoff_s=0.1)
    spool.tagger, spool.gate = a.spool_tag, b.spool_gate  # A restarted: its new process asks Redis
    await spool.start()
    shared = LocalObjectStore(bucket)
    await shared.start()
    try:
        await a.locate("room-1")
        key = "inspections/room-1/media/applicant-video/000002.webm"
        await spool.put(key, b"A's segment, spooled")
        await spool.put("records/other.json", b"{}")  # not a room's object: no tag
        await a._background.close()  # SIGKILL
        await asyncio.sleep(0.8)
        assert (await b.locate("room-1")).here
        await shared.put(key, b"B's segment")
        seen_by_a.down = False
        assert await spool.wait_drained(5)
        assert await shared.get(key) == b"B's segment"
        assert await shared.get("records/other.json") == b"{}"
        assert spool.stale == 1 and len(list((tmp_path / "spool-a" / "quarantine").iterdir())) == 2
    finally:
        await spool.close()
        await a.close()
        await b.close()
