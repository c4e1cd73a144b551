"""A real object store that counts the objects read through it: the tests that a listing
or a feed reads only what it returns count with it."""

from __future__ import annotations

from typing import Any

from storage.objects import ObjectStore


class CountingStore:
    """``inner``, with ``gets`` counting its ``get`` calls and ``listings`` its ``versions``
    calls (everything else passes through)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.gets = 0
        self.listings = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, key: str) -> bytes:
        self.gets += 1
        return await self.inner.get(key)

    async def versions(self, prefix: str) -> Any:
        self.listings += 1
        return await self.inner.versions(prefix)
