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
