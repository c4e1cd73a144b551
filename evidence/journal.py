"""Writes an inspection's evidence as it happens: events and blobs, then the seal.

With a ``directory``, events are acknowledged once fsynced in a local journal file there
(group-committed) and their chunks are shipped to the object store within a second, when a
chunk fills, and at every seal (:mod:`evidence.chainlog`); without one, every event writes
its (bounded) chunk to the store before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Optional, Protocol, Sequence

from errors import Unavailable
from storage.keys import validate_key
from storage.objects import ObjectNotFound, ObjectStore, StorageError

from .chainlog import CHUNK_LINES, ChainLog
from .localjournal import LocalJournal
from .manifest import EVENT_CHUNKS, EVENTS, SEALS, TIMESTAMP, prefix_of, seal
from .shipper import Shipper
from .tail import LogTail
from .sm2 import sm3_hex
from .timestamper import TIMESTAMPS, Timestamper
from .tsa_token import token_imprint
from .signing import SigningKeys

logger = logging.getLogger(__name__)


class LogFence(Protocol):
    """Whether this node may write an inspection's log now (several nodes: session/placement.py)."""

    def check_append(self, inspection_id: str) -> None:
        """Raise (an :class:`errors.Unavailable`) if no event may be appended now."""

    def check_store(self, inspection_id: str) -> None:
        """Raise if not even a blob may be stored now (a fenced node may still store the
        segments its recorders close with, while no other node can have taken the room)."""

    async def may_ship(self, inspection_id: str) -> Optional[bool]:
        """True: ship its chunks; None: not now; False: never (drop the log here)."""


