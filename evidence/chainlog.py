"""Hash-chained JSON-lines logs: an inspection's events.jsonl, the access log.

Each line is one JSON object ``{seq, at, type, actor, data, prev, hash}``; ``hash`` is the
SHA-256 (hex) of the RFC 8785 canonical JSON of the entry without ``hash``, and ``prev``
is the previous line's ``hash`` (64 zeros for the first). The file is rewritten whole in
the object store on every append, so it is durable as soon as ``append`` returns.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
from typing import Any, Callable, Optional

from storage.objects import ObjectNotFound, ObjectStore

from .canonical import canonical_json

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
MAX_DATA_BYTES = 64 * 1024


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339_ms(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def encode_line(entry: dict[str, Any]) -> bytes:
    """One log line: the canonical JSON of the full entry, then a newline."""
    return canonical_json(entry) + b"\n"


class ChainLog:
    """An append-only, hash-chained log kept as one object."""

    def __init__(self, store: ObjectStore, key: str, clock: Callable[[], datetime.datetime] = utc_now) -> None:
        self._store = store
        self.key = key
        self._clock = clock
        self._lines: list[bytes] = []
        self._head = GENESIS
        self._seq = 0
        self._lock = asyncio.Lock()
        self._loaded = False

    @property
    def head(self) -> str:
        """Hash of the last entry (64 zeros when empty)."""
        return self._head

    @property
    def count(self) -> int:
        return self._seq

    @property
    def lock(self) -> asyncio.Lock:
        """Held while appending; hold it to read a consistent (head, count, object)."""
        return self._lock

    def data(self) -> bytes:
        return b"".join(self._lines)

    async def load(self) -> None:
        """Continue an existing log (after a restart)."""
        if self._loaded:
            return
        try:
            raw = await self._store.get(self.key)
        except ObjectNotFound:
            raw = b""
        lines = [line + b"\n" for line in raw.split(b"\n") if line]
        self._lines = lines
        if lines:
            last = json.loads(lines[-1])
            self._head, self._seq = str(last["hash"]), int(last["seq"])
        self._loaded = True

    async def append(self, type_: str, actor: str, data: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Add an entry and store the log; returns the entry as written."""
        payload = data or {}
        if len(canonical_json(payload)) > MAX_DATA_BYTES:
            raise ValueError(f"event data for {type_!r} is larger than {MAX_DATA_BYTES} bytes")
        await self.load()
        async with self._lock:
            return await self.append_locked(type_, actor, payload)

    async def append_locked(self, type_: str, actor: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``append`` for a caller that already holds :attr:`lock` (and has loaded)."""
        entry: dict[str, Any] = {
            "seq": self._seq + 1,
            "at": rfc3339_ms(self._clock()),
            "type": type_,
            "actor": actor,
            "data": payload,
            "prev": self._head,
        }
        entry["hash"] = entry_hash(entry)
        line = encode_line(entry)
        self._lines.append(line)
        try:
            await self._store.put(self.key, self.data(), "application/x-ndjson")
        except BaseException:
            self._lines.pop()
            raise
        self._seq += 1
        self._head = entry["hash"]
        return entry
