"""SpoolingStore: writes through an S3 outage are spooled, survive restarts, drain in order."""

from __future__ import annotations

import builtins
import json
import logging
import uuid
from pathlib import Path

import pytest

from storage.local import LocalObjectStore
from storage.objects import ObjectInfo, ObjectNotFound, ObjectStore, StorageUnavailable
from storage.spool import SpoolingStore
from testkit.servers import MotoServer, s3_store


class RecordingStore:
    """Passes every call to a real store and records the writes it acknowledged, in order."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.writes: list[tuple[str, str]] = []

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        info = await self.inner.put(key, data, content_type)
        self.writes.append(("put", key))
        return info

    async def get(self, key: str) -> bytes:
        return await self.inner.get(key)

    async def head(self, key: str) -> ObjectInfo | None:
        return await self.inner.head(key)

    async def list(self, prefix: str) -> builtins.list[str]:
        return await self.inner.list(prefix)

    async def versions(self, prefix: str) -> dict[str, str | None]:
        return await self.inner.versions(prefix)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)
        self.writes.append(("delete", key))


def spool_files(spool_dir: Path) -> list[str]:
    return sorted(p.name for p in spool_dir.iterdir() if p.is_file())


async def recreate_bucket(endpoint: str, bucket: str) -> None:
    # moto forgets its buckets on restart; a real MinIO outage would not.
    helper = s3_store(endpoint, bucket)
    await helper.start()
    await helper.close()


async def test_outage_spools_in_order_and_drains_in_order(
    s3_outage: MotoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storage.spool")
    s3 = s3_store(s3_outage.endpoint, timeout_s=2.0)
    inner = RecordingStore(s3)
    # A long retry interval keeps the background drain out of the way: this test drains by
    # hand so that it can observe the spool at every step.
    store = SpoolingStore(inner, tmp_path / "spool", retry_interval_s=60, max_backoff_s=60)
    await store.start()
    await store.put("inspections/1/events/000", b"before the outage")
    assert store.depth == 0

    s3_outage.stop()
    payloads = {f"inspections/1/events/{i:03d}": f"event {i}".encode() for i in range(1, 9)}
    for key, data in payloads.items():
        assert await store.put(key, data) == ObjectInfo.of(key, data)
    await store.delete("inspections/1/events/000")
    assert store.depth == len(payloads) + 1
    assert store.oldest_age_s > 0
    assert "spooling writes" in caplog.text
    # One data file per put and one sidecar per write, on disk.
    files = spool_files(tmp_path / "spool")
    assert len([f for f in files if f.endswith(".bin")]) == len(payloads)
    assert len([f for f in files if f.endswith(".json")]) == len(payloads) + 1
    sidecar = json.loads((tmp_path / "spool" / files[1]).read_text())
    assert sidecar["key"] == "inspections/1/events/001"
    assert sidecar["sha256"] == ObjectInfo.of("k", b"event 1").sha256

    # Reads during the outage see the spool.
    assert await store.get("inspections/1/events/003") == b"event 3"
    assert await store.head("inspections/1/events/003") == ObjectInfo.of(
        "inspections/1/events/003", b"event 3"
    )
    assert await store.head("inspections/1/events/000") is None  # spooled delete
    with pytest.raises(ObjectNotFound):
        await store.get("inspections/1/events/000")
    with pytest.raises(StorageUnavailable):  # a listing would be partial: refused
        await store.list("inspections/1/")
    assert await store.drain_now() == 0  # still down: nothing moves, nothing raises
    assert store.depth == len(payloads) + 1

    s3_outage.start()
    await recreate_bucket(s3_outage.endpoint, s3.bucket)
    # The store is back, but older writes are still spooled: a new write queues behind them.
    await store.put("inspections/1/events/009", b"event 9")
    assert store.depth == len(payloads) + 2
    assert inner.writes == [("put", "inspections/1/events/000")]
    # versions of spooled puts are not known yet; the spooled delete hides the stored one
    assert await store.versions("inspections/1/") == {key: None for key in [*payloads, "inspections/1/events/009"]}

    assert await store.drain_now() == len(payloads) + 2
    assert store.depth == 0
    assert store.oldest_age_s == 0.0
    assert spool_files(tmp_path / "spool") == []
    assert "drained" in caplog.text
    expected = [("put", "inspections/1/events/000")]
    expected += [("put", key) for key in payloads]
    expected += [("delete", "inspections/1/events/000"), ("put", "inspections/1/events/009")]
    assert inner.writes == expected
    versions = await store.versions("inspections/1/")
    assert sorted(versions) == sorted([*payloads, "inspections/1/events/009"]) and None not in versions.values()

    # Everything is in S3, as a separate client sees it.
    payloads["inspections/1/events/009"] = b"event 9"
    reader = s3_store(s3_outage.endpoint, s3.bucket)
    await reader.start()
    assert await reader.list("inspections/1/") == sorted(payloads)
    for key, data in payloads.items():
        assert await reader.get(key) == data
    await reader.close()
    # And through the spooling store, now empty, writes go straight through again.
    await store.put("inspections/1/events/010", b"event 10")
    assert store.depth == 0
    assert inner.writes[-1] == ("put", "inspections/1/events/010")
    await store.close()
    await store.close()


async def test_spool_survives_a_restart_and_drains_in_the_background(
    s3_outage: MotoServer, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    bucket = f"takan-test-{uuid.uuid4().hex[:16]}"
    s3_outage.stop()
    # The node boots while S3 is down: start() must not fail, writes are spooled.
    first = SpoolingStore(s3_store(s3_outage.endpoint, bucket, timeout_s=1.0), spool_dir)
    await first.start()
    keys = [f"inspections/2/media/0/{i:06d}.webm" for i in range(5)]
    for key in keys:
        await first.put(key, key.encode(), "video/webm")
    assert first.depth == 5
    assert await first.get(keys[2]) == keys[2].encode()
    await first.close()  # the process stops with the spool full
    assert len(spool_files(spool_dir)) == 10

    s3_outage.start()
    inner = RecordingStore(s3_store(s3_outage.endpoint, bucket))
    second = SpoolingStore(inner, spool_dir, retry_interval_s=0.05, max_backoff_s=0.2)
    await second.start()  # finds the spool; its drain task has not run yet
    assert second.depth == 5
    assert await second.wait_drained(timeout=10)
    assert second.depth == 0
    assert inner.writes == [("put", key) for key in keys]
    assert spool_files(spool_dir) == []
    assert await second.list("inspections/2/") == keys
    assert await second.get(keys[4]) == keys[4].encode()
    await second.close()


async def test_start_cleans_up_after_a_crash_and_quarantines_bad_entries(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    good = {
        "version": 1, "seq": 2, "op": "put", "key": "a/good", "content_type": "text/plain",
        "size": 4, "sha256": ObjectInfo.of("a/good", b"good").sha256, "spooled_at": 1.0,
    }
    (spool_dir / f"{1:020d}.bin").write_bytes(b"never acknowledged")  # no sidecar
    (spool_dir / f"{2:020d}.bin").write_bytes(b"good")
    (spool_dir / f"{2:020d}.json").write_text(json.dumps(good))
    (spool_dir / f"{3:020d}.bin").write_bytes(b"whatever")
    (spool_dir / f"{3:020d}.json").write_text("{not json")
    tampered = dict(good, seq=4, key="a/tampered")
    (spool_dir / f"{4:020d}.bin").write_bytes(b"evil")  # does not match the sha256
    (spool_dir / f"{4:020d}.json").write_text(json.dumps(tampered))
    (spool_dir / f"{5:020d}.json~1234.tmp").write_text("{}")  # interrupted write

    objects = LocalObjectStore(tmp_path / "objects")
    store = SpoolingStore(objects, spool_dir, retry_interval_s=0.05, max_backoff_s=0.1)
    await store.start()
    assert store.depth == 2  # the good entry and the tampered one
    assert await store.wait_drained(timeout=5)
    assert await objects.list("") == ["a/good"]
    assert await objects.get("a/good") == b"good"
    assert spool_files(spool_dir) == []
    # named by the time too: sequence numbers start again once the spool is empty
    assert sorted(p.name.rsplit("-", 1)[1] for p in (spool_dir / "quarantine").iterdir()) == [
        f"{3:020d}.bin", f"{3:020d}.json", f"{4:020d}.bin", f"{4:020d}.json",
    ]
    await store.close()


async def test_without_an_outage_writes_go_straight_through(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    store = SpoolingStore(objects, tmp_path / "spool")
    with pytest.raises(RuntimeError, match="start"):
        await store.put("a", b"1")
    await store.start()
    await store.start()
    assert await store.put("a/b", b"1") == ObjectInfo.of("a/b", b"1")
    assert await objects.get("a/b") == b"1"
    assert await store.list("a/") == ["a/b"]
    await store.delete("a/b")
    assert await store.head("a/b") is None
    assert store.depth == 0
    assert await store.wait_drained(timeout=0.1)
    await store.close()
    await store.close()

