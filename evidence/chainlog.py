"""Hash-chained JSON-lines logs in chunks: an inspection's event log, the access log.

Each line is one JSON object ``{seq, at, type, actor, data, prev, hash}``; ``hash`` is the
SHA-256 (hex) of the RFC 8785 canonical JSON of the entry without ``hash``, and ``prev``
is the previous line's ``hash`` (64 zeros for the first).

A log named by ``key`` (``inspections/<id>/events.jsonl``) is stored as chunks under the
key without ``.jsonl`` (``inspections/<id>/events/00000001.jsonl``, ``.../00000257.jsonl``):
each chunk holds consecutive lines and is named by the ``seq`` of its first line, so the
chunks in name order, concatenated, are the log; the first line of a chunk links to the
last line of the one before through ``prev``. A log written before chunks existed is the
single object ``key``, and its continuation is chunks after it.

Durability (docs/evidence.md): with a :class:`~evidence.localjournal.LocalJournal`, an
append is acknowledged once its line is fsynced in this node's journal file; chunks are
shipped to the object store by :meth:`ChainLog.flush` (a shipper calls it every second, a
full chunk at once, a seal always). Without one, the open chunk (at most
:data:`CHUNK_LINES` lines) is written to the store before the append returns. Either way
an append costs the same at line 10 and at line 10,000.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from storage.objects import ObjectNotFound, ObjectStore

from .canonical import canonical_json
from .localjournal import LocalJournal
from .tail import LogTail

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
MAX_DATA_BYTES = 64 * 1024
CHUNK_LINES = 256
CHUNK_BYTES = 256 * 1024
CHUNK_SUFFIX = ".jsonl"


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339_ms(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _string(text: Any) -> bytes:
    """The canonical JSON of the string ``text`` (a name, a time, a hash: no escapes needed
    in practice, so no json.dumps call; anything else takes canonical_json)."""
    if type(text) is str and text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + text.encode() + b'"'  # printable ASCII but " and \ is written as it is
    return canonical_json(text)


def encode_line(entry: dict[str, Any]) -> bytes:
    """One log line: the canonical JSON of the full entry, then a newline."""
    return canonical_json(entry) + b"\n"


def chunk_prefix(key: str) -> str:
    """Where the chunks of the log ``key`` live: ``a/events.jsonl`` -> ``a/events/``."""
    return (key[: -len(CHUNK_SUFFIX)] if key.endswith(CHUNK_SUFFIX) else key) + "/"


def chunk_key(prefix: str, first_seq: int) -> str:
    return f"{prefix}{first_seq:08d}{CHUNK_SUFFIX}"


def is_chunk_name(name: str) -> bool:
    """Whether ``name`` (relative to the chunk prefix) looks like a chunk: 8 digits + .jsonl."""
    stem = name[: -len(CHUNK_SUFFIX)] if name.endswith(CHUNK_SUFFIX) else ""
    return len(stem) == 8 and stem.isdigit()


async def read_segments(store: ObjectStore, key: str) -> list[tuple[str, bytes]]:
    """The stored pieces of the log ``key`` in order: the single legacy object, then chunks."""
    out: list[tuple[str, bytes]] = []
    try:
        out.append((key, await store.get(key)))
    except ObjectNotFound:
        pass
    prefix = chunk_prefix(key)
    for name in await store.list(prefix):
        if is_chunk_name(name[len(prefix):]):
            try:
                out.append((name, await store.get(name)))
            except ObjectNotFound:
                continue  # deleted between the listing and the read
    return out


async def read_log(store: ObjectStore, key: str) -> bytes:
    """The whole stored log ``key`` as one JSON-lines document (legacy object and chunks)."""
    return b"".join(data for _, data in await read_segments(store, key))


def _lines_of(raw: bytes) -> list[bytes]:
    return [line + b"\n" for line in raw.split(b"\n") if line]


@dataclass
class _Chunk:
    key: str
    first: int  # index into ChainLog._lines
    end: Optional[int] = None  # exclusive; None while open
    stored: int = 0  # lines of it the object store holds
    legacy: bool = False  # the pre-chunk single object (never written again)


class ChainLog:
    """An append-only, hash-chained log stored as chunks (see the module docstring)."""

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        clock: Callable[[], datetime.datetime] = utc_now,
        *,
        local: Optional[LocalJournal] = None,
        chunk_lines: int = CHUNK_LINES,
        chunk_bytes: int = CHUNK_BYTES,
        tail: Optional[LogTail] = None,
    ) -> None:
        self._store = store
        self.key = key
        self.prefix = chunk_prefix(key)
        self._clock = clock
        self._local = local
        self._chunk_lines = chunk_lines
        self._chunk_bytes = chunk_bytes
        self._lines: list[bytes] = []
        self._chunks: list[_Chunk] = []
        self._open_bytes = 0
        self._head = GENESIS
        self._seq = 0
        self._lock = asyncio.Lock()
        self._ship_lock = asyncio.Lock()
        self._loaded = False
        #: With several nodes, the shared copy of the unshipped lines (evidence/tail.py):
        #: it holds the lines of seq _tail_first .. _tail_end - 1 once _tail_synced.
        self._tail = tail
        self._tail_lock = asyncio.Lock()
        self._tail_synced = False
        self._tail_first = 1
        self._tail_end = 1
        self.on_dirty: Optional[Callable[["ChainLog", bool], None]] = None  #: (log, urgent) after an append

    @property
    def head(self) -> str:
        """Hash of the last entry (64 zeros when empty)."""
        return self._head

    @property
    def count(self) -> int:
        return self._seq

    @property
    def lock(self) -> asyncio.Lock:
        """Held while appending; hold it to read a consistent (head, count, stored chunks)."""
        return self._lock

    @property
    def dirty(self) -> bool:
        """Whether some line is not yet in the object store."""
        return any(c.stored < self._chunk_len(c) for c in self._chunks)

    def data(self) -> bytes:
        """The whole log as one JSON-lines document."""
        return b"".join(self._lines)

    def segments(self) -> list[tuple[str, bytes]]:
        """The log's stored pieces (key, bytes) in order, as they are (or will be) in the store."""
        return [(c.key, b"".join(self._lines[c.first : self._end(c)])) for c in self._chunks]

    def _end(self, chunk: _Chunk) -> int:
        return len(self._lines) if chunk.end is None else chunk.end

    def _chunk_len(self, chunk: _Chunk) -> int:
        return self._end(chunk) - chunk.first

    @property
    def _local_name(self) -> str:
        return self.prefix

    async def load(self) -> None:
        """Continue an existing log (after a restart): the store's pieces, then the local journal."""
        if self._loaded:
            return
        for key, raw in await read_segments(self._store, self.key):
            lines = _lines_of(raw)
            if not lines:
                continue
            chunk = _Chunk(key, len(self._lines), len(self._lines) + len(lines), len(lines), legacy=key == self.key)
            self._chunks.append(chunk)
            self._lines.extend(lines)
        if self._lines:
            last = json.loads(self._lines[-1])
            self._head, self._seq = str(last["hash"]), int(last["seq"])
        if self._local is not None:
            self._recover_local()
        self._loaded = True

    def _recover_local(self) -> None:
        """Adopt the journal's lines the store does not have yet (acknowledged before a crash)."""
        assert self._local is not None
        adopted = self._adopt(self._local.read(self._local_name).split(b"\n"), "the local journal")
        if adopted:
            logger.warning("log %s: recovered %d acknowledged line(s) from the local journal; shipping them", self.key, adopted)

    async def adopt_tail(self) -> int:
        """This node took the log over (several nodes): adopt the lines the shared copy holds
        beyond what it has (acknowledged by a node that died before shipping them), then
        make the copy this node's. Returns how many were adopted."""
        if self._tail is None:
            return 0
        if not self._loaded:
            await self.load()
        async with self._lock:  # no append in between (_sync_tail takes the tail's own lock)
            try:
                lines = await self._tail.read(self._local_name)
            except Exception as exc:
                logger.error("log %s: the shared copy of the previous node's unshipped lines could not be read (%s); "
                             "continuing from what the store holds", self.key, exc)
                lines = []
            before = self._seq
            adopted = self._adopt((line.rstrip(b"\n") for line in lines), "the shared copy")
            for line in self._lines[len(self._lines) - adopted:]:
                if self._local is not None:
                    self._local.write(self._local_name, line)  # this node's disk holds them too
            if adopted:
                if self._local is not None:
                    await self._local.sync(self._local_name)
                logger.warning("log %s: adopted %d acknowledged line(s) (seq %d-%d) the previous node had not shipped",
                               self.key, adopted, before + 1, self._seq)
                if self.on_dirty is not None:
                    self.on_dirty(self, True)
            self._tail_synced = False
            await self._sync_tail()
        return adopted

    def _adopt(self, lines: Iterable[bytes], source: str) -> int:
        adopted = 0
        for line in lines:
            if not line:
                continue
            try:
                entry = json.loads(line)
                seq = int(entry["seq"])
            except (ValueError, KeyError, TypeError):
                # a torn last line was never acknowledged (its fsync had not returned)
                logger.warning("log %s: ignoring an unreadable line in %s", self.key, source)
                continue
            if seq <= self._seq:
                continue  # already shipped
            if seq != self._seq + 1 or entry.get("prev") != self._head or entry_hash(entry) != entry.get("hash"):
                logger.error("log %s: %s's line seq %s does not continue the stored log (seq %s); not adopted", self.key, source, seq, self._seq)
                break
            self._add_line(line + b"\n")
            self._seq, self._head = seq, str(entry["hash"])
            adopted += 1
        return adopted

    def _add_line(self, line: bytes) -> None:
        if not self._chunks or self._chunks[-1].end is not None:
            self._chunks.append(_Chunk(chunk_key(self.prefix, self._seq + 1), len(self._lines)))
            self._open_bytes = 0
        self._lines.append(line)
        self._open_bytes += len(line)
        chunk = self._chunks[-1]
        if self._chunk_len(chunk) >= self._chunk_lines or self._open_bytes >= self._chunk_bytes:
            chunk.end = len(self._lines)

    def close_chunk(self) -> None:
        """End the open chunk (at a seal): the next line starts a new one."""
        if self._chunks and self._chunks[-1].end is None:
            self._chunks[-1].end = len(self._lines)

    async def append(self, type_: str, actor: str, data: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Add an entry; returns it once it is durable (local journal or object store)."""
        payload = data or {}
        if not self._loaded:
            await self.load()
        if self._local is None:
            async with self._lock:
                return await self.append_locked(type_, actor, payload)
        if self._lock.locked():
            async with self._lock:
                entry = self._write_local(type_, actor, payload)
        else:
            # nobody holds the lock and _write_local does not await: taking it would change nothing
            entry = self._write_local(type_, actor, payload)
        # outside the lock, so that the next append of this log can join the same fsync
        await self._local.sync(self._local_name)
        if self._tail is not None:
            await self._sync_tail()
        return entry

    async def append_locked(self, type_: str, actor: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``append`` for a caller that already holds :attr:`lock` (and has loaded)."""
        if self._local is not None:
            entry = self._write_local(type_, actor, payload)
            await self._local.sync(self._local_name)
            if self._tail is not None:
                await self._sync_tail()
            return entry
        entry, line = self._entry(type_, actor, payload)
        self._add_line(line)
        chunk = self._chunks[-1]
        try:
            await self._store.put(chunk.key, b"".join(self._lines[chunk.first : self._end(chunk)]), "application/x-ndjson")
        except BaseException:
            self._lines.pop()
            self._open_bytes -= len(line)
            if chunk.first == len(self._lines):
                self._chunks.pop()
            else:
                chunk.end = None
            raise
        chunk.stored = self._chunk_len(chunk)
        self._seq += 1
        self._head = entry["hash"]
        return entry

    def _entry(self, type_: str, actor: str, payload: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        entry: dict[str, Any] = {
            "seq": self._seq + 1,
            "at": rfc3339_ms(self._clock()),
            "type": type_,
            "actor": actor,
            "data": payload,
            "prev": self._head,
        }
        # The canonical JSON of the entry, composed from its members' (keys in RFC 8785 order:
        # actor, at, data, hash, prev, seq, type), so the payload is serialized once, not three times.
        data = canonical_json(payload)
        if len(data) > MAX_DATA_BYTES:
            raise ValueError(f"event data for {type_!r} is larger than {MAX_DATA_BYTES} bytes")
        head = b'{"actor":' + _string(actor) + b',"at":' + _string(entry["at"]) + b',"data":' + data
        tail = b',"prev":' + _string(self._head) + b',"seq":' + str(entry["seq"]).encode() + b',"type":' + _string(type_) + b"}"
        digest = hashlib.sha256(head + tail).hexdigest()
        entry["hash"] = digest
        return entry, head + b',"hash":"' + digest.encode() + b'"' + tail + b"\n"

    def _write_local(self, type_: str, actor: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert self._local is not None
        entry, line = self._entry(type_, actor, payload)
        self._local.write(self._local_name, line)  # raises before anything changes here
        self._add_line(line)
        self._seq += 1
        self._head = entry["hash"]
        if self.on_dirty is not None:
            self.on_dirty(self, self._chunks[-1].end is not None)
        return entry

    def _stored_seq(self) -> int:
        """The seq up to which the store holds every line."""
        offset = self._seq - len(self._lines)  # 0: the log's lines start at seq 1
        for chunk in self._chunks:
            if chunk.stored < self._chunk_len(chunk):
                return offset + chunk.first + chunk.stored
        return self._seq

    async def _sync_tail(self) -> None:
        """Bring the shared copy up to this log's last line (several nodes: evidence/tail.py).

        Appends waiting together share one push; the lock keeps pushes and trims in order.
        """
        assert self._tail is not None
        if self._tail_synced and self._tail_end > self._seq:
            return
        async with self._tail_lock:
            upto = self._seq
            offset = upto - len(self._lines)
            if not self._tail_synced:
                first = self._stored_seq() + 1
                if await self._tail.replace(self._local_name, self._lines[first - 1 - offset :]):
                    self._tail_synced, self._tail_first, self._tail_end = True, first, upto + 1
            elif self._tail_end <= upto:
                if await self._tail.push(self._local_name, self._lines[self._tail_end - 1 - offset : upto - offset]):
                    self._tail_end = upto + 1
                else:
                    self._tail_synced = False  # unknown what Redis holds: replace it next time

    async def _trim_tail(self) -> None:
        """Drop from the shared copy the lines the store now holds."""
        assert self._tail is not None
        async with self._tail_lock:
            if not self._tail_synced:
                return
            count = min(self._stored_seq(), self._tail_end - 1) - self._tail_first + 1
            if count > 0:
                if await self._tail.shipped(self._local_name, count):
                    self._tail_first += count
                else:
                    self._tail_synced = False

    async def flush(self) -> None:
        """Ship every line the object store does not have (full chunks once, the open one again)."""
        async with self._ship_lock:
            for chunk in list(self._chunks):
                end = self._end(chunk)
                if chunk.stored >= end - chunk.first:
                    continue
                await self._store.put(chunk.key, b"".join(self._lines[chunk.first : end]), "application/x-ndjson")
                chunk.stored = end - chunk.first
            if self._tail is not None:
                await self._trim_tail()
            if self._local is not None and not self.dirty:
                # every line of the journal file is in the store now; start it afresh
                self._local.reset(self._local_name)

    def forget_local(self) -> None:
        """Drop the local journal file (the log is complete in the store)."""
        if self._local is not None and not self.dirty:
            self._local.remove(self._local_name)
