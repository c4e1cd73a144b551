"""The append-only, hash-chained log of evidence reads and exports (one object per day)."""

from __future__ import annotations

import asyncio
from typing import Any

from storage.objects import ObjectStore

from .chainlog import ChainLog, utc_now

PREFIX = "records/access-log/"


class AccessLog:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._logs: dict[str, ChainLog] = {}
        self._lock = asyncio.Lock()

    async def record(self, action: str, who: str, data: dict[str, Any]) -> dict[str, Any]:
        day = utc_now().strftime("%Y-%m-%d")
        async with self._lock:
            log = self._logs.get(day)
            if log is None:
                log = ChainLog(self._store, f"{PREFIX}{day}.jsonl")
                self._logs = {day: log}  # older days are complete; keep one open
        return await log.append(action, who, data)

    async def days(self) -> list[str]:
        return [k[len(PREFIX):-len(".jsonl")] for k in await self._store.list(PREFIX) if k.endswith(".jsonl")]

    async def read(self, day: str) -> bytes:
        return await self._store.get(f"{PREFIX}{day}.jsonl")
