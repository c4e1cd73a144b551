"""Segment filing: numbering across restarts, and gaps marked in the log (issue 10)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from evidence.filing import SegmentFiling
from evidence.journal import Journal
from evidence.signing import SigningKeys
from evidence.verify import verify_inspection
from storage.local import LocalObjectStore

T0 = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)


@dataclass(frozen=True)
class FakeSegment:
    track: str
    seq: int
    media_start_ms: int
    duration_ms: int
    gaps: tuple[tuple[int, int], ...] = ()
    codec: str = "vp8"
    frames: int = 10
    width: int = 320
    height: int = 240
    data: bytes = b"not really webm"

    @property
    def wall_start(self) -> datetime.datetime:
        return T0 + datetime.timedelta(milliseconds=self.media_start_ms)

    @property
    def wall_end(self) -> datetime.datetime:
        return self.wall_start + datetime.timedelta(milliseconds=self.duration_ms)


async def test_gaps_are_marked_and_numbering_continues(tmp_path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    keys = SigningKeys(tmp_path / "keys", store)
    await keys.start()
    journal = Journal(store, keys)
    filing = SegmentFiling(journal)
    file = await filing.filer("i1")
    await file(FakeSegment("applicant-video", 1, 0, 4000))
    await file(FakeSegment("applicant-video", 2, 12000, 4000, gaps=((4000, 12000),)))
    again = await filing.filer("i1")  # a room reopened later
    await again(FakeSegment("applicant-video", 1, 16000, 4000))
    events = await journal.events("i1")
    gap = next(e for e in events if e["type"] == "media.gap")
    assert gap["data"] == {"track": "applicant-video", "start": "2026-12-01T08:00:04.000+00:00",
                           "end": "2026-12-01T08:00:12.000+00:00", "duration_ms": 8000}
    seqs = [e["data"]["seq"] for e in events if e["type"] == "media.segment"]
    assert seqs == [1, 2, 3]
    await journal.seal("i1", {"id": "i1"})
    report = await verify_inspection(store, "i1")
    assert report.ok, report.problems  # the gap is an event like any other: the chain holds
    await keys.close()
    await store.close()


async def test_a_dead_node_s_unlogged_segment_is_recovered_and_not_overwritten(tmp_path) -> None:
    """Node A stored segment 2 and died before shipping its event; node B takes over
    (docs/nodes.md): it logs the stray object, and its own segments number past it."""
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    keys = SigningKeys(tmp_path / "keys", store)
    await keys.start()
    node_a = Journal(store, keys)
    file = await SegmentFiling(node_a).filer("i1")
    await file(FakeSegment("applicant-video", 1, 0, 4000))
    await store.put("inspections/i1/media/applicant-video/000002.webm", b"segment two of node a", "video/webm")

    node_b = Journal(store, keys)  # continues from the store
    assert await node_b.log_strays("i1", "stored by node node-a") == ["media/applicant-video/000002.webm"]
    assert await node_b.log_strays("i1", "again") == []  # now logged
    again = await SegmentFiling(node_b).filer("i1")
    await again(FakeSegment("applicant-video", 1, 8000, 4000))
    events = await node_b.events("i1")
    assert [e["type"] for e in events] == ["media.segment", "evidence.recovered", "media.segment"]
    assert events[1]["data"]["reason"] == "stored by node node-a" and events[1]["data"]["size"] == 21
    assert events[2]["data"]["seq"] == 3
    assert await store.get("inspections/i1/media/applicant-video/000002.webm") == b"segment two of node a"
    await node_b.seal("i1", {"id": "i1"})
    report = await verify_inspection(store, "i1")
    assert report.ok, report.problems
    await keys.close()


async def test_a_segment_the_store_refuses_for_a_while_is_tried_again(tmp_path, monkeypatch) -> None:
    """An S3 error that is not an outage (the spool takes those) or a full disk: the segment is
    stored once the store takes it again, not dropped."""
    import evidence.filing
    from storage.objects import StorageError

    class Refusing(LocalObjectStore):
        refusals = 2

        async def put(self, key, data, content_type="application/octet-stream"):
            if key.startswith("inspections/i1/media/") and self.refusals:
                self.refusals -= 1
                raise StorageError("InternalError: We encountered an internal error. Please try again.")
            return await super().put(key, data, content_type)

    monkeypatch.setattr(evidence.filing, "RETRY_PAUSES_S", (0.01, 0.01, 0.01))
    store = Refusing(tmp_path / "objects")
    await store.start()
    keys = SigningKeys(tmp_path / "keys", store)
    await keys.start()
    journal = Journal(store, keys)
    file = await SegmentFiling(journal).filer("i1")
    await file(FakeSegment("applicant-video", 1, 0, 4000, data=b"footage"))
    assert store.refusals == 0
    assert await store.get("inspections/i1/media/applicant-video/000001.webm") == b"footage"
    assert [e["data"]["seq"] for e in await journal.events("i1") if e["type"] == "media.segment"] == [1]
    await keys.close()
    await store.close()
