"""The append-only event log: local journal, group commit, chunks, crash and disk loss."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from evidence.access import AccessLog
from evidence.chainlog import ChainLog
from evidence.journal import Journal
from evidence.localjournal import LocalJournal
from evidence.manifest import prefix_of
from evidence.signing import SigningKeys
from evidence.verify import verify_inspection
from storage.local import LocalObjectStore
from storage.objects import ObjectInfo

INSPECTION = "20261201120000-00112233aabbccdd"


async def open_journal(root: Path, **kwargs) -> tuple[LocalObjectStore, Journal]:
    store = LocalObjectStore(root / "objects")
    await store.start()
    keys = SigningKeys(root / "keys", store)
    await keys.start()
    journal = Journal(store, keys, root / "journal", **kwargs)
    await journal.start()
    return store, journal


async def test_appends_arriving_together_share_an_fsync(tmp_path) -> None:
    store, journal = await open_journal(tmp_path)
    ids = [f"20261201120000-{i:016x}" for i in range(20)]
    for inspection_id in ids:
        await journal.record(inspection_id, "note", "inspector", {"text": "warm up"})
    assert journal.local is not None
    before = journal.local.commits
    await asyncio.gather(*(journal.record(i, "note", "inspector", {"text": str(n)}) for n in range(5) for i in ids))
    commits = journal.local.commits - before
    assert commits < 20, f"100 appends took {commits} group commits"
    await journal.close()
    await store.close()


async def test_chunks_reach_the_store_within_seconds_without_a_seal(tmp_path) -> None:
    store, journal = await open_journal(tmp_path, ship_interval_s=0.2, chunk_lines=4)
    for n in range(10):
        await journal.record(INSPECTION, "note", "inspector", {"n": n})
    await asyncio.sleep(0.8)
    keys = await store.list(prefix_of(INSPECTION) + "events/")
    assert [k.rsplit("/", 1)[1] for k in keys] == ["00000001.jsonl", "00000005.jsonl", "00000009.jsonl"]
    stored = b"".join([await store.get(k) for k in keys])
    assert [json.loads(line)["data"]["n"] for line in stored.splitlines()] == list(range(10))
    # everything is shipped, so a restart would find nothing to recover
    assert LocalJournal(tmp_path / "journal").read(prefix_of(INSPECTION) + "events/") == b""
    await journal.close()
    await store.close()


class CountingStore(LocalObjectStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.put_sizes: list[int] = []

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        self.put_sizes.append(len(data))
        return await super().put(key, data, content_type)


async def test_without_a_journal_each_append_writes_only_its_chunk(tmp_path) -> None:
    store = CountingStore(tmp_path / "objects")
    await store.start()
    log = ChainLog(store, "records/test/log.jsonl", chunk_lines=50)
    for n in range(500):
        await log.append("note", "system", {"n": n})
    assert len(store.put_sizes) == 500
    assert max(store.put_sizes) < 50 * 400, max(store.put_sizes)  # bounded by the chunk, not the log
    assert len(await store.list("records/test/log/")) == 10
    again = ChainLog(store, "records/test/log.jsonl", chunk_lines=50)
    await again.load()
    assert again.count == 500 and again.head == log.head
    await store.close()


KILLED = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from evidence.journal import Journal
    from evidence.signing import SigningKeys
    from storage.local import LocalObjectStore

    async def main(root):
        store = LocalObjectStore(root / "objects")
        await store.start()
        keys = SigningKeys(root / "keys", store)
        await keys.start()
        journal = Journal(store, keys, root / "journal", ship_interval_s=3600)
        await journal.start()
        n = 0
        while True:
            n += 1
            await journal.record(sys.argv[2], "note", "inspector", {"n": n})
            print(n, flush=True)  # acknowledged

    asyncio.run(main(Path(sys.argv[1])))
    """
)


