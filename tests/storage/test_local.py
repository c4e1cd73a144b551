"""LocalObjectStore specifics: files on disk, atomic writes, containment."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.keys import InvalidKey
from storage.local import LocalObjectStore


async def test_objects_are_plain_files_under_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "data")
    await store.start()
    await store.put("inspections/1/events.jsonl", b"{}\n")
    assert (tmp_path / "data/inspections/1/events.jsonl").read_bytes() == b"{}\n"
    # No temporary file is left next to the object.
    assert sorted(p.name for p in (tmp_path / "data/inspections/1").iterdir()) == ["events.jsonl"]
    await store.close()


async def test_nothing_is_written_outside_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "data")
    await store.start()
    for bad in ["../outside", "../../outside", "/tmp/outside", "a/../../outside"]:
        with pytest.raises(InvalidKey):
            await store.put(bad, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    await store.close()


async def test_leftover_temporary_files_are_not_objects(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    await store.start()
    await store.put("a/b", b"1")
    (tmp_path / "a" / "b~0123.tmp").write_bytes(b"half written")  # a crash mid-write
    assert await store.list("") == ["a/b"]
    await store.close()


async def test_an_object_cannot_also_be_a_directory(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    await store.start()
    await store.put("a/b", b"1")
    with pytest.raises(InvalidKey, match="cannot hold both"):
        await store.put("a", b"2")
    with pytest.raises(InvalidKey, match="cannot hold both"):
        await store.put("a/b/c", b"3")
    # Once 'a/b' is gone its emptied directory is pruned, so 'a' becomes possible.
    await store.delete("a/b")
    await store.put("a", b"4")
    assert await store.list("") == ["a"]
    await store.close()


async def test_use_before_start_says_what_to_do(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    with pytest.raises(RuntimeError, match="start"):
        await store.put("a", b"1")
    with pytest.raises(RuntimeError, match="start"):
        await store.list("")
