"""Backup -> wipe -> restore -> every inspection verifies; damaged backups are refused by name."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archive.backup import (
    BACKUP_MANIFEST,
    BackupError,
    CorruptBackup,
    RestoreRefused,
    backup,
    restore,
    verify_all,
)
from storage.local import LocalObjectStore
from testkit.archive import Sealed, make_store


@pytest.fixture
async def sealed(tmp_path: Path) -> AsyncIterator[Sealed]:
    sealed = await make_store(tmp_path / "data", count=2)
    # an unsealed (live) inspection: backed up, but not verified by verify_all
    await sealed.store.put("inspections/20261126030000-live0000live0000/events.jsonl", b"")
    yield sealed
    await sealed.store.close()


async def snapshot(store: LocalObjectStore) -> dict[str, bytes]:
    return {key: await store.get(key) for key in await store.list("")}


@pytest.mark.parametrize("name", ["takan.tar", "takan.tar.gz"])
async def test_backup_wipe_restore_verify(sealed: Sealed, tmp_path: Path, name: str) -> None:
    before = await snapshot(sealed.store)
    assert {k.split("/")[0] for k in before} == {"inspections", "records", "system"}
    seen: list[tuple[int, int, str]] = []
    info = await backup(sealed.store, tmp_path / name, lambda d, t, w: seen.append((d, t, w)))
    assert info.objects == len(before) and info.bytes == sum(map(len, before.values()))
    assert seen[-1] == (len(before), len(before), "done")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left

    with tarfile.open(tmp_path / name, "r:*") as tar:
        members = tar.getmembers()
        assert members[0].name == BACKUP_MANIFEST
        manifest = json.load(tar.extractfile(members[0]))  # type: ignore[arg-type]
    assert manifest["object_count"] == len(before) and manifest["created_at"] == info.created_at
    assert manifest["tool"]["name"] == "takan" and manifest["tool"]["version"]
    assert {e["key"] for e in manifest["objects"]} == set(before)

    # wipe: the machine is gone; a new, empty data directory
    await sealed.store.close()
    shutil.rmtree(sealed.data_dir / "objects")
    store = LocalObjectStore(tmp_path / "restored")
    await store.start()
    progress: list[str] = []
    restored = await restore(store, tmp_path / name, lambda d, t, w: progress.append(w))
    assert restored.objects == len(before) and restored.replaced == 0
    assert progress[-1] == "restoring done"
    assert await snapshot(store) == before

    results = await verify_all(store)
    assert [i for i, _ in results] == sealed.ids
    assert all(report.ok for _, report in results), [r.problems for _, r in results]
    assert all(report.objects_checked == 7 for _, report in results)


def flip_member_byte(path: Path, member: str, offset: int = 5) -> None:
    """Flip one byte inside a member's data in an uncompressed tar."""
    with tarfile.open(path) as tar:
        info = tar.getmember(member)
    data = bytearray(path.read_bytes())
    data[info.offset_data + offset] ^= 0x01
    path.write_bytes(bytes(data))


async def test_a_corrupted_member_is_refused_by_name(sealed: Sealed, tmp_path: Path) -> None:
    path = tmp_path / "takan.tar"
    await backup(sealed.store, path)
    victim = f"inspections/{sealed.ids[1]}/media/applicant-video/000002.webm"
    flip_member_byte(path, "objects/" + victim)
    target = LocalObjectStore(tmp_path / "restored")
    await target.start()
    with pytest.raises(CorruptBackup) as caught:
        await restore(target, path)
    assert caught.value.where == victim
    assert victim in str(caught.value) and "sha256" in str(caught.value)
    assert await target.list("") == []  # nothing was written


async def test_a_damaged_manifest_or_missing_member_is_refused(sealed: Sealed, tmp_path: Path) -> None:
    path = tmp_path / "takan.tar"
    await backup(sealed.store, path)
    target = LocalObjectStore(tmp_path / "restored")
    await target.start()

    # drop one member: the manifest lists it, the file lacks it
    shorter = tmp_path / "shorter.tar"
    dropped = f"records/inspections/{sealed.ids[0]}.json"
    with tarfile.open(path) as source, tarfile.open(shorter, "w") as out:
        for info in source:
            if info.name != "objects/" + dropped:
                out.addfile(info, source.extractfile(info))
    with pytest.raises(CorruptBackup, match="not in the file") as caught:
        await restore(target, shorter)
    assert caught.value.where == dropped

    # a truncated file
    truncated = tmp_path / "truncated.tar.gz"
    await backup(sealed.store, truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    with pytest.raises(CorruptBackup, match="damaged"):
        await restore(target, truncated)

    # not a Takan backup at all
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as out:
        out.add(__file__, arcname="hello.py")
    with pytest.raises(CorruptBackup, match="not a Takan backup"):
        await restore(target, foreign)
    assert await target.list("") == []


async def test_restore_into_a_store_in_use_needs_overwrite(sealed: Sealed, tmp_path: Path) -> None:
    path = tmp_path / "takan.tar"
    await backup(sealed.store, path)
    record = f"records/inspections/{sealed.ids[0]}.json"
    original = await sealed.store.get(record)
    await sealed.store.put(record, b"{}")
    with pytest.raises(RestoreRefused, match="overwrite=True"):
        await restore(sealed.store, path)
    info = await restore(sealed.store, path, overwrite=True)
    assert info.replaced == info.objects
    assert await sealed.store.get(record) == original


async def test_backups_are_never_overwritten(sealed: Sealed, tmp_path: Path) -> None:
    path = tmp_path / "takan.tar"
    await backup(sealed.store, path)
    with pytest.raises(BackupError, match="already exists"):
        await backup(sealed.store, path)
    with pytest.raises(BackupError, match="not a directory"):
        await backup(sealed.store, tmp_path / "nowhere" / "takan.tar")


async def test_verify_all_names_a_tampered_inspection(sealed: Sealed) -> None:
    key = f"inspections/{sealed.ids[0]}/stills/storefront/1.jpg"
    data = bytearray(await sealed.store.get(key))
    data[100] ^= 0xFF
    await sealed.store.put(key, bytes(data))
    results = dict(await verify_all(sealed.store))
    assert not results[sealed.ids[0]].ok
    assert results[sealed.ids[0]].first_problem.where == "stills/storefront/1.jpg"  # type: ignore[union-attr]
    assert results[sealed.ids[1]].ok