async def test_a_killed_process_loses_no_acknowledged_event(tmp_path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path), INSPECTION], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    assert process.stdout is not None
    acked = 0
    while acked < 300:
        acked = int(process.stdout.readline())
    process.send_signal(signal.SIGKILL)  # right after an acknowledgement
    process.wait(10)
    # nothing was shipped (interval of an hour): everything is in the local journal only
    store, journal = await open_journal(tmp_path)
    events = await journal.events(INSPECTION)
    assert len(events) >= acked and [e["data"]["n"] for e in events[:acked]] == list(range(1, acked + 1))
    # start() shipped the recovered lines; the chain continues and seals
    await journal.seal(INSPECTION, {"id": INSPECTION}, final_event=("session.interrupted", "system", {}))
    report = await verify_inspection(store, INSPECTION)
    assert report.ok, report.problems
    assert report.events_checked == len(events) + 1
    await journal.close()
    await store.close()


async def test_losing_the_node_disk_after_a_seal_loses_nothing_it_covered(tmp_path) -> None:
    node, shared = tmp_path / "node", tmp_path / "shared"
    store = LocalObjectStore(shared / "objects")  # stands for S3: not on the node's disk
    await store.start()
    keys = SigningKeys(node / "keys", store)
    await keys.start()
    journal = Journal(store, keys, node / "journal", ship_interval_s=3600, chunk_lines=7)
    for n in range(20):
        await journal.record(INSPECTION, "note", "inspector", {"n": n})
    await journal.seal(INSPECTION, {"id": INSPECTION}, final_event=("session.ended", "inspector", {}))
    shutil.rmtree(node)  # the node's disk is gone (without even closing the journal)
    report = await verify_inspection(store, INSPECTION)
    assert report.ok, report.problems
    assert report.events_checked == 21
    other = Journal(store, keys)
    assert len(await other.events(INSPECTION)) == 21
    await store.close()


