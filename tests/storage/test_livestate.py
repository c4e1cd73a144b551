"""The LiveState contract, run on every backend (in-process memory and Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from storage.livestate import LiveState

LiveStateFactory = Callable[..., Awaitable[LiveState]]  # the make_live_state fixture


async def test_presence(live_state: LiveState) -> None:
    assert await live_state.presence("room-1") == {}
    await live_state.set_presence("room-1", "p1", {"role": "inspector", "name": "Wang"})
    await live_state.set_presence("room-1", "p2", {"role": "applicant", "device": {"rear": True}})
    await live_state.set_presence("room-2", "p3", {"role": "inspector"})
    assert await live_state.presence("room-1") == {
        "p1": {"role": "inspector", "name": "Wang"},
        "p2": {"role": "applicant", "device": {"rear": True}},
    }
    # Setting again replaces the entry.
    await live_state.set_presence("room-1", "p1", {"role": "inspector", "muted": True})
    await live_state.remove_presence("room-1", "p2")
    await live_state.remove_presence("room-1", "nobody")  # not an error
    assert await live_state.presence("room-1") == {"p1": {"role": "inspector", "muted": True}}
    assert await live_state.presence("room-2") == {"p3": {"role": "inspector"}}


async def test_presence_returns_copies(live_state: LiveState) -> None:
    info = {"tracks": ["video"]}
    await live_state.set_presence("room", "p1", info)
    info["tracks"].append("audio")
    seen = await live_state.presence("room")
    seen["p1"]["tracks"].append("data")
    assert await live_state.presence("room") == {"p1": {"tracks": ["video"]}}


async def test_presence_expires_unless_refreshed(make_live_state: LiveStateFactory) -> None:
    state = await make_live_state(presence_ttl_s=0.4)
    await state.set_presence("room", "alive", {})
    await state.set_presence("room", "dead", {})
    await asyncio.sleep(0.25)
    await state.set_presence("room", "alive", {"refreshed": True})
    await asyncio.sleep(0.25)
    assert await state.presence("room") == {"alive": {"refreshed": True}}
    await asyncio.sleep(0.25)
    assert await state.presence("room") == {}


async def test_claim_and_release(live_state: LiveState) -> None:
    assert await live_state.role_holder("room", "inspector") is None
    assert await live_state.claim_role("room", "inspector", "sid-a") is None
    assert await live_state.role_holder("room", "inspector") == "sid-a"
    # A reconnect claims the token and learns whom to kick.
    assert await live_state.claim_role("room", "inspector", "sid-b") == "sid-a"
    assert await live_state.role_holder("room", "inspector") == "sid-b"
    # Claiming what one already holds returns nobody to kick.
    assert await live_state.claim_role("room", "inspector", "sid-b") is None
    # The kicked connection's late release must not drop the new holder.
    assert await live_state.release_role("room", "inspector", "sid-a") is False
    assert await live_state.role_holder("room", "inspector") == "sid-b"
    assert await live_state.release_role("room", "inspector", "sid-b") is True
    assert await live_state.role_holder("room", "inspector") is None
    assert await live_state.release_role("room", "inspector", "sid-b") is False


async def test_roles_are_per_room_and_per_role(live_state: LiveState) -> None:
    await live_state.claim_role("room-1", "inspector", "a")
    await live_state.claim_role("room-1", "applicant", "b")
    await live_state.claim_role("room-2", "inspector", "c")
    assert await live_state.role_holder("room-1", "inspector") == "a"
    assert await live_state.role_holder("room-1", "applicant") == "b"
    assert await live_state.role_holder("room-2", "inspector") == "c"
    assert await live_state.role_holder("room-2", "applicant") is None


async def test_concurrent_claims_form_one_chain(live_state: LiveState) -> None:
    holders = [f"sid-{i}" for i in range(25)]
    previous = await asyncio.gather(*(live_state.claim_role("room", "applicant", h) for h in holders))
    final = await live_state.role_holder("room", "applicant")
    assert final in holders
    # Atomic swaps: exactly one claim found the role free, and every holder but the last
    # was handed back (to be kicked) exactly once.
    assert previous.count(None) == 1
    assert sorted(p for p in previous if p is not None) == sorted(h for h in holders if h != final)


async def test_room_node(live_state: LiveState) -> None:
    assert await live_state.room_node("room") is None
    await live_state.set_room_node("room", "node-1")
    assert await live_state.room_node("room") == "node-1"
    await live_state.set_room_node("room", "node-2")
    assert await live_state.room_node("room") == "node-2"
    assert await live_state.room_node("other") is None


async def test_take_room_node_is_a_compare_and_set(live_state: LiveState) -> None:
    assert await live_state.take_room_node("room", "node-a", None)  # nobody hosted it
    assert await live_state.take_room_node("room", "node-a", None)  # already ours
    await live_state.set_presence("room", "inspector", {"on": "a"})
    await live_state.claim_role("room", "inspector", "sid-on-a")
    # node-b thinks node-c hosts it: refused, nothing changes
    assert not await live_state.take_room_node("room", "node-b", "node-c")
    assert await live_state.room_node("room") == "node-a"
    assert await live_state.role_holder("room", "inspector") == "sid-on-a"
    # node-a died: node-b takes it, and node-a's connections are gone with it
    assert await live_state.take_room_node("room", "node-b", "node-a")
    assert await live_state.room_node("room") == "node-b"
    assert await live_state.presence("room") == {}
    assert await live_state.role_holder("room", "inspector") is None
    # only one of two nodes racing for the same dead node's room wins
    await live_state.set_room_node("room-2", "dead")
    won = await asyncio.gather(*(live_state.take_room_node("room-2", n, "dead") for n in ("x", "y")))
    assert sorted(won) == [False, True]


async def test_locks_exclude_other_holders_and_lapse(live_state: LiveState) -> None:
    assert await live_state.acquire("rec", "node-a", 0.3)
    assert not await live_state.acquire("rec", "node-a", 0.3)  # not re-entrant
    assert not await live_state.acquire("rec", "node-b", 0.3)
    await live_state.release("rec", "node-b")  # not the holder: no effect
    assert not await live_state.acquire("rec", "node-b", 0.3)
    await live_state.release("rec", "node-a")
    assert await live_state.acquire("rec", "node-b", 0.2)
    await asyncio.sleep(0.3)  # node-b died holding it: it lapses
    assert await live_state.acquire("rec", "node-a", 0.3)


async def test_publish_reaches_every_subscriber(make_live_state: LiveStateFactory) -> None:
    first = await make_live_state()
    second = first if type(first).__name__ == "MemoryLiveState" else await make_live_state()
    streams = [await first.subscribe("records"), await second.subscribe("records")]
    waiting = [asyncio.ensure_future(anext(stream)) for stream in streams]
    await first.publish("records", "id-1")
    assert await asyncio.wait_for(asyncio.gather(*waiting), 5) == ["id-1", "id-1"]
    for stream in streams:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_clear_room_forgets_only_that_room(live_state: LiveState) -> None:
    for room in ("room-1", "room-2"):
        await live_state.set_presence(room, "p", {})
        await live_state.claim_role(room, "inspector", "p")
        await live_state.set_room_node(room, "node-1")
    await live_state.clear_room("room-1")
    assert await live_state.presence("room-1") == {}
    assert await live_state.role_holder("room-1", "inspector") is None
    assert await live_state.room_node("room-1") is None
    assert await live_state.presence("room-2") == {"p": {}}
    assert await live_state.role_holder("room-2", "inspector") == "p"
    assert await live_state.room_node("room-2") == "node-1"
    await live_state.clear_room("never-existed")


async def _window_start(window_s: float) -> None:
    # Begin just after a window boundary so that a burst of hits fits in one window.
    await asyncio.sleep(window_s - time.time() % window_s + 0.01)


async def test_rate_counter_counts_within_a_window(live_state: LiveState) -> None:
    await _window_start(0.5)
    assert [await live_state.hit("login:1.2.3.4", 0.5) for _ in range(4)] == [1, 2, 3, 4]
    assert await live_state.hit("login:5.6.7.8", 0.5) == 1  # keys are separate
    assert await live_state.hit("login:1.2.3.4", 60) == 1  # so are window sizes
    await _window_start(0.5)
    assert await live_state.hit("login:1.2.3.4", 0.5) == 1  # a new window starts at 1
    assert await live_state.hit("login:1.2.3.4", 0.5) == 2
    assert await live_state.hit("login:1.2.3.4", 60) in (1, 2)  # 1 if a minute just began


async def test_rate_counter_is_consistent_under_concurrency(live_state: LiveState) -> None:
    await _window_start(1.0)
    counts = await asyncio.gather(*(live_state.hit("sdp:room", 1.0) for _ in range(30)))
    assert sorted(counts) == list(range(1, 31))


async def test_bad_input_is_refused(live_state: LiveState) -> None:
    with pytest.raises(ValueError, match="room"):
        await live_state.set_presence("", "p", {})
    with pytest.raises(ValueError, match="control character"):
        await live_state.claim_role("room", "inspector\n", "p")
    with pytest.raises(ValueError, match="longer than"):
        await live_state.set_room_node("room", "n" * 1000)
    with pytest.raises(ValueError, match="JSON"):
        await live_state.set_presence("room", "p", {"when": object()})
    with pytest.raises(ValueError, match="positive"):
        await live_state.hit("k", 0)
    assert await live_state.presence("room") == {}


async def test_start_and_close_are_idempotent(make_live_state: LiveStateFactory) -> None:
    state = await make_live_state()
    await state.start()
    await state.set_room_node("room", "node-1")
    await state.close()
    await state.close()
    with pytest.raises(RuntimeError, match="start"):
        await state.room_node("room")
