"""The ObjectStore contract, run on every backend (local directory and S3 via moto)."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from storage.keys import InvalidKey
from storage.objects import ObjectInfo, ObjectNotFound, ObjectStore


async def test_round_trip(object_store: ObjectStore) -> None:
    data = b"segment bytes"
    info = await object_store.put("inspections/1/media/0/000001.webm", data, "video/webm")
    assert info == ObjectInfo(
        key="inspections/1/media/0/000001.webm",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    assert await object_store.get(info.key) == data
    assert await object_store.head(info.key) == info
    assert await object_store.list("inspections/1/") == [info.key]

    await object_store.delete(info.key)
    assert await object_store.head(info.key) is None
    assert await object_store.list("inspections/1/") == []
    with pytest.raises(ObjectNotFound):
        await object_store.get(info.key)


async def test_binary_data_survives_exactly(object_store: ObjectStore) -> None:
    data = bytes(range(256)) * 64 + b"\x00\r\n\xff" + random.Random(7).randbytes(100_000)
    info = await object_store.put("blobs/binary.bin", data)
    assert await object_store.get("blobs/binary.bin") == data
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()


async def test_empty_object(object_store: ObjectStore) -> None:
    info = await object_store.put("blobs/empty", b"")
    assert info.size == 0
    assert info.sha256 == hashlib.sha256(b"").hexdigest()
    assert await object_store.get("blobs/empty") == b""
    assert await object_store.head("blobs/empty") == info


async def test_large_object_in_one_piece(object_store: ObjectStore) -> None:
    # Larger than S3's minimum multipart part size: still uploaded and read back intact.
    data = random.Random(1).randbytes(6 * 1024 * 1024 + 17)
    info = await object_store.put("media/big.webm", data, "video/webm")
    assert await object_store.get("media/big.webm") == data
    assert await object_store.head("media/big.webm") == info


async def test_overwrite_replaces_the_object(object_store: ObjectStore) -> None:
    await object_store.put("manifest.json", b"first version")
    second = await object_store.put("manifest.json", b"second, longer version")
    assert await object_store.get("manifest.json") == b"second, longer version"
    assert await object_store.head("manifest.json") == second
    assert await object_store.list("") == ["manifest.json"]


async def test_missing_key(object_store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        await object_store.get("inspections/404/events.jsonl")
    assert isinstance(caught.value, KeyError)
    assert caught.value.key == "inspections/404/events.jsonl"
    assert "inspections/404/events.jsonl" in str(caught.value)
    assert await object_store.head("inspections/404/events.jsonl") is None
    await object_store.delete("inspections/404/events.jsonl")  # not an error


async def test_a_prefix_of_an_existing_key_is_not_an_object(object_store: ObjectStore) -> None:
    await object_store.put("inspections/1/events.jsonl", b"{}")
    assert await object_store.head("inspections/1") is None
    with pytest.raises(ObjectNotFound):
        await object_store.get("inspections/1")


async def test_list_is_sorted_and_isolated_by_prefix(object_store: ObjectStore) -> None:
    keys = [
        "inspections/1/events.jsonl",
        "inspections/1/media/0/000002.webm",
        "inspections/1/media/0/000010.webm",
        "inspections/1/media/1/000001.webm",
        "inspections/1/stills/a.jpg",
        "inspections/10/events.jsonl",
        "inspections/1x/events.jsonl",
        "inspections/2/events.jsonl",
        "ledger/000001.json",
    ]
    shuffled = keys[:]
    random.Random(3).shuffle(shuffled)
    for key in shuffled:
        await object_store.put(key, key.encode())

    assert await object_store.list("") == sorted(keys)
    assert await object_store.list("inspections/1/") == [k for k in keys if k.startswith("inspections/1/")]
    assert await object_store.list("inspections/1/media/0/") == [
        "inspections/1/media/0/000002.webm",
        "inspections/1/media/0/000010.webm",
    ]
    # A prefix is a plain string prefix, not a directory.
    assert await object_store.list("inspections/1") == [
        k for k in sorted(keys) if k.startswith("inspections/1")
    ]
    assert await object_store.list("inspections/1/media/0/00001") == ["inspections/1/media/0/000010.webm"]
    assert await object_store.list("inspections/3/") == []
    assert await object_store.list("nothing") == []


async def test_invalid_keys_are_refused_before_the_backend(object_store: ObjectStore) -> None:
    for bad in ["../escape", "/abs", "a//b", "a\\b", "a\x00b"]:
        with pytest.raises(InvalidKey):
            await object_store.put(bad, b"x")
        with pytest.raises(InvalidKey):
            await object_store.get(bad)
        with pytest.raises(InvalidKey):
            await object_store.head(bad)
        with pytest.raises(InvalidKey):
            await object_store.delete(bad)
    with pytest.raises(InvalidKey):
        await object_store.list("../")
    assert await object_store.list("") == []


async def test_concurrent_puts_and_deletes(object_store: ObjectStore) -> None:
    keys = [f"inspections/7/media/{i % 3}/{i:06d}.webm" for i in range(30)]
    infos = await asyncio.gather(*(object_store.put(k, k.encode() * 10) for k in keys))
    assert [info.key for info in infos] == keys
    # Deleting some while writing others into the same directories.
    await asyncio.gather(
        *(object_store.delete(k) for k in keys[:15]),
        *(object_store.put(k + ".bak", b"copy") for k in keys[15:]),
    )
    expected = sorted(keys[15:] + [k + ".bak" for k in keys[15:]])
    assert await object_store.list("inspections/7/") == expected
    for key in keys[15:]:
        assert await object_store.get(key) == key.encode() * 10


async def test_start_and_close_are_idempotent(object_store: ObjectStore) -> None:
    await object_store.start()
    await object_store.put("a", b"1")
    await object_store.close()
    await object_store.close()


async def test_versions_change_with_each_put_and_match_what_put_said(object_store: ObjectStore) -> None:
    first = await object_store.put("records/a/1.json", b'{"n": 1}', "application/json")
    await object_store.put("records/a/2.json", b'{"n": 2}', "application/json")
    await object_store.put("records/b/1.json", b"elsewhere")
    versions = await object_store.versions("records/a/")
    assert sorted(versions) == ["records/a/1.json", "records/a/2.json"]
    assert first.version is not None and versions["records/a/1.json"] == first.version
    # a replacement (same size, other bytes) is a new version; the other object keeps its own
    second = await object_store.put("records/a/1.json", b'{"n": 3}', "application/json")
    again = await object_store.versions("records/a/")
    assert again["records/a/1.json"] == second.version != first.version
    assert again["records/a/2.json"] == versions["records/a/2.json"]
    await object_store.delete("records/a/2.json")
    assert list(await object_store.versions("records/a/")) == ["records/a/1.json"]
