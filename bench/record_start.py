"""How long the inspection book's start takes over many stored records, with and without the
index's stored copy (approval/index_copy.py; issue 13).

The anchor is the start without a copy, which reads every record: what every start did before
the copy existed (and what a start does on a store that has none). Then, in the same run and
on the same records: a start from the copy the first one stored at close; a start after some
records changed behind the book's back (another node, a restore) and some were added; and the
refresh a node with several peers runs every few minutes (one listing, no reads when nothing
changed).

    .venv/bin/python bench/record_start.py [--records 20000] [--store local|s3|both] [--changed 1]

``s3`` runs moto's S3 server (testkit.servers), as the tests do. Prints a Markdown table.

``--deliveries N`` measures the webhook outbox the same way over N finished deliveries (one in
200 pending), and the memory it holds for them (tracemalloc) against holding every delivery
whole, as the outbox did before it kept summaries (the same Delivery objects, read in the same
run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import AsyncIterator, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approval.inspections import RECORD_PREFIX, InspectionBook  # noqa: E402
from approval.outbox import RECORD_PREFIX as DELIVERY_PREFIX, Attempt, Delivery, Outbox  # noqa: E402
from approval.templates import Templates  # noqa: E402
from storage.local import LocalObjectStore  # noqa: E402
from storage.objects import ObjectStore  # noqa: E402
from testkit.counting import CountingStore  # noqa: E402
from testkit.records import record  # noqa: E402
from testkit.servers import MotoServer, s3_store  # noqa: E402


#: One record in this many is in play (scheduled); the others are finished.
IN_PLAY_EVERY = 200


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def timed(step: Callable[[], object]) -> float:
    began = time.perf_counter()
    result = step()
    if asyncio.iscoroutine(result):
        await result
    return time.perf_counter() - began


async def measure(name: str, store: ObjectStore, records: int, changed_percent: float) -> list[list[str]]:
    say(f"{name}: storing {records} records")
    began = time.perf_counter()
    for first in range(0, records, 2000):
        await put_records(store, range(first, min(first + 2000, records)))
        say(f"  {min(first + 2000, records)} / {records} stored ({time.perf_counter() - began:.0f} s)")
    rows: list[list[str]] = []

    async def start(label: str) -> InspectionBook:
        counting = CountingStore(store)
        book = InspectionBook(counting, Templates())
        seconds = await timed(book.start)
        rows.append([name, label, f"{seconds:.2f}", str(counting.gets), str(len(book.summaries()))])
        say(f"  {label}: {seconds:.2f} s, {counting.gets} reads")
        return book

    book = await start("no copy: every record read (the anchor)")
    write_s = await timed(lambda: book.index_copy.write(book._rows()))
    size = len(await store.get("indexes/inspections.json.gz"))
    say(f"  the copy stored in {write_s:.2f} s ({size // 1024} kB)")
    rows.append([name, f"storing the copy ({size // 1024} kB)", f"{write_s:.2f}", "", ""])
    await book.close()
    book = await start("from the copy")
    await book.close()
    # changed behind the book's back: finished records reviewed, and new ones added
    count = max(1, int(records * changed_percent / 100))
    for n in range(0, count):
        changed = record(n * (records // count), "reviewed")
        await store.put(f"{RECORD_PREFIX}{changed.id}.json", changed.to_json(), "application/json")
    await put_records(store, range(records, records + count // 2))
    book = await start(f"from the copy, {count} records changed and {count // 2} added since")
    refresh_s = await timed(book.refresh)
    rows.append([name, "refresh with nothing changed (one listing)", f"{refresh_s:.2f}", "0", ""])
    await book.close()
    return rows


async def put_records(store: ObjectStore, numbers: range) -> None:
    """Records ``numbers``, finished but one in IN_PLAY_EVERY (a province's records are
    mostly finished; the book holds the others whole, read at every start)."""
    made = [record(n, "scheduled" if n % IN_PLAY_EVERY == 0 else ("judged", "reviewed", "cancelled")[n % 3])
            for n in numbers]
    for first in range(0, len(made), 50):
        await asyncio.gather(*(store.put(f"{RECORD_PREFIX}{r.id}.json", r.to_json(), "application/json")
                               for r in made[first : first + 50]))


def delivery(n: int) -> Delivery:
    """Delivery ``n``: a judged inspection's webhook as the approval core gets it, delivered
    at the first attempt (pending for one in IN_PLAY_EVERY)."""
    inspection = {"id": f"20261204{n:06d}-{n:016x}", "case_no": f"DZ-2026-{n:06d}", "status": "judged",
                  "item_code": "food-business-license", "verdict": {"outcome": "pass", "reasons": [
                      {"rule": "required-checkpoints", "passed": True, "message": "所有必查项均已取证"}]},
                  "manifest": {"sha256": "ab" * 32, "url": f"https://takan.example/api/v1/inspections/{n}/manifest"}}
    pending = n % IN_PLAY_EVERY == 0
    return Delivery(
        delivery_id=f"dlv_{n:032x}", seq=n, event="inspection.judged", callback_url="https://approval.example/hooks",
        api_key_id="core", occurred_at="2026-12-04T01:00:00.000Z",
        body=json.dumps({"event": "inspection.judged", "delivery_id": f"dlv_{n:032x}", "inspection": inspection},
                        ensure_ascii=False).encode(),
        state="pending" if pending else "delivered", next_attempt_at="2026-12-04T01:00:00.000Z" if pending else None,
        attempts=() if pending else (Attempt(at="2026-12-04T01:00:00.100Z", duration_ms=40, status=204),),
        delivered_at=None if pending else "2026-12-04T01:00:00.100Z",
    )


async def measure_outbox(name: str, store: ObjectStore, count: int) -> list[list[str]]:
    say(f"{name}: storing {count} webhook deliveries")
    for first in range(0, count, 50):
        made = [delivery(n) for n in range(first, min(first + 50, count))]
        await asyncio.gather(*(store.put(d.key, d.to_record(), "application/json") for d in made))
    rows: list[list[str]] = []
    # the anchor: every delivery held whole, as the outbox did before
    keys = await store.list(DELIVERY_PREFIX)
    tracemalloc.start()
    whole = {d.delivery_id: d for d in [Delivery.from_record(await store.get(key)) for key in keys]}
    anchor = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rows.append([name, f"{len(whole)} deliveries held whole (the outbox before)", "", str(len(keys)), f"{anchor / 2**20:.1f} MB"])
    say(f"  every delivery held whole: {anchor / 2**20:.1f} MB")
    del whole
    # each start twice: timed, then under tracemalloc for what it holds (tracemalloc slows it)
    for label in ("no copy: every delivery read", "from the copy"):
        seconds, reads, held = 0.0, 0, 0
        for traced in (False, True):
            if label.startswith("no copy"):
                await store.delete("indexes/webhooks.json.gz")
            counting = CountingStore(store)
            outbox = Outbox(counting)  # type: ignore[arg-type]
            if traced:
                tracemalloc.start()
                await outbox.start()
                held = tracemalloc.get_traced_memory()[0]
                tracemalloc.stop()
            else:
                seconds = await timed(outbox.start)
                reads = counting.gets
            await outbox.close()
        rows.append([name, f"outbox: {label}", f"{seconds:.2f}", str(reads), f"{held / 2**20:.1f} MB"])
        say(f"  outbox {label}: {seconds:.2f} s, {reads} reads, {held / 2**20:.1f} MB")
    return rows


async def local_store() -> AsyncIterator[ObjectStore]:
    with tempfile.TemporaryDirectory(prefix="takan-record-start-") as root:
        store = LocalObjectStore(Path(root))
        await store.start()
        yield store
        await store.close()


async def s3() -> AsyncIterator[ObjectStore]:
    server = MotoServer()
    server.start()
    try:
        store = s3_store(server.endpoint)
        await store.start()
        yield store
        await store.close()
    finally:
        server.discard()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--store", choices=("local", "s3", "both"), default="both")
    parser.add_argument("--changed", type=float, default=1.0, help="percent of records changed behind the book's back")
    parser.add_argument("--deliveries", type=int, default=0, help="also measure the webhook outbox over this many")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows: list[list[str]] = []
    stores = {"local": local_store, "s3": s3}
    for name in ("local", "s3") if args.store == "both" else (args.store,):
        async for store in stores[name]():
            if args.records:
                rows += await measure(name, store, args.records, args.changed)
            if args.deliveries:
                rows += await measure_outbox(name, store, args.deliveries)
    print(f"{args.records} records; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB\n")
    print("| store | start | seconds | store reads | records indexed (outbox: memory held) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    asyncio.run(main())
