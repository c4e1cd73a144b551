"""A journal's log dropped when its node stepped aside (docs/nodes.md, "Fencing"): its
unshipped lines continue the chain if the node takes the room again before anyone else
writes; if another node went on, they do not, and nothing forks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pytest

from errors import Unavailable
from evidence.chainlog import read_log
from evidence.journal import Journal
from evidence.manifest import EVENTS, prefix_of
from evidence.signing import SigningKeys
from storage.local import LocalObjectStore

INSPECTION = "20261201120000-00112233aabbccdd"


class Gate:
    """A LogFence whose answers the test sets."""

    def __init__(self) -> None:
        self.ship: Optional[bool] = True
        self.append = True

    def check_append(self, inspection_id: str) -> None:
        if not self.append:
            raise Unavailable("fenced", code="node_fenced")

    def check_store(self, inspection_id: str) -> None:
        self.check_append(inspection_id)

    async def may_ship(self, inspection_id: str) -> Optional[bool]:
        return self.ship


async def node(root: Path, store: LocalObjectStore) -> tuple[Journal, Gate]:
    keys = SigningKeys(root / "keys", store)
    await keys.start()
    journal = Journal(store, keys, root / "journal", ship_interval_s=3600)  # ships when told
    await journal.start()
    gate = Gate()
    journal.fence = gate
    return journal, gate


async def stored(store: LocalObjectStore) -> list[dict]:
    return [json.loads(line) for line in (await read_log(store, prefix_of(INSPECTION) + EVENTS)).splitlines()]


@pytest.mark.parametrize("other_writes", [False, True])
async def test_a_dropped_log_continues_only_if_nobody_else_wrote(tmp_path, other_writes: bool) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    a, gate_a = await node(tmp_path / "a", store)
    b, _ = await node(tmp_path / "b", store)
    try:
        for n in range(3):
            await a.record(INSPECTION, "note", "inspector", {"n": n})
        await a.ship()
        await a.record(INSPECTION, "note", "inspector", {"n": 3})  # journaled, not shipped
        gate_a.ship, gate_a.append = None, False  # the lease ended: nothing ships, nothing appends
        await a.ship()
        with pytest.raises(Unavailable):
            await a.record(INSPECTION, "note", "inspector", {"n": 4})
        gate_a.ship = False  # the room is lost: the shipper drops the log
        await a.ship()
        assert a.held(INSPECTION) is None
        assert [e["data"]["n"] for e in await stored(store)] == [0, 1, 2]
        if other_writes:
            await b.record(INSPECTION, "session.interrupted", "system", {"node": "b"})
            await b.ship()
        # A takes the room again
        gate_a.ship, gate_a.append = True, True
        await a.record(INSPECTION, "note", "inspector", {"n": 5})
        await a.ship()
        events = await stored(store)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        for before, after in zip(events, events[1:]):
            assert after["prev"] == before["hash"]
        kinds = [e["data"].get("n", e["type"]) for e in events]
        assert kinds == ([0, 1, 2, "session.interrupted", 5] if other_writes else [0, 1, 2, 3, 5])
    finally:
        await a.close()
        await b.close()
        await store.close()
