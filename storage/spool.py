"""A write spool in front of an object store: evidence keeps being accepted through an outage.

When the inner store raises :class:`storage.objects.StorageUnavailable`, writes go to a local
spool directory instead and a drain task uploads them, strictly in the order they were
accepted, once the store is back. Nothing is dropped: a spooled object leaves the spool only
after the inner store has acknowledged it, and the spool survives a process restart.

Spool layout (one pair of files per accepted write, ``<seq>`` zero-padded to 20 digits)::

    <seq>.bin    the object's bytes (absent for a spooled delete)
    <seq>.json   {"version": 1, "seq", "op": "put"|"delete", "key", "content_type",
                  "size", "sha256", "spooled_at" (Unix seconds)}

The sidecar is written after the data and removed before it, so a sidecar is the commit
record: a ``.bin`` without one is a write that was never acknowledged (or already uploaded)
and is removed on start. Unreadable entries are moved to ``quarantine/`` and logged.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal

from .keys import validate_key, validate_prefix
from .local import write_atomically
from .objects import ObjectInfo, ObjectNotFound, ObjectStore, StorageUnavailable

__all__ = ["SpoolingStore"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    op: Literal["put", "delete"]
    key: str
    content_type: str
    size: int
    sha256: str
    spooled_at: float
    #: what the writer said of the write when it was spooled (SpoolingStore.tagger)
    tag: str = ""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                **({"tag": self.tag} if self.tag else {}),
                "version": _FORMAT_VERSION,
                "seq": self.seq,
                "op": self.op,
                "key": self.key,
                "content_type": self.content_type,
                "size": self.size,
                "sha256": self.sha256,
                "spooled_at": self.spooled_at,
            },
            sort_keys=True,
        ).encode("utf-8")

    @classmethod
    def from_json(cls, seq: int, raw: bytes) -> _Entry:
        doc: Any = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("version") != _FORMAT_VERSION:
            raise ValueError("not a version 1 spool sidecar")
        if doc.get("seq") != seq or doc.get("op") not in ("put", "delete"):
            raise ValueError("sidecar seq or op does not match")
        return cls(
            seq=seq,
            op=doc["op"],
            key=validate_key(doc["key"]),
            content_type=str(doc["content_type"]),
            size=int(doc["size"]),
            sha256=str(doc["sha256"]),
            spooled_at=float(doc["spooled_at"]),
            tag=str(doc.get("tag", "")),
        )


class _CorruptEntry(Exception):
    pass


class SpoolingStore:
    """An :class:`storage.objects.ObjectStore` that spools writes while ``inner`` is down.

    ``put``/``delete`` go to ``inner`` while the spool is empty; on
    :class:`storage.objects.StorageUnavailable` (and, to keep order, for as long as
    anything is spooled) they are written to ``spool_dir`` and acknowledged from there.
    A drain task started by ``start()`` retries every ``retry_interval_s``, doubling up to
    ``max_backoff_s`` while the store stays down.

    Reads see spooled objects: ``get``/``head`` answer from the spool first; ``list``
    merges the spool into the inner listing (and raises StorageUnavailable during an
    outage rather than return a partial listing).

    With several nodes a spooled write may outlive its writer's right to it: a node cut off
    from S3 spools, dies or steps aside, another node takes its rooms over and writes the same
    keys anew; the first node's spool, drained later (at its restart), would overwrite them.
    So a :attr:`tagger` notes with each spooled write what made it rightful (the room's
    epoch), and before uploading a tagged write the drain asks the :attr:`gate`: True upload
    it, None not now (the drain pauses), False it is stale: it is quarantined, not uploaded,
    and an error says where it is kept.

    The store owns ``inner``: ``start()`` starts it (tolerating an outage, so a node can
    boot while the backend is down) and ``close()`` closes it. ``close()`` does not wait for
    the spool to drain: call :meth:`wait_drained` first on an orderly shutdown; whatever is
    left drains after the next ``start()``.
    """

    def __init__(
        self,
        inner: ObjectStore,
        spool_dir: Path,
        *,
        retry_interval_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        if retry_interval_s <= 0 or max_backoff_s < retry_interval_s:
            raise ValueError(
                "need 0 < retry_interval_s <= max_backoff_s, got "
                f"{retry_interval_s!r} and {max_backoff_s!r}"
            )
        self._inner = inner
        self._dir = Path(spool_dir)
        self._retry_interval_s = retry_interval_s
        self._max_backoff_s = max_backoff_s
        self._entries: deque[_Entry] = deque()
        # The newest spooled entry per key: what a read of that key must see.
        self._latest: dict[str, _Entry] = {}
        self._next_seq = 1
        self._write_lock = asyncio.Lock()
        self._drain_lock = asyncio.Lock()
        self._pending = asyncio.Event()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._inner_ready = False
        self._outage_since: float | None = None
        #: key -> tag to keep with a write that is spooled ("" for none); see the class docstring
        self.tagger: Callable[[str], str] | None = None
        #: (key, tag) -> True upload, None not now, False stale (quarantined)
        self.gate: Callable[[str, str], Awaitable[bool | None]] | None = None
        #: spooled writes quarantined as stale (for /metrics and tests)
        self.stale = 0

    @property
    def spool_dir(self) -> Path:
        """The directory holding spooled writes."""
        return self._dir

    @property
    def depth(self) -> int:
        """Number of spooled writes waiting to be uploaded."""
        return len(self._entries)

    @property
    def oldest_age_s(self) -> float:
        """Seconds since the oldest waiting write was spooled (0.0 when the spool is empty)."""
        if not self._entries:
            return 0.0
        return max(0.0, time.time() - self._entries[0].spooled_at)

    # lifecycle

    async def start(self) -> None:
        """Load the spool left by a previous run, start ``inner`` and the drain task."""
        if self._started:
            return
        entries, next_seq = await asyncio.to_thread(self._scan)
        self._entries = deque(entries)
        self._latest = {entry.key: entry for entry in entries}
        self._next_seq = next_seq
        if entries:
            self._outage_since = time.monotonic()
            self._pending.set()
            self._drained.clear()
            logger.warning(
                "found %s spooled writes from a previous run in %s; draining",
                len(entries),
                self._dir,
            )
        try:
            await self._ensure_inner()
        except StorageUnavailable as exc:
            self._note_outage(exc)
        self._task = asyncio.create_task(self._run(), name=f"spool-drain {self._dir}")
        self._started = True
        if entries:
            self._wake.set()

    async def close(self) -> None:
        """Stop draining and close ``inner``; spooled writes stay on disk. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        if self._started and self._entries:
            logger.info(
                "spool closed with %s writes waiting in %s; they drain after the next start",
                len(self._entries),
                self._dir,
            )
        self._started = False
        self._inner_ready = False
        # Also after a failed start(): inner may hold a half-made connection pool.
        await self._inner.close()

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("SpoolingStore is not started: await store.start() first")

    async def _ensure_inner(self) -> None:
        if not self._inner_ready:
            await self._inner.start()
            self._inner_ready = True

    def _note_outage(self, exc: StorageUnavailable) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.warning(
                "object store unavailable (%s); spooling writes to %s", exc, self._dir
            )

    def _note_recovery(self) -> None:
        # An outage that ended before anything had to be spooled (e.g. at boot).
        if self._outage_since is not None and not self._entries:
            logger.info("object store reachable again; nothing was spooled in %s", self._dir)
            self._outage_since = None

    # ObjectStore

    async def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Store ``data`` in ``inner``, or in the spool if ``inner`` is down or behind."""
        validate_key(key)
        self._require_started()
        if not self._entries:
            try:
                await self._ensure_inner()
                info = await self._inner.put(key, data, content_type)
            except StorageUnavailable as exc:
                self._note_outage(exc)
            else:
                self._note_recovery()
                return info
        return await self._spool("put", key, data, content_type)

    async def get(self, key: str) -> bytes:
        """Return the newest bytes under ``key``, spooled or stored."""
        validate_key(key)
        self._require_started()
        entry = self._latest.get(key)
        if entry is not None:
            if entry.op == "delete":
                raise ObjectNotFound(key)
            try:
                return await asyncio.to_thread(self._data_path(entry.seq).read_bytes)
            except FileNotFoundError:
                pass  # drained meanwhile: the inner store has it now
        await self._ensure_inner()
        return await self._inner.get(key)

    async def head(self, key: str) -> ObjectInfo | None:
        """Describe the newest object under ``key``, spooled or stored."""
        validate_key(key)
        self._require_started()
        entry = self._latest.get(key)
        if entry is not None:
            if entry.op == "delete":
                return None
            return ObjectInfo(key=key, size=entry.size, sha256=entry.sha256)
        await self._ensure_inner()
        return await self._inner.head(key)

    async def list(self, prefix: str) -> builtins.list[str]:
        """Return the sorted keys under ``prefix`` in ``inner`` and the spool together."""
        validate_prefix(prefix)
        self._require_started()
        # Snapshot first: an entry drained while we await the inner listing is then
        # counted once from either side.
        spooled = [entry for key, entry in self._latest.items() if key.startswith(prefix)]
        await self._ensure_inner()
        keys = set(await self._inner.list(prefix))
        for entry in spooled:
            if entry.op == "put":
                keys.add(entry.key)
            else:
                keys.discard(entry.key)
        return sorted(keys)

    async def versions(self, prefix: str) -> dict[str, str | None]:
        """``inner``'s versions under ``prefix``, with the spooled writes over them (a spooled
        put's version is not known until it is drained: None)."""
        validate_prefix(prefix)
        self._require_started()
        spooled = [entry for key, entry in self._latest.items() if key.startswith(prefix)]  # first: see list()
        await self._ensure_inner()
        found = await self._inner.versions(prefix)
        for entry in spooled:
            if entry.op == "put":
                found[entry.key] = None
            else:
                found.pop(entry.key, None)
        return found

    async def delete(self, key: str) -> None:
        """Delete ``key`` in ``inner``, or spool the delete behind earlier spooled writes."""
        validate_key(key)
        self._require_started()
        if not self._entries:
            try:
                await self._ensure_inner()
                await self._inner.delete(key)
            except StorageUnavailable as exc:
                self._note_outage(exc)
            else:
                self._note_recovery()
                return
        await self._spool("delete", key, b"", "")

    # draining

    async def drain_now(self) -> int:
        """Upload spooled writes in order until the spool is empty or the store fails.

        Returns how many were uploaded; never raises for an unavailable store.
        """
        self._require_started()
        async with self._drain_lock:
            return await self._drain_locked()

    async def wait_drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the spool to empty; True if it did."""
        self._require_started()
        self._wake.set()  # skip the current backoff: the caller is waiting
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see session/background.py
                await self._drained.wait()
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        delay = self._retry_interval_s
        while True:
            await self._pending.wait()
            try:
                async with asyncio.timeout(delay):  # not wait_for: see session/background.py
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                async with self._drain_lock:
                    await self._drain_locked()
            except Exception:  # keep draining whatever went wrong: the spool is evidence
                logger.exception("spool drain of %s failed; retrying", self._dir)
            if self._entries:
                delay = min(delay * 2, self._max_backoff_s)
            else:
                delay = self._retry_interval_s

    async def _drain_locked(self) -> int:
        uploaded = 0
        while self._entries:
            entry = self._entries[0]
            if entry.tag and self.gate is not None:
                try:
                    verdict = await self.gate(entry.key, entry.tag)
                except Exception as exc:
                    logger.warning("spooled write seq %s for %s: its gate failed (%s); retrying", entry.seq, entry.key, exc)
                    verdict = None
                if verdict is None:
                    break
                if verdict is False:
                    self.stale += 1
                    logger.error("spooled write seq %s for %s is stale (%s no longer holds): not uploaded, kept in %s",
                                 entry.seq, entry.key, entry.tag, self._dir / _QUARANTINE)
                    await asyncio.to_thread(self._quarantine, entry.seq)
                    self._entries.popleft()
                    if self._latest.get(entry.key) is entry:
                        del self._latest[entry.key]
                    continue
            try:
                await self._ensure_inner()
                await self._upload(entry)
            except StorageUnavailable as exc:
                logger.debug("spool drain paused, %s writes waiting: %s", len(self._entries), exc)
                break
            except _CorruptEntry as exc:
                logger.error("spooled write seq %s for %s is corrupt (%s); quarantined",
                             entry.seq, entry.key, exc)
                await asyncio.to_thread(self._quarantine, entry.seq)
            except Exception as exc:
                # Refused for another reason (bucket missing, credentials): keep the write
                # and its place in the order; an operator has to fix the store.
                logger.error("upload of spooled write seq %s for %s failed, will retry: %s",
                             entry.seq, entry.key, exc)
                break
            else:
                await asyncio.to_thread(self._remove_files, entry.seq)
                uploaded += 1
            self._entries.popleft()
            if self._latest.get(entry.key) is entry:
                del self._latest[entry.key]
        if not self._entries:
            self._pending.clear()
            self._drained.set()
            if self._outage_since is not None:
                logger.info(
                    "spool %s drained (%s writes uploaded) after %.1f s",
                    self._dir,
                    uploaded,
                    time.monotonic() - self._outage_since,
                )
                self._outage_since = None
        return uploaded

    async def _upload(self, entry: _Entry) -> None:
        if entry.op == "delete":
            await self._inner.delete(entry.key)
            return
        data = await asyncio.to_thread(self._read_verified, entry)
        await self._inner.put(entry.key, data, entry.content_type)

    # spool files (blocking helpers run in a thread)

    def _data_path(self, seq: int) -> Path:
        return self._dir / f"{seq:020d}.bin"

    def _meta_path(self, seq: int) -> Path:
        return self._dir / f"{seq:020d}.json"

    async def _spool(
        self, op: Literal["put", "delete"], key: str, data: bytes, content_type: str
    ) -> ObjectInfo:
        info = await asyncio.to_thread(ObjectInfo.of, key, data)
        async with self._write_lock:
            # Sequence numbers are taken under the lock so that entries join the queue in
            # the order they were accepted.
            entry = _Entry(
                seq=self._next_seq,
                op=op,
                key=key,
                content_type=content_type,
                size=info.size if op == "put" else 0,
                sha256=info.sha256 if op == "put" else "",
                spooled_at=time.time(),
                tag=self.tagger(key) if self.tagger is not None else "",
            )
            self._next_seq += 1
            await asyncio.to_thread(self._write_files, entry, data)
            self._entries.append(entry)
            self._latest[key] = entry
            self._drained.clear()
            self._pending.set()
        logger.debug("spooled %s of %s as seq %s (depth %s)", op, key, entry.seq, self.depth)
        return info

    def _read_verified(self, entry: _Entry) -> bytes:
        try:
            data = self._data_path(entry.seq).read_bytes()
        except FileNotFoundError:
            raise _CorruptEntry("data file missing") from None
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise _CorruptEntry("data does not match the sidecar's size and sha256")
        return data

    def _write_files(self, entry: _Entry, data: bytes) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        if entry.op == "put":
            write_atomically(self._data_path(entry.seq), data)
        write_atomically(self._meta_path(entry.seq), entry.to_json())

    def _remove_files(self, seq: int) -> None:
        # Sidecar first: without it, a leftover .bin is recognised as already uploaded.
        self._meta_path(seq).unlink(missing_ok=True)
        self._data_path(seq).unlink(missing_ok=True)

    def _quarantine(self, seq: int) -> None:
        target = self._dir / _QUARANTINE
        target.mkdir(exist_ok=True)
        # sequence numbers start again at 1 once the spool is empty: the time keeps names apart
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for path in (self._meta_path(seq), self._data_path(seq)):
            if path.exists():
                path.replace(target / f"{stamp}-{time.time_ns() % 1_000_000_000:09d}-{path.name}")

    def _scan(self) -> tuple[builtins.list[_Entry], int]:
        self._dir.mkdir(parents=True, exist_ok=True)
        entries: list[_Entry] = []
        max_seq = 0
        for path in sorted(self._dir.iterdir()):
            if not path.is_file():
                continue
            stem, suffix = path.stem, path.suffix
            if "~" in path.name:
                path.unlink(missing_ok=True)  # a write interrupted by a crash
                continue
            if not stem.isdigit() or suffix not in (".json", ".bin"):
                continue
            seq = int(stem)
            max_seq = max(max_seq, seq)
            if suffix == ".bin":
                if not self._meta_path(seq).exists():
                    path.unlink(missing_ok=True)
                continue
            try:
                entry = _Entry.from_json(seq, path.read_bytes())
                if entry.op == "put" and not self._data_path(seq).exists():
                    raise ValueError("data file missing")
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("spool entry %s is unreadable (%s); quarantined", path, exc)
                self._quarantine(seq)
                continue
            entries.append(entry)
        entries.sort(key=lambda entry: entry.seq)
        return entries, max_seq + 1
