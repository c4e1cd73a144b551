"""A stored copy of a record index, so that a start reads only the records changed since.

Without it a start lists every record and reads each one (a province's records number in the
hundreds of thousands; 32 reads at a time that is many minutes before the node serves). The
copy holds each record's summary row beside the version tag the store gave the record it was
read from (:meth:`storage.objects.ObjectStore.versions`: an S3 ETag, a local file's inode,
mtime and size). A start lists the versions (one listing, no reads), takes a row whose version
still matches and reads only the records that are new, changed, or not in the copy.

A row counts only on an exact version match, so a stale, partial or foreign copy costs reads,
never a wrong summary: the index stays rebuildable from the records alone (DESIGN.md,
principle 2), and deleting the copy is always safe. Gzipped JSON::

    {"format": "takan-index-copy/1", "of": "records/inspections/", "written_at": "...",
     "rows": [[version number, record id, *the summary's other fields], ...]}

Version numbers are 63-bit digests of the tags (an int per record instead of a tag string,
for the memory of a few hundred thousand of them). The owner of an index (the inspection
book, publicity) tells its :class:`IndexCopy` the version of each record it reads or saves
and how many differ from the copy; the copy is written again when enough do, and at close.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import hashlib
import json
import logging
from typing import Any, Awaitable, Callable, Iterable, Optional, Protocol, TypeVar

from storage.objects import ObjectNotFound, ObjectStore

logger = logging.getLogger(__name__)

FORMAT = "takan-index-copy/1"
#: gzip level: the copy is written rarely and read at every start; 6 is zlib's own default
LEVEL = 6

#: The copy is written again once this many records, or a sixteenth of all if that is more,
#: differ from it (and at close when any does): a start reads at most about that many, and
#: on a bucket with object lock each copy is kept for the retention period, so it is not
#: rewritten for every change (a copy costs about 30 B a record, gzipped).
COPY_AFTER_CHANGES = 1024
#: How often the owner's upkeep looks whether to write the copy (and catches up, see keep()).
UPKEEP_S = 300.0
#: How long close() waits for the copy to be stored.
CLOSE_TIMEOUT_S = 30.0

#: What the owner's index holds: each record's id and its summary's fields (the id first).
Rows = Callable[[], Iterable[tuple[str, list[Any]]]]


class _Summary(Protocol):
    @property
    def id(self) -> str: ...


Summary = TypeVar("Summary", bound=_Summary)


def _summary_of(record_id: str, fields: Optional[list[Any]], from_row: Callable[[list[Any]], Summary]) -> Optional[Summary]:
    """The summary in a copy's ``fields`` (:meth:`IndexCopy.matching`) of the record, or None
    (none there, or not usable: said in the log, and the caller reads the record)."""
    if fields is None:
        return None
    try:
        summary = from_row(fields)
    except ValueError as exc:
        logger.warning("record %s: its row in the index copy is unusable (%s); reading the record", record_id, exc)
        return None
    return summary if summary.id == record_id else None


def string_fields(row: Any, names: tuple[str, ...], optional: frozenset[str]) -> list[Optional[str]]:
    """``row`` as a copy's summary fields ``names`` (strings; None allowed for ``optional``
    ones); ValueError if it is not."""
    if not isinstance(row, (list, tuple)) or len(row) != len(names):
        raise ValueError(f"a summary row has {len(names)} fields")
    for name, value in zip(names, row):
        if not (isinstance(value, str) or (value is None and name in optional)):
            raise ValueError(f"a summary's {name} must be a string, not {value!r}")
    return list(row)


def version_number(tag: Optional[str]) -> Optional[int]:
    """The stored version tag ``tag`` as a 63-bit number (None stays None: not known)."""
    if tag is None:
        return None
    return int.from_bytes(hashlib.blake2b(tag.encode(), digest_size=8).digest(), "big") >> 1


class IndexCopy:
    """The stored copy of the index of the records under ``of``, kept at ``key``; the
    version of each record the owner's summary was read or saved with; how many differ."""

    def __init__(self, store: ObjectStore, key: str, of: str) -> None:
        self._store = store
        self.key = key
        self.of = of
        #: the version number of each stored record the owner's summary of it came with
        self.versions: dict[str, int] = {}
        #: how many records may differ from the stored copy (saved, reloaded, gone since)
        self.differ = 0
        self.every_s = UPKEEP_S
        self._upkeep: Optional[asyncio.Task[None]] = None

    async def listed(self) -> dict[str, Optional[int]]:
        """Every stored record's id (its key under ``of`` without ``.json``) with its version
        number (None: not known yet), from one listing."""
        versions = await self._store.versions(self.of)
        return {key[len(self.of) : -len(".json")]: version_number(tag) for key, tag in versions.items()
                if key.endswith(".json")}

    async def reuse(
        self, from_row: Callable[[list[Any]], Summary], whole: Callable[[Summary], bool]
    ) -> tuple[dict[str, Optional[int]], list[Summary], list[str]]:
        """What a start takes from the copy: the listing (:meth:`listed`), the copy's summaries
        of the records it has at their listed version (noted), and the ids to read, in id
        order (about creation order): records new, changed or not in the copy, and those
        ``whole`` says the owner holds whole. Counts what differs from the copy."""
        listed = await self.listed()
        rows = await self.load()
        reused: list[Summary] = []
        unread: list[str] = []
        for record_id in sorted(listed):
            version = listed[record_id]
            summary = _summary_of(record_id, self.matching(version, rows.get(record_id)), from_row)
            if summary is not None and version is not None and not whole(summary):
                reused.append(summary)
                self.note(summary.id, version)  # the summary's own id: one string per record
            else:
                unread.append(record_id)
                self.differ += summary is None
        self.differ += sum(1 for record_id in rows if record_id not in listed)  # gone since
        return listed, reused, unread

    def stale(self, listed: dict[str, Optional[int]]) -> list[str]:
        """The ids in ``listed`` (:meth:`listed`) whose version is not known or is not the
        one the owner's summary came with: what a catch-up reads, in id order."""
        return sorted(i for i, version in listed.items() if version is None or self.versions.get(i) != version)

    def note(self, record_id: str, version: Optional[int]) -> None:
        """The owner's summary of the record is the stored one of ``version`` (None: of a
        version not known, so the copy leaves it out and a start reads it)."""
        if version is None:
            self.versions.pop(record_id, None)
        else:
            self.versions[record_id] = version

    def saved(self, record_id: str, tag: Optional[str]) -> None:
        """The owner stored the record, and the store tagged it ``tag`` (``ObjectInfo.version``)."""
        self.note(record_id, version_number(tag))
        self.differ += 1

    def matching(self, version: Optional[int], entry: Optional[tuple[int, list[Any]]]) -> Optional[list[Any]]:
        """The copy's fields of a record listed at ``version``, if the copy has that version."""
        if version is None or entry is None or entry[0] != version:
            return None
        return entry[1]

    def keep(self, rows: Rows, catch_up: Optional[Callable[[], Awaitable[object]]] = None) -> None:
        """Start the upkeep: every ``every_s``, ``catch_up()`` (the owner's look at the store
        for changes made elsewhere), then write the copy if enough differs from it."""
        if self._upkeep is None:
            self._upkeep = asyncio.create_task(self._keep_up(rows, catch_up), name=f"index-copy {self.key}")

    async def _keep_up(self, rows: Rows, catch_up: Optional[Callable[[], Awaitable[object]]]) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                if catch_up is not None:
                    await catch_up()
                if self._due():
                    await self.write(rows())
            except Exception as exc:  # the store is down, say: the next round tries again
                logger.warning("index copy %s: upkeep failed (%s); retrying in %.0f s", self.key, exc, self.every_s)

    async def write_if_due(self, rows: Rows) -> None:
        """Write the copy now if enough differs from it (a start that read many records)."""
        if self._due():
            await self._write_logged(rows())

    def _due(self) -> bool:
        return self.differ >= max(COPY_AFTER_CHANGES, len(self.versions) // 16)

    async def close(self, rows: Rows) -> None:
        """Stop the upkeep; write the copy if anything differs from it; forget the versions.
        Idempotent. A copy that cannot be stored is said in the log (the next start reads
        more records, nothing else)."""
        upkeep, self._upkeep = self._upkeep, None
        if upkeep is not None:
            upkeep.cancel()
            await asyncio.gather(upkeep, return_exceptions=True)
        if self.differ:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._write_logged(rows())
            except TimeoutError:
                logger.warning("index copy %s was not stored within %.0f s; the next start reads the records "
                               "changed since the last one", self.key, CLOSE_TIMEOUT_S)
        self.versions.clear()
        self.differ = 0

    async def _write_logged(self, rows: Iterable[tuple[str, list[Any]]]) -> None:
        try:
            await self.write(rows)
        except Exception as exc:
            logger.warning("index copy %s was not stored (%s); the next start reads the records changed since the "
                           "last one", self.key, exc)

    async def write(self, rows: Iterable[tuple[str, list[Any]]]) -> None:
        """Store the rows whose record version is known (the others are read at the next start)."""
        known = [(record_id, version, fields) for record_id, fields in rows
                 if (version := self.versions.get(record_id)) is not None]
        differ, self.differ = self.differ, 0
        try:
            size = await self.save(known)
        except BaseException:
            self.differ += differ
            raise
        logger.info("stored the index copy %s: %d records, %d kB", self.key, len(known), size // 1024)

    async def load(self) -> dict[str, tuple[int, list[Any]]]:
        """The copy's rows by record id; empty if there is none or it cannot be used (said in
        the log: the start then reads every record, as it would without a copy)."""
        try:
            data = await self._store.get(self.key)
        except ObjectNotFound:
            return {}
        try:
            return await asyncio.to_thread(self._decode, data)
        except (OSError, EOFError, ValueError, TypeError, KeyError) as exc:
            logger.warning("the index copy %s is unusable (%s); reading every record instead", self.key, exc)
            return {}

    def _decode(self, data: bytes) -> dict[str, tuple[int, list[Any]]]:
        document = json.loads(gzip.decompress(data))
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        if document.get("of") != self.of:
            raise ValueError(f"it indexes {document.get('of')!r}, not {self.of!r}")
        rows: dict[str, tuple[int, list[Any]]] = {}
        for row in document["rows"]:
            if not (isinstance(row, list) and len(row) >= 2 and type(row[0]) is int and isinstance(row[1], str)):
                raise ValueError("a row is not [version, id, ...fields]")
            rows[row[1]] = (row[0], row[1:])
        return rows

    async def save(self, rows: Iterable[tuple[str, int, list[Any]]]) -> int:
        """Store ``rows`` (record id, version, summary fields with the id first) as the copy,
        replacing the one before; returns its size in bytes."""
        document = {
            "format": FORMAT,
            "of": self.of,
            "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": [[version, *fields] for _, version, fields in rows],
        }
        data = await asyncio.to_thread(_encode, document)
        await self._store.put(self.key, data, "application/gzip")
        return len(data)


def _encode(document: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(), LEVEL, mtime=0)
