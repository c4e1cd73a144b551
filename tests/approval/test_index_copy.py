"""The index's stored copy (approval/index_copy.py), on every store backend.

A start after a copy was stored reads only the records in play and those changed since; a
missing, unreadable or foreign copy costs reads, never a wrong summary; a refresh mends a
summary left stale by a missed announcement; the book writes its copy again once enough
has changed.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from approval import index_copy
from approval.index_copy import FORMAT
from approval.inspections import INDEX_COPY_KEY, InspectionBook
from approval.templates import Templates
from storage.objects import ObjectStore
from testkit.counting import CountingStore
from testkit.records import record, store_records

N = 200
KEEP = 10


def rows(book: InspectionBook) -> list[list[object]]:
    return [summary.row() for summary in book.summaries()]


async def started(store: ObjectStore) -> tuple[InspectionBook, CountingStore]:
    counting = CountingStore(store)
    book = InspectionBook(counting, Templates(), keep_finished=KEEP)  # type: ignore[arg-type]
    await book.start()
    return book, counting


async def test_a_start_reads_only_what_changed_since_the_copy(object_store: ObjectStore) -> None:
    stored = await store_records(object_store, N)
    in_play = sum(1 for r in stored if r.status == "scheduled")
    first, counting = await started(object_store)
    assert counting.gets == N + 1  # no copy yet: every record
    expected = rows(first)
    await first.close()  # stores the copy
    copy = json.loads(gzip.decompress(await object_store.get(INDEX_COPY_KEY)))
    assert copy["format"] == FORMAT and copy["of"] == "records/inspections/" and len(copy["rows"]) == N

    second, counting = await started(object_store)
    assert counting.gets == 1 + in_play  # the copy, and the records in play (held whole)
    assert rows(second) == expected
    await second.close()  # nothing changed: the copy is not written again
    # changed behind the book's back (another node, a restore): those are read, and only those
    changed = stored[1]
    assert changed.status == "judged"
    changed.status = "reviewed"
    await object_store.put(f"records/inspections/{changed.id}.json", changed.to_json(), "application/json")
    added = record(N + 5)
    await object_store.put(f"records/inspections/{added.id}.json", added.to_json(), "application/json")
    await object_store.delete(f"records/inspections/{stored[2].id}.json")

    third, counting = await started(object_store)
    assert counting.gets == 1 + in_play + 2
    by_id = {summary.id: summary for summary in third.summaries()}
    assert by_id[changed.id].status == "reviewed" and added.id in by_id and stored[2].id not in by_id
    assert len(by_id) == N
    await third.close()


@pytest.mark.parametrize("copy", [b"not gzip", gzip.compress(b"[1, 2]"), gzip.compress(
    json.dumps({"format": FORMAT, "of": "records/publicity/", "rows": []}).encode())])
async def test_an_unusable_copy_costs_reads_not_summaries(object_store: ObjectStore, copy: bytes) -> None:
    await store_records(object_store, 40)
    first, _ = await started(object_store)
    expected = rows(first)
    await first.close()
    await object_store.put(INDEX_COPY_KEY, copy)
    second, counting = await started(object_store)
    assert counting.gets == 41 and rows(second) == expected
    await second.close()


async def test_a_row_of_another_version_is_not_used(object_store: ObjectStore) -> None:
    await store_records(object_store, 20)
    first, _ = await started(object_store)
    expected = rows(first)
    await first.close()
    copy = json.loads(gzip.decompress(await object_store.get(INDEX_COPY_KEY)))
    for row in copy["rows"]:
        row[0] += 1  # another version of each record
        row[4] = "reviewed"  # with a summary that is not the stored record's
    await object_store.put(INDEX_COPY_KEY, gzip.compress(json.dumps(copy).encode()))
    second, counting = await started(object_store)
    assert counting.gets == 21 and rows(second) == expected
    await second.close()


async def test_a_refresh_mends_a_summary_a_missed_announcement_left_stale(object_store: ObjectStore) -> None:
    stored = await store_records(object_store, 30)
    here, there = InspectionBook(object_store, Templates(), keep_finished=2), InspectionBook(object_store, Templates())
    await here.start()
    await there.start()
    judged = next(r for r in stored[-10:] if r.status == "judged")
    await there.transition(judged.id, "reviewed")  # announced to nobody
    here._finished.pop(judged.id, None)  # not held here: only the summary tells its status
    assert {s.id: s.status for s in here.summaries()}[judged.id] == "judged"
    assert await here.refresh() == 1
    assert {s.id: s.status for s in here.summaries()}[judged.id] == "reviewed"
    assert await here.refresh() == 0
    # one disposed of (gone from the store) leaves the index at the next refresh
    disposed = next(r for r in stored[:10] if r.status == "cancelled")
    here._finished.pop(disposed.id, None)
    await object_store.delete(f"records/inspections/{disposed.id}.json")
    assert await here.refresh() == 0 and disposed.id not in {s.id for s in here.summaries()}
    for book in (here, there):
        await book.close()


async def test_the_book_stores_its_copy_once_enough_has_changed(
    object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_copy, "COPY_AFTER_CHANGES", 5)
    stored = await store_records(object_store, 20)
    book = InspectionBook(object_store, Templates())
    book.index_copy.every_s = 0.05
    await book.start()  # 20 records read, none in the copy: stored at once
    assert len(json.loads(gzip.decompress(await object_store.get(INDEX_COPY_KEY)))["rows"]) == 20
    await object_store.delete(INDEX_COPY_KEY)
    for r in [r for r in stored if r.status == "judged"][:5]:
        await book.transition(r.id, "reviewed")
    for _ in range(100):
        await asyncio.sleep(0.05)
        if await object_store.head(INDEX_COPY_KEY) is not None:
            break
    copy = json.loads(gzip.decompress(await object_store.get(INDEX_COPY_KEY)))
    assert sum(1 for row in copy["rows"] if row[4] == "reviewed") == sum(1 for r in stored if r.status == "reviewed") + 5
    await book.close()
    await book.close()
