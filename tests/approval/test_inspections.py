"""The inspection book's index (approval/record_index.py), on every store backend.

A listing over many stored records reads about a page of them from the store, however many
there are; the index follows a record another book (a second node) saved once this one
reloads it; memory holds no more records than the book keeps, however many were made.
"""

from __future__ import annotations

import datetime
from typing import Any

from approval.inspections import InspectionBook
from approval.requests import parse_new_inspection
from approval.templates import Templates
from storage.objects import ObjectStore
from testkit.counting import CountingStore
from testkit.records import store_records
from testkit.server import inspection_body

N = 400
#: finished records the books keep in these tests: well below N
KEEP = 20
TTL = datetime.timedelta(hours=1)


def everything(_: Any) -> bool:
    return True


async def test_a_listing_reads_about_a_page_of_records(object_store: ObjectStore) -> None:
    stored = await store_records(object_store, N)
    store = CountingStore(object_store)
    book = InspectionBook(store, Templates(), keep_finished=KEEP)  # type: ignore[arg-type]
    await book.start()
    await book.start()  # idempotent: no second read
    assert store.gets == N + 1  # every record, and the index copy (there is none yet)
    in_play = sum(1 for r in stored if r.status == "scheduled")
    assert book.held == in_play + KEEP

    store.gets = 0
    page, more = await book.page(everything, 50)
    assert [r.id for r in page] == [r.id for r in stored[:50]] and more
    assert store.gets <= 50
    # the next page, from the cursor
    store.gets = 0
    cursor = (page[-1].created_at, page[-1].id)
    page, more = await book.page(everything, 50, after=cursor)
    assert [r.id for r in page] == [r.id for r in stored[50:100]] and more
    assert store.gets <= 50
    # a filter is checked on the index: only what it returns is read
    store.gets = 0
    reviewed = [r.id for r in stored if r.status == "reviewed" and r.inspector_user_id == "u1"]
    page, more = await book.page(lambda s: s.status == "reviewed" and s.inspector_user_id == "u1", 200)
    assert [r.id for r in page] == reviewed and not more
    assert store.gets <= len(reviewed)
    # one case: one read at most
    store.gets = 0
    page, more = await book.page(everything, 50, case_no=stored[7].case_no)
    assert [r.id for r in page] == [stored[7].id] and not more and store.gets <= 1
    # the last page says there is no more
    page, more = await book.page(everything, 50, after=(stored[-31].created_at, stored[-31].id))
    assert [r.id for r in page] == [r.id for r in stored[-30:]] and not more
    # what listings read stays within the book's bounds
    assert book.held <= in_play + KEEP
    # the reports' summaries cover every record
    assert [s.id for s in book.summaries()] == [r.id for r in stored]
    assert book.summaries()[1].as_json()["verdict"] == {"outcome": "pass"}
    await book.close()
    await book.close()


async def test_memory_stays_bounded_as_records_are_made(object_store: ObjectStore) -> None:
    book = InspectionBook(object_store, Templates(), keep_finished=KEEP)
    await book.start()
    for n in range(3 * KEEP):
        record = await book.create(parse_new_inspection(inspection_body(case_no=f"DZ-2026-{n:06d}")), "key", TTL)
        await book.transition(record.id, "cancelled", cancel_reason="test")
        assert book.held <= KEEP + 1
    page, more = await book.page(everything, 200)
    assert len(page) == 3 * KEEP and not more and book.held <= KEEP
    # every record is still listed, counted and found
    assert [s.status for s in book.summaries()] == ["cancelled"] * (3 * KEEP)
    assert (await book.load(page[0].id)).cancel_reason == "test" and book.held <= KEEP
    await book.close()


async def test_the_index_follows_a_record_saved_by_another_node(object_store: ObjectStore) -> None:
    await store_records(object_store, 30)
    here, there = InspectionBook(object_store, Templates(), keep_finished=5), InspectionBook(object_store, Templates())
    await here.start()
    await there.start()
    # made on the other node: unknown here until announced (reload) or refreshed
    made = await there.create(parse_new_inspection(inspection_body(case_no="DZ-2026-900001")), "key", TTL)
    assert (await here.page(everything, 10, case_no="DZ-2026-900001"))[0] == []
    await here.reload(made.id)
    [listed], _ = await here.page(everything, 10, case_no="DZ-2026-900001")
    assert listed.status == "scheduled"
    # changed there: the listing here follows once it reloads
    await there.transition(made.id, "cancelled", cancel_reason="moved")
    await here.reload(made.id)
    cancelled, _ = await here.page(lambda s: s.status == "cancelled", 200)
    assert made.id in [r.id for r in cancelled]
    assert [r.status for r in (await here.page(everything, 10, case_no="DZ-2026-900001"))[0]] == ["cancelled"]
    assert not (await here.page(lambda s: s.status == "scheduled", 200, case_no="DZ-2026-900001"))[0]
    # a record whose announcement was missed is indexed by a refresh
    missed = await there.create(parse_new_inspection(inspection_body(case_no="DZ-2026-900002")), "key", TTL)
    # (and the one reloaded above: a reload does not learn the stored version)
    assert await here.refresh() == 2 and await here.refresh() == 0
    assert [r.id for r in (await here.page(everything, 10, case_no="DZ-2026-900002"))[0]] == [missed.id]
    # a stale index entry (a change whose announcement was missed) is not listed under the old status
    await there.transition(missed.id, "cancelled", cancel_reason="missed")
    assert here.find(missed.id) is not None  # held here in its old (scheduled) state
    here._records.pop(missed.id)  # as a book that let it go: the listing reads it afresh
    assert missed.id not in [r.id for r in (await here.page(lambda s: s.status == "scheduled", 200))[0]]
    # a record gone from the store leaves the index when a listing finds it gone
    gone = (await here.page(lambda s: s.status == "judged", 1))[0][0]
    here._finished.pop(gone.id, None)
    await object_store.delete(f"records/inspections/{gone.id}.json")
    assert gone.id not in [r.id for r in (await here.page(lambda s: s.status == "judged", 200))[0]]
    assert gone.id not in [s.id for s in here.summaries()]
    for book in (here, there):
        await book.close()


async def test_a_change_the_store_refuses_is_not_kept_in_memory(object_store: ObjectStore) -> None:
    """Memory never runs ahead of the store: a cancel whose save fails leaves the record as
    it was (before, the held record said cancelled until a restart, and no webhook went)."""
    import pytest

    from storage.objects import StorageError

    book = InspectionBook(object_store, Templates())
    await book.start()
    record = await book.create(parse_new_inspection(inspection_body()), "key", TTL)
    real_put = object_store.put

    async def refusing(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("AccessDenied")

    object_store.put = refusing  # type: ignore[method-assign]
    with pytest.raises(StorageError):
        await book.transition(record.id, "cancelled", cancel_reason="test")
    object_store.put = real_put  # type: ignore[method-assign]
    held = book.get(record.id)
    assert (held.status, held.cancel_reason) == ("scheduled", None)
    assert [s.status for s in book.summaries()] == ["scheduled"]
    await book.close()
