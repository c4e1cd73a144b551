"""The append-only, hash-chained log of evidence reads and exports (one log per UTC day).

A day's log is a :class:`~evidence.chainlog.ChainLog` named ``records/access-log/<day>.jsonl``:
chunks ``records/access-log/<day>/<first seq>.jsonl`` (days written before chunks existed
are the single object). With a ``directory``, a read is logged once it is fsynced in the
local journal, and the chunks follow within a second; without one, each entry writes its
(bounded) chunk before returning.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

from storage.objects import ObjectNotFound, ObjectStore

from .chainlog import CHUNK_SUFFIX, ChainLog, is_chunk_name, read_log, utc_now
from .localjournal import LocalJournal
from .shipper import Shipper

PREFIX = "records/access-log/"


class AccessLog:
    def __init__(self, store: ObjectStore, directory: Optional[Path] = None, *, ship_interval_s: float = 1.0) -> None:
        self._store = store
        self._local = LocalJournal(directory) if directory is not None else None
        self._shipper = Shipper(ship_interval_s)
        self._logs: dict[str, ChainLog] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Ship what the local journal holds from before a restart (idempotent)."""
        if self._local is None:
            return
        self._local.start()
        self._shipper.start()
        for name in self._local.names():
            if not name.startswith(PREFIX):
                continue
            if not self._local.read(name):
                self._local.remove(name)
                continue
            log = ChainLog(self._store, name.rstrip("/") + CHUNK_SUFFIX, local=self._local)
            await log.load()
            try:
                await log.flush()
            except Exception:
                self._shipper.watch(log)
                self._shipper.flag(log)
                continue
            day = name[len(PREFIX):].rstrip("/")
            if day != utc_now().strftime("%Y-%m-%d"):
                log.forget_local()

    async def close(self) -> None:
        """Ship what is left and close the journal files; safe to call twice."""
        await self._shipper.close()
        if self._local is not None:
            await self._local.close()

    async def record(self, action: str, who: str, data: dict[str, Any]) -> dict[str, Any]:
        day = utc_now().strftime("%Y-%m-%d")
        async with self._lock:
            log = self._logs.get(day)
            if log is None:
                log = ChainLog(self._store, f"{PREFIX}{day}.jsonl", local=self._local)
                await log.load()
                self._shipper.watch(log)
                for old_day, old in list(self._logs.items()):  # older days are complete; keep one open
                    try:
                        await old.flush()
                    except Exception:
                        self._shipper.flag(old)  # shipped later; the journal file stays until then
                    else:
                        old.forget_local()
                    del self._logs[old_day]
                self._logs[day] = log
        return await log.append(action, who, data)

    async def days(self) -> list[str]:
        out: set[str] = {day for day, log in self._logs.items() if log.count}
        for key in await self._store.list(PREFIX):
            rest = key[len(PREFIX):]
            if "/" not in rest and rest.endswith(CHUNK_SUFFIX):
                out.add(rest[: -len(CHUNK_SUFFIX)])
            elif rest.count("/") == 1 and is_chunk_name(rest.split("/")[1]):
                out.add(rest.split("/")[0])
        return sorted(out)

    async def read(self, day: str) -> bytes:
        """The day's whole log (the single object or its chunks, concatenated)."""
        log = self._logs.get(day)
        if log is not None and log.count:
            async with log.lock:
                return log.data()
        data = await read_log(self._store, f"{PREFIX}{day}.jsonl")
        if not data:
            raise ObjectNotFound(f"{PREFIX}{day}.jsonl")
        return data
