"""RecordSync: two nodes' inspection books on one object store stay coherent.

Two InspectionBooks on one store, each with its RecordSync on one live state (in-process,
and a real redis-server): a record made or changed on one is seen by the other, and changes
made on both at once are all kept (no lost update).
"""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from approval.inspections import InspectionBook
from approval.requests import parse_new_inspection
from approval.templates import Templates
from session.recordsync import RecordSync
from errors import Conflict
from storage.livestate import LiveState
from storage.local import LocalObjectStore
from testkit.server import inspection_body

TTL = datetime.timedelta(hours=1)


@pytest.fixture
async def books(tmp_path: Path, live_state: LiveState) -> AsyncIterator[tuple[InspectionBook, InspectionBook]]:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    pair = (InspectionBook(store, Templates()), InspectionBook(store, Templates()))
    syncs = [RecordSync(live_state, book, f"node-{n}") for n, book in enumerate(pair)]
    for book, sync in zip(pair, syncs):
        await book.start()
        await sync.start()
        await sync.start()  # idempotent
    try:
        yield pair
    finally:
        for book, sync in zip(pair, syncs):
            await sync.close()
            await sync.close()
            await book.close()
        await store.close()


async def until(predicate, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "not true in time"
        await asyncio.sleep(0.02)


async def test_a_record_made_or_changed_on_one_node_is_seen_on_the_other(books: tuple[InspectionBook, InspectionBook]) -> None:
    a, b = books
    record = await a.create(parse_new_inspection(inspection_body()), "key", TTL)
    await until(lambda: b.find(record.id) is not None)
    held = b.get(record.id)
    await a.transition(record.id, "live", started_at="2026-12-02T01:00:00.000Z")
    await until(lambda: held.status == "live")  # the same object, updated in place
    assert held.started_at == "2026-12-02T01:00:00.000Z"


async def test_an_unknown_id_is_looked_up_in_the_store(books: tuple[InspectionBook, InspectionBook]) -> None:
    a, b = books
    a.shared = None  # a announces nothing (as if the announcement were missed)
    record = await a.create(parse_new_inspection(inspection_body(case_no="DZ-2026-000999")), "key", TTL)
    await asyncio.sleep(0.2)
    assert b.find(record.id) is None
    fetched = await b.fetch(record.id)
    assert fetched is not None and fetched.case_no == "DZ-2026-000999"
    assert await b.fetch("20260101000000-0000000000000000") is None


async def test_changes_made_on_both_nodes_at_once_are_all_kept(books: tuple[InspectionBook, InspectionBook]) -> None:
    a, b = books
    record = await a.create(parse_new_inspection(inspection_body()), "key", TTL)
    await until(lambda: b.find(record.id) is not None)

    async def invite(book: InspectionBook, who: str) -> None:
        for n in range(10):
            await book.add_observer(record.id, {"link_id": f"{who}{n}", "name": f"{who}{n}", "kind": "guest"})

    await asyncio.gather(invite(a, "a"), invite(b, "b"))
    for book in (a, b):
        fresh = await book.reload(record.id)
        assert fresh is not None
        assert sorted(o["link_id"] for o in fresh.observers) == sorted([f"a{n}" for n in range(10)] + [f"b{n}" for n in range(10)])


async def test_the_listing_follows_the_other_node(books: tuple[InspectionBook, InspectionBook], live_state: LiveState) -> None:
    a, b = books
    everything = lambda _: True  # noqa: E731
    record = await a.create(parse_new_inspection(inspection_body(case_no="DZ-2026-000777")), "key", TTL)
    await until(lambda: b.find(record.id) is not None)
    await a.transition(record.id, "cancelled", cancel_reason="moved")
    await until(lambda: b.find(record.id) is None or b.get(record.id).status == "cancelled")
    [listed], _ = await b.page(everything, 10, case_no="DZ-2026-000777")
    assert listed.status == "cancelled"
    # saved while a node was not listening (it subscribes after its book started): indexed
    # when it subscribes
    c = InspectionBook(a._store, Templates())
    await c.start()
    a.shared = None  # announced to nobody
    unheard = await a.create(parse_new_inspection(inspection_body(case_no="DZ-2026-000778")), "key", TTL)
    sync = RecordSync(live_state, c, "node-c")
    await sync.start()
    try:
        await until(lambda: c.find(unheard.id) is not None)
        assert [r.id for r in (await c.page(everything, 10, case_no="DZ-2026-000778"))[0]] == [unheard.id]
    finally:
        await sync.close()
        await c.close()


async def test_a_book_the_sync_starts_lists_once_and_misses_nothing(
    books: tuple[InspectionBook, InspectionBook], live_state: LiveState
) -> None:
    """As takan/app.py starts it with several nodes: the sync subscribes, then starts the
    book, whose listing covers what was saved before; no second listing for the first round."""
    from testkit.counting import CountingStore

    a, _ = books
    before = await a.create(parse_new_inspection(inspection_body(case_no="DZ-2026-000780")), "key", TTL)
    store = CountingStore(a._store)
    c = InspectionBook(store, Templates())  # type: ignore[arg-type]  # an ObjectStore by delegation
    sync = RecordSync(live_state, c, "node-c")
    await sync.start()
    try:
        assert c.started and c.find(before.id) is not None
        after = await a.create(parse_new_inspection(inspection_body(case_no="DZ-2026-000781")), "key", TTL)
        await until(lambda: c.find(after.id) is not None)
        assert store.listings == 1  # the book's start; its refresh of the first round was not needed
    finally:
        await sync.close()
    assert not c.started  # the sync started it, so it closed it


async def test_publicity_made_or_changed_on_one_node_is_seen_on_the_other(tmp_path: Path, live_state: LiveState) -> None:
    from approval.publicity import Publicity
    from session.recordsync import PUBLICITY_CHANNEL
    from tests.approval.test_publicity import decision, inspection

    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    clock = lambda: datetime.datetime(2024, 10, 8, 2, tzinfo=datetime.timezone.utc)  # noqa: E731
    a, b = Publicity(store, clock=clock), Publicity(store, clock=clock)
    syncs = [RecordSync(live_state, side, f"node-{n}", PUBLICITY_CHANNEL) for n, side in enumerate((a, b))]
    for side, sync in zip((a, b), syncs):
        await side.start()
        await sync.start()
    try:
        made = await a.create(inspection(), decision())
        await until(lambda: b._index.get(made.id) is not None)
        published = await b.publish(made.id)  # the other node reads it afresh under the lock
        await until(lambda: (a._index.get(made.id) or made).state == "published")
        assert (await a.get(made.id)) == published and [e["id"] for e in await a.feed()] == [made.id]
        # one the other node has not heard of yet is looked up in the store
        await syncs[1]._background.close()  # node b stops listening, as if the message were late
        second = await a.create(inspection(2), decision(document_no="JY-2"))
        third = await a.create(inspection(3), decision(document_no="JY-3"))
        assert (await b.get(second.id)).id == second.id
        async with asyncio.timeout(10):  # one it has not heard of, published there (its lock held meanwhile)
            assert (await b.publish(third.id)).state == "published"
        # the same inspection cannot get a second live record through the other node
        with pytest.raises(Conflict):
            await b.create(inspection(2), decision(document_no="JY-2b"))
    finally:
        for side, sync in zip((a, b), syncs):
            await sync.close()
            await side.close()
        await store.close()
