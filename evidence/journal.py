"""Writes an inspection's evidence as it happens: events and blobs, then the seal."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any, Optional

from storage.keys import validate_key
from storage.objects import ObjectStore

from .chainlog import ChainLog
from .manifest import EVENTS, prefix_of, seal
from .signing import SigningKeys

logger = logging.getLogger(__name__)


class Journal:
    """Every inspection's event log, and the blobs its events record."""

    def __init__(self, store: ObjectStore, keys: SigningKeys) -> None:
        self.store = store
        self.keys = keys
        self._logs: dict[str, ChainLog] = {}
        self._lock = asyncio.Lock()
        #: Events appended, and the seconds spent appending them (for /metrics).
        self.appends = 0
        self.append_seconds = 0.0

    async def _log_of(self, inspection_id: str) -> ChainLog:
        async with self._lock:
            log = self._logs.get(inspection_id)
            if log is None:
                log = ChainLog(self.store, prefix_of(inspection_id) + EVENTS)
                await log.load()
                self._logs[inspection_id] = log
            return log

    async def record(self, inspection_id: str, type_: str, actor: str, data: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Append one event to the inspection's log (stored before this returns)."""
        started = time.perf_counter()
        log = await self._log_of(inspection_id)
        event = await log.append(type_, actor, data)
        self.appends += 1
        self.append_seconds += time.perf_counter() - started
        return event

    async def record_blob(
        self,
        inspection_id: str,
        relative_key: str,
        data: bytes,
        content_type: str,
        type_: str,
        actor: str,
        details: Optional[dict[str, Any]] = None,
    ) -> dict[str, Any]:
        """Store a blob, then log an event carrying its key, size and sha256."""
        validate_key(relative_key)
        await self.store.put(prefix_of(inspection_id) + relative_key, data, content_type)
        event = {"key": relative_key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        event.update(details or {})
        return await self.record(inspection_id, type_, actor, event)

    async def events(self, inspection_id: str) -> list[dict[str, Any]]:
        """The inspection's events so far, parsed."""
        log = await self._log_of(inspection_id)
        return [json.loads(line) for line in log.data().splitlines() if line.strip()]

    async def head(self, inspection_id: str) -> str:
        return (await self._log_of(inspection_id)).head

    async def seal(
        self,
        inspection_id: str,
        inspection: dict[str, Any],
        verdict: Optional[dict[str, Any]] = None,
        rules_version: Optional[str] = None,
        final_event: Optional[tuple[str, str, dict[str, Any]]] = None,
    ) -> str:
        """Write the signed manifest; returns its sha256.

        ``final_event`` (type, actor, data) is appended in the same critical section, so no
        reader ever sees that event without a manifest that covers it.
        """
        log = await self._log_of(inspection_id)
        async with log.lock:
            if final_event is not None:
                await log.append_locked(*final_event)
            body, _ = await seal(
                self.store, self.keys, inspection_id, inspection, log.data(), log.head, log.count, verdict, rules_version
            )
        return hashlib.sha256(body).hexdigest()

    async def consistent(self, inspection_id: str) -> "asyncio.Lock":
        """The lock to hold while reading the log and the manifest as one (verification)."""
        return (await self._log_of(inspection_id)).lock

    def forget(self, inspection_id: str) -> None:
        """Drop the in-memory copy of a finished inspection's log (it is in the store; a
        later read loads it again)."""
        self._logs.pop(inspection_id, None)

    @property
    def logs_in_memory(self) -> int:
        """How many inspections' logs are held in memory (the memory test checks this)."""
        return len(self._logs)
