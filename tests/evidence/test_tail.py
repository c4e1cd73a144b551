"""The shared copy of a log's unshipped lines (evidence/tail.py): a node that takes a dead
node's room over continues from every event the dead node acknowledged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from evidence.journal import Journal
from evidence.manifest import prefix_of
from evidence.signing import SigningKeys
from evidence.tail import LogTail
from evidence.verify import verify_inspection
from storage.local import LocalObjectStore

INSPECTION = "20261208020000-00112233aabbccdd"
TAIL = prefix_of(INSPECTION) + "events/"


async def node(store: LocalObjectStore, root: Path, live, **kwargs) -> Journal:
    keys = SigningKeys(root / "keys", store)
    await keys.start()
    journal = Journal(store, keys, root / "journal", **kwargs)
    journal.tail = LogTail(live)
    await journal.start()
    return journal


async def stored_seqs(store: LocalObjectStore) -> list[int]:
    lines = b"".join([await store.get(k) for k in await store.list(TAIL)]).splitlines()
    return [json.loads(line)["seq"] for line in lines]


async def test_the_node_taking_over_adopts_what_the_dead_node_acknowledged(tmp_path, make_live_state) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    live_a = await make_live_state()
    # on Redis, two nodes' own clients; in memory, one state stands for the shared one
    live_b = await make_live_state() if type(live_a).__name__ == "RedisLiveState" else live_a
    # node A ships once a minute: its last events are acknowledged and only on its disk (and in Redis)
    a = await node(store, tmp_path / "a", live_a, ship_interval_s=60)
    for n in range(3):
        await a.record(INSPECTION, "note", "inspector", {"n": n})
    await a.ship()
    for n in range(3, 7):
        await a.record(INSPECTION, "note", "inspector", {"n": n})
    assert await stored_seqs(store) == [1, 2, 3]
    # the copy holds only what the store lacks
    assert [json.loads(line)["seq"] for line in await a.tail.read(TAIL)] == [4, 5, 6, 7]  # type: ignore[union-attr]
    # A dies (its journal directory is never used again); B takes the room over
    b = await node(store, tmp_path / "b", live_b, ship_interval_s=0.1)
    assert await b.take_over(INSPECTION) == 4
    event = await b.record(INSPECTION, "session.interrupted", "system", {"node": "b"})
    assert event["seq"] == 8
    for _ in range(50):
        if await stored_seqs(store) == list(range(1, 9)):
            break
        await asyncio.sleep(0.1)
    assert await stored_seqs(store) == list(range(1, 9))
    assert [e["data"].get("n") for e in await b.events(INSPECTION)][:7] == list(range(7))
    # shipped: the copy is emptied
    for _ in range(50):
        if not await b.tail.read(TAIL):  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.1)
    assert await b.tail.read(TAIL) == []  # type: ignore[union-attr]
    await b.seal(INSPECTION, {"id": INSPECTION})
    report = await verify_inspection(store, INSPECTION)
    assert report.ok, report.problems
    await b.close()
    await store.close()


async def test_a_copy_that_does_not_continue_the_stored_log_is_not_adopted(tmp_path, make_live_state) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    live = await make_live_state()
    a = await node(store, tmp_path / "a", live, ship_interval_s=60)
    for n in range(3):
        await a.record(INSPECTION, "note", "inspector", {"n": n})
    await a.ship()
    # a stale copy (another node went on from the store meanwhile, then left this behind)
    await live.set_lines(LogTail._key(TAIL), ['{"seq":4,"prev":"00","hash":"11"}\n'], 60)
    b = await node(store, tmp_path / "b", live, ship_interval_s=60)
    assert await b.take_over(INSPECTION) == 0
    assert (await b.record(INSPECTION, "note", "inspector", {"n": 3}))["seq"] == 4
    assert [json.loads(line)["seq"] for line in await b.tail.read(TAIL)] == [4]  # type: ignore[union-attr]
    await b.close()
    await a.close()
    await store.close()


async def test_an_unreachable_redis_does_not_hold_events_up(tmp_path) -> None:
    class Stuck:
        async def push_lines(self, *args) -> None:
            await asyncio.sleep(30)

        set_lines = push_lines

    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    keys = SigningKeys(tmp_path / "keys", store)
    await keys.start()
    journal = Journal(store, keys, tmp_path / "journal")
    journal.tail = LogTail(Stuck(), timeout_s=0.2)  # type: ignore[arg-type]  # a collaborator that never answers
    await journal.start()
    started = asyncio.get_running_loop().time()
    await journal.record(INSPECTION, "note", "inspector", {"n": 0})
    await journal.record(INSPECTION, "note", "inspector", {"n": 1})
    assert asyncio.get_running_loop().time() - started < 2
    assert journal.tail.failures == 2
    await journal.close()
    await store.close()