async def test_access_log_is_chunked_and_reads_old_days(tmp_path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    await store.put("records/access-log/2026-11-30.jsonl", b'{"seq":1}\n')
    access = AccessLog(store, tmp_path / "journal", ship_interval_s=0.1)
    await access.start()
    for n in range(3):
        await access.record("evidence.read", "api:k1", {"n": n})
    days = await access.days()
    assert days[0] == "2026-11-30" and len(days) == 2
    assert await access.read("2026-11-30") == b'{"seq":1}\n'
    today = await access.read(days[1])
    assert [json.loads(line)["data"]["n"] for line in today.splitlines()] == [0, 1, 2]
    await asyncio.sleep(0.5)
    assert len(await store.list(f"records/access-log/{days[1]}/")) == 1
    await access.close()
    fresh = AccessLog(store)
    assert await fresh.read(days[1]) == today
    await store.close()


async def test_composed_lines_are_the_canonical_json_of_the_entry(tmp_path) -> None:
    from evidence.chainlog import encode_line, entry_hash

    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    log = ChainLog(store, "records/x/log.jsonl")
    for payload in ({}, {"text": "门头 \"招牌\"\n", "n": 3, "f": 37.4355}, {"nested": [{"b": 1, "a": None}], "e": 1e21}):
        entry = await log.append("note", "api:k1", payload)
        assert entry["hash"] == entry_hash(entry)
        assert log.data().splitlines(keepends=True)[-1] == encode_line(entry)
    await store.close()


async def test_full_journal_files_are_deleted_once_shipped(tmp_path) -> None:
    local = LocalJournal(tmp_path / "j", segment_bytes=2000)
    for n in range(40):
        await local.append("a/", b'{"n":%d,"pad":"................................"}\n' % n)
        if n % 10 == 9:
            local.reset("a/")
    await local.append("b/", b'{"n":1}\n')
    files = sorted(p.name for p in (tmp_path / "j").iterdir())
    assert len(files) <= 2, files  # the full files whose lines were all shipped are gone
    await local.close()
    again = LocalJournal(tmp_path / "j")
    assert again.names() == ["b/"] and again.read("b/") == b'{"n":1}\n'
    await again.close()


async def test_forget_never_drops_a_log_in_use(tmp_path) -> None:
    """forget() while an append is in flight must not lose the event or fork the chain."""
    import asyncio as _asyncio

    from evidence.journal import Journal as _Journal
    from evidence.signing import SigningKeys as _Keys
    from evidence.verify import verify_inspection as _verify
    from storage.local import LocalObjectStore as _Store

    store = _Store(tmp_path / "objects")
    await store.start()
    keys = _Keys(tmp_path / "keys", store)
    await keys.start()
    journal = _Journal(store, keys, tmp_path / "journal")
    await journal.start()
    try:
        await journal.record("i1", "a", "system", {})
        first = journal._logs["i1"]
        await first.flush()  # all shipped: only being in use may keep it now
        assert not first.dirty
        gate = _asyncio.Event()
        append = first.append

        async def held_append(*args, **kwargs):  # the append waits (a slow disk) until released
            await gate.wait()
            return await append(*args, **kwargs)

        first.append = held_append  # type: ignore[method-assign]
        pending = _asyncio.ensure_future(journal.record("i1", "b", "system", {}))
        await _asyncio.sleep(0.05)  # the append is under way
        journal.forget("i1")
        gate.set()
        await pending
        first.append = append  # type: ignore[method-assign]
        await journal.record("i1", "c", "system", {})
        assert journal._logs["i1"] is first  # one copy of the log, never two
        assert [e["type"] for e in await journal.events("i1")] == ["a", "b", "c"]
        await journal.seal("i1", {"id": "i1"})
        report = await _verify(store, "i1")
        assert report.ok, report.problems
    finally:
        await journal.close()
        await keys.close()
        await store.close()


async def test_unused_keys_never_name_a_blob_already_there(tmp_path) -> None:
    """A room's signature count and a record's evidence list restart after a restart or a
    take-over, and a node that stopped may have stored a blob it never logged: the key a
    capture gets is one the log does not name, the store does not hold and no capture in
    flight was given, so no blob is overwritten."""
    store, journal = await open_journal(tmp_path)
    prefix = prefix_of(INSPECTION)
    signature = lambda n: (f"signatures/applicant-{n}.json", f"signatures/applicant-{n}.png")  # noqa: E731
    first = await journal.unused_keys(INSPECTION, signature)
    assert first == [*signature(1)]
    for key in first:
        await journal.record_blob(INSPECTION, key, b"signed before the restart", "image/png", "signature.signed", "applicant")
    # the same count again (a new room after a restart): the logged keys are skipped
    assert await journal.unused_keys(INSPECTION, signature) == [*signature(2)]
    # a stray: stored by a node that stopped before logging it (only the strokes reached the store)
    await store.put(prefix + "signatures/applicant-3.json", b"{}", "application/json")
    # number 2 is still held by the capture it was given to, so the next one skips it too
    assert await journal.unused_keys(INSPECTION, signature) == [*signature(4)]
    still = lambda n: (f"stills/C01/{n}.jpg",)  # noqa: E731
    held = await journal.unused_keys(INSPECTION, still)
    await journal.record_blob(INSPECTION, held[0], b"jpeg", "image/jpeg", "still.captured", "inspector")
    assert await journal.unused_keys(INSPECTION, still, first=1) == ["stills/C01/2.jpg"]
    assert await store.get(prefix + "signatures/applicant-1.png") == b"signed before the restart"
    await journal.close()
    await store.close()


async def test_events_of_parses_only_the_lines_of_its_types(tmp_path) -> None:
    store, journal = await open_journal(tmp_path)
    await journal.record(INSPECTION, "note", "inspector", {"text": '"type":"photo.uploaded" and "key":"photos/a/1.jpg"'})
    await journal.record(INSPECTION, "photo.uploaded", "applicant", {"upload_id": "u1"})
    await journal.record(INSPECTION, "chat", "applicant", {"text": "好"})
    await journal.record(INSPECTION, "timer.overtime_reason", "inspector", {"reason": "大"})
    found = await journal.events_of(INSPECTION, "photo.uploaded", "timer.overtime_reason")
    assert [e["type"] for e in found] == ["photo.uploaded", "timer.overtime_reason"]
    # a key quoted inside a text is not a logged key
    assert await journal.unused_keys(INSPECTION, lambda n: (f"photos/a/{n}.jpg",)) == ["photos/a/1.jpg"]
    await journal.close()
    await store.close()