class Journal:
    """Every inspection's event log, and the blobs its events record."""

    def __init__(
        self,
        store: ObjectStore,
        keys: SigningKeys,
        directory: Optional[Path] = None,
        *,
        ship_interval_s: float = 1.0,
        chunk_lines: int = CHUNK_LINES,
        timestamper: Optional[Timestamper] = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.local = LocalJournal(directory) if directory is not None else None
        self.shipper = Shipper(ship_interval_s)
        self.chunk_lines = chunk_lines
        self.timestamper = timestamper
        if timestamper is not None:
            timestamper.heads = self._live_heads
        self._unsealed: set[str] = set()  # inspections with events after their last seal
        self._logs: dict[str, ChainLog] = {}
        self._lock = asyncio.Lock()
        self._users: Counter[str] = Counter()  # callers holding each log (see _using)
        self._forget_wanted: set[str] = set()
        #: With several nodes, whether this node may write a log (docs/nodes.md, "Fencing").
        self.fence: Optional[LogFence] = None
        #: With several nodes, the shared copy of each log's unshipped lines, which the node
        #: taking a room over adopts (evidence/tail.py, :meth:`take_over`).
        self.tail: Optional[LogTail] = None
        self._ids: dict[int, str] = {}  # id(log) -> inspection id, for the ship gate
        self._dropped: dict[str, ChainLog] = {}  # logs dropped with unshipped lines (drop)
        self._claimed: dict[str, set[str]] = {}  # blob keys given out by unused_keys, not yet logged
        self._strays_lock = asyncio.Lock()
        self.shipper.gate = self._may_ship
        #: Events appended, and the seconds spent appending them (for /metrics).
        self.appends = 0
        self.append_seconds = 0.0

    async def start(self) -> None:
        """Ship what the local journal holds from before a restart (idempotent)."""
        if self.timestamper is not None:
            await self.timestamper.start()
        if self.local is None:
            return
        self.local.start()
        self.shipper.start()
        for name in self.local.names():
            parts = name.split("/")
            if len(parts) == 4 and name == f"{prefix_of(parts[1])}{EVENT_CHUNKS}":
                if not self.local.read(name):
                    self.local.remove(name)
                    continue
                log = await self._log_of(parts[1])
                try:
                    await log.flush()
                except Exception as exc:
                    logger.warning("inspection %s: recovered events not shipped yet (%s); retrying", parts[1], exc)
                    self.shipper.flag(log)

    async def ship(self) -> None:
        """Ship every journaled event to the store now (before another node may take the
        inspections over: it continues from what the store holds)."""
        await self.shipper.flush_all()

    async def close(self) -> None:
        """Ship what is left and close the journal files; safe to call twice."""
        if self.timestamper is not None:
            await self.timestamper.close()
        await self.shipper.close()
        if self.local is not None:
            await self.local.close()

    async def _log_of(self, inspection_id: str) -> ChainLog:
        log = self._logs.get(inspection_id)
        if log is not None:  # loaded already: no lock to take (it only guards the loading)
            return log
        async with self._lock:
            log = self._logs.get(inspection_id)
            if log is None:
                log = ChainLog(self.store, prefix_of(inspection_id) + EVENTS, local=self.local, chunk_lines=self.chunk_lines,
                               tail=self.tail)
                await log.load()
                log = self._undropped(inspection_id, log)
                self.shipper.watch(log)
                if log.dirty:
                    self.shipper.flag(log)
                self._logs[inspection_id] = log
                self._ids[id(log)] = inspection_id
            return log

    @contextlib.asynccontextmanager
    async def _using(self, inspection_id: str) -> AsyncIterator[ChainLog]:
        """The inspection's log, kept in memory (not forgotten) while the caller uses it.

        Without this, :meth:`forget` could drop a log between a caller getting it and
        appending to it: the append would go to an object nobody ships any more, and the next
        caller would load a second copy from the store (two chains, one event lost).
        """
        log = await self._log_of(inspection_id)
        self._users[inspection_id] += 1  # no await since _log_of: forget cannot slip in
        try:
            yield log
        finally:
            self._done_using(inspection_id)

    def _done_using(self, inspection_id: str) -> None:
        self._users[inspection_id] -= 1
        if self._users[inspection_id] <= 0:
            del self._users[inspection_id]
            if inspection_id in self._forget_wanted:
                self.forget(inspection_id)

    async def record(self, inspection_id: str, type_: str, actor: str, data: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Append one event to the inspection's log (stored before this returns)."""
        started = time.perf_counter()
        if self.fence is not None:
            self.fence.check_append(inspection_id)
        # what _using does, without a context manager's cost on every event
        log = await self._log_of(inspection_id)
        self._users[inspection_id] += 1  # no await since _log_of: forget cannot slip in
        try:
            self._unsealed.add(inspection_id)
            event = await log.append(type_, actor, data)
        finally:
            self._done_using(inspection_id)
        self.appends += 1
        self.append_seconds += time.perf_counter() - started
        return event

    def _live_heads(self) -> list[tuple[str, int, str]]:
        return [(i, self._logs[i].count, self._logs[i].head) for i in sorted(self._unsealed) if i in self._logs]

    async def unused_keys(self, inspection_id: str, keys: Callable[[int], Sequence[str]], first: int = 1) -> Sequence[str]:
        """The first ``keys(n)``, n >= ``first``, none of which an event of the log names, the
        store holds or another capture in flight was given: a still, photo or signature must
        never overwrite a blob. Counters kept in memory (a room's signatures, a record's
        evidence list) start again after a restart or a take-over, and a node that stopped
        may have stored a blob it never logged. The keys are held for the caller until
        :meth:`record_blob` logs them."""
        lines = (await self._log_of(inspection_id)).data().splitlines()  # once, not per number tried
        claimed = self._claimed.setdefault(inspection_id, set())
        prefix = prefix_of(inspection_id)
        n = max(first, 1)
        while True:
            candidate = list(keys(n))
            n += 1
            if any(key in claimed for key in candidate) or next(self._marked(lines, "key", tuple(candidate)), None):
                continue
            if await self._any_stored(prefix, candidate):
                continue
            if any(key in claimed for key in candidate):  # given to another capture meanwhile
                continue
            claimed.update(candidate)
            return candidate

    async def _any_stored(self, prefix: str, keys: list[str]) -> bool:
        for key in keys:
            try:
                if await self.store.head(prefix + key) is not None:
                    return True
            except (StorageError, OSError) as exc:
                # the store is out: the log (strays are logged as recovered at a take-over)
                # and the claims still keep the key apart; the blob spools like any
                logger.warning("cannot ask the store whether %s%s exists (%s); going by the log", prefix, key, exc)
        return False

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
        if self.fence is not None:
            self.fence.check_store(inspection_id)
        try:
            await self.store.put(prefix_of(inspection_id) + relative_key, data, content_type)
            event = {"key": relative_key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "sm3": sm3_hex(data)}
            event.update(details or {})
            return await self.record(inspection_id, type_, actor, event)
        finally:
            claimed = self._claimed.get(inspection_id)
            if claimed is not None:
                claimed.discard(relative_key)  # logged now (or failed: the next capture asks again)
                if not claimed:
                    del self._claimed[inspection_id]

    async def events(self, inspection_id: str) -> list[dict[str, Any]]:
        """The inspection's events so far, parsed."""
        return [json.loads(line) for line in await self._lines(inspection_id) if line.strip()]

    async def events_of(self, inspection_id: str, *types: str) -> list[dict[str, Any]]:
        """The inspection's events of ``types`` so far, parsed. Only their lines are parsed:
        the whole of a long session's log (10,000 events) takes ~75 ms, which a capture or
        a join must not hold the event loop (and every session's media) for."""
        return list(self._marked(await self._lines(inspection_id), "type", types))

    async def last_event_of(self, inspection_id: str, *types: str) -> Optional[dict[str, Any]]:
        """The inspection's latest event of ``types`` (None: none yet), parsing only it."""
        return next(self._marked(await self._lines(inspection_id), "type", types, latest_first=True), None)

    async def event_naming(self, inspection_id: str, key: str) -> Optional[dict[str, Any]]:
        """The latest event whose data carries ``key`` (a blob's), parsing only it."""
        return next(self._marked(await self._lines(inspection_id), "key", (key,), latest_first=True), None)

    async def _lines(self, inspection_id: str) -> list[bytes]:
        return (await self._log_of(inspection_id)).data().splitlines()

    @staticmethod
    def _marked(lines: list[bytes], field: str, values: tuple[str, ...], latest_first: bool = False) -> Iterator[dict[str, Any]]:
        """The events whose ``field`` (the event's ``type``, or its data's ``key``) is one of
        ``values``. A log line is canonical JSON (RFC 8785: no spaces, "/" not escaped), so
        such an event's line holds ``"<field>":"<value>"``; only those lines are parsed, and
        a value quoted inside some text (escaped there) is told apart after parsing."""
        marks = [f'"{field}":'.encode() + json.dumps(value).encode() for value in values]
        for line in reversed(lines) if latest_first else lines:
            if any(mark in line for mark in marks):
                event = json.loads(line)
                found = event.get("type") if field == "type" else (event.get("data") or {}).get(field)
                if found in values:
                    yield event

    async def log_strays(self, inspection_id: str, reason: str) -> list[str]:
        """Log the inspection's stored objects that no event records, as ``evidence.recovered``.

        A node that stopped may have stored a blob (a segment, a still) whose event was in
        the tail of its log it had not shipped yet: the node taking the session over adopts
        such objects, saying so, instead of leaving objects no manifest covers. Returns their
        keys (relative to the inspection's prefix).
        """
        prefix = prefix_of(inspection_id)
        # one look at a time: a restart's settling and a page's join may both look at once,
        # and each would log the same stray (rare: a global lock is enough)
        async with self._strays_lock, self._using(inspection_id) as log:
            recorded = {key[len(prefix):] for key, _ in log.segments()}
            for line in log.data().splitlines():
                key = (json.loads(line).get("data") or {}).get("key") if line.strip() else None
                if isinstance(key, str):
                    recorded.add(key)
            strays = [
                key for key in (k[len(prefix):] for k in await self.store.list(prefix))
                if key not in recorded and key not in SEALS and key != EVENTS
                and not key.startswith((EVENT_CHUNKS, TIMESTAMPS))
            ]
            for key in strays:
                try:
                    data = await self.store.get(prefix + key)
                except ObjectNotFound:
                    continue
                await self.record(inspection_id, "evidence.recovered", "system", {
                    "key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "sm3": sm3_hex(data),
                    "reason": reason,
                })
                logger.warning("inspection %s: %s was stored but not logged (%s); logged now", inspection_id, key, reason)
        return strays

    def held(self, inspection_id: str) -> Optional[bytes]:
        """The whole log of an inspection this node holds in memory (a live one: its last
        events may not be shipped yet), or None (read the store)."""
        log = self._logs.get(inspection_id)
        return None if log is None else log.data()

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
        if self.fence is not None:
            self.fence.check_append(inspection_id)
            if not await self.fence.may_ship(inspection_id):
                raise Unavailable(f"inspection {inspection_id}: this node may not write its log now; not sealed", code="node_fenced")
        async with self._using(inspection_id) as log, log.lock:
            if final_event is not None:
                await log.append_locked(*final_event)
            log.close_chunk()
            await log.flush()  # the store holds every line before the manifest names them
            prefix = prefix_of(inspection_id)
            segments = [(key[len(prefix):], data) for key, data in log.segments()]
            tokens, previous_kept = await self._tokens(inspection_id)
            if self.timestamper is not None:
                await self.timestamper.expect(inspection_id)
            body, _ = await seal(
                self.store, self.keys, inspection_id, inspection, log.data(), log.head, log.count, verdict, rules_version,
                segments=segments, extra=tokens,
            )
            self._unsealed.discard(inspection_id)
        sha256 = hashlib.sha256(body).hexdigest()
        if self.timestamper is not None and self.timestamper.enabled:
            if previous_kept:
                await self.store.delete(prefix + TIMESTAMP)  # it covered the previous manifest
            await self.timestamper.submit(inspection_id, sha256)
        return sha256

    async def _tokens(self, inspection_id: str) -> tuple[list[tuple[str, bytes]], bool]:
        """The timestamp tokens the new seal covers (the previous manifest's, and log heads'),
        and whether the previous manifest's token is kept under ``timestamps/`` (or there
        was none): only then may it be deleted. In a storage outage the seal goes on (its
        writes are spooled) and the old token stays until the new one replaces it."""
        prefix = prefix_of(inspection_id)
        kept = True
        try:
            previous = await self.store.get(prefix + TIMESTAMP)
        except ObjectNotFound:
            pass
        except StorageError as exc:
            kept = False
            logger.warning("inspection %s: the previous manifest's timestamp could not be read (%s); "
                           "sealing without archiving it", inspection_id, exc)
        else:
            info = token_imprint(previous)
            if info.imprint is not None:
                await self.store.put(f"{prefix}{TIMESTAMPS}manifest-{info.imprint.hex()[:16]}.tsr", previous, "application/timestamp-reply")
        out = []
        try:
            for key in await self.store.list(prefix + TIMESTAMPS):
                out.append((key[len(prefix):], await self.store.get(key)))
        except Exception as exc:  # a storage outage: seal without them; the next seal lists them
            logger.warning("inspection %s: timestamp tokens not listed in this seal: %s", inspection_id, exc)
        return out, kept

    async def consistent(self, inspection_id: str) -> "asyncio.Lock":
        """The lock to hold while reading the log and the manifest as one (verification)."""
        return (await self._log_of(inspection_id)).lock

    async def _may_ship(self, log: ChainLog) -> Optional[bool]:
        inspection_id = self._ids.get(id(log))
        if self.fence is None or inspection_id is None or self._logs.get(inspection_id) is not log:
            return True
        verdict = await self.fence.may_ship(inspection_id)
        if verdict is False:
            self.drop(inspection_id)
        return verdict

    def drop(self, inspection_id: str) -> None:
        """Drop the in-memory log of an inspection this node may no longer write, unshipped.

        A log with unshipped lines is kept aside: if this node takes the room again before
        anyone else writes the log, those lines continue the stored chain (:meth:`_undropped`);
        if another node went on, they are lost, as with a node that died.
        """
        log = self._logs.pop(inspection_id, None)
        self._unsealed.discard(inspection_id)
        self._forget_wanted.discard(inspection_id)
        if log is not None:
            self._ids.pop(id(log), None)
            self.shipper.discard(log)
            if log.dirty:
                self._dropped[inspection_id] = log
                logger.error("inspection %s: events this node journaled after its last shipped chunk are not shipped; "
                             "kept aside in case this node takes the room again before anyone writes the log", inspection_id)

    def _undropped(self, inspection_id: str, loaded: ChainLog) -> ChainLog:
        """The log dropped by :meth:`drop`, if the store still holds exactly its shipped part
        (no other node wrote since): its unshipped lines continue the chain. Else ``loaded``."""
        dropped = self._dropped.pop(inspection_id, None)
        if dropped is None:
            return loaded
        if dropped.count >= loaded.count and dropped.data().startswith(loaded.data()):
            logger.warning("inspection %s: nobody wrote the log since this node dropped it; its %d unshipped event(s) "
                           "continue the chain", inspection_id, dropped.count - loaded.count)
            return dropped
        logger.error("inspection %s: another node continued the log; the %d event(s) this node had not shipped are lost "
                     "(its local journal holds them until the next restart)", inspection_id, max(0, dropped.count - loaded.count))
        return loaded

    async def take_over(self, inspection_id: str) -> int:
        """This node took the room (several nodes): drop any copy of the log read before, load
        it from the store and adopt the lines the node before acknowledged but had not
        shipped (evidence/tail.py). Returns how many were adopted."""
        self.drop(inspection_id)
        if self.tail is None:  # one node: its own journal is all there is (recovered at start)
            return 0
        async with self._using(inspection_id) as log:
            return await log.adopt_tail()

    def forget(self, inspection_id: str) -> None:
        """Drop the in-memory copy of a finished inspection's log: now if nobody is using it
        and it is all shipped, else when its last user is done."""
        log = self._logs.get(inspection_id)
        if log is None:
            self._forget_wanted.discard(inspection_id)
            return
        if self._users.get(inspection_id) or log.dirty or log.lock.locked():
            self._forget_wanted.add(inspection_id)
            return
        self._forget_wanted.discard(inspection_id)
        log.forget_local()
        del self._logs[inspection_id]
        self._ids.pop(id(log), None)

    @property
    def logs_in_memory(self) -> int:
        """How many inspections' logs are held in memory (the memory test checks this)."""
        return len(self._logs)
