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
     "rows": [[record id, version number, *summary fields], ...]}

Version numbers are 63-bit digests of the tags (an int per record instead of a tag string,
for the memory of a few hundred thousand of them).
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import hashlib
import json
import logging
from typing import Any, Iterable, Optional

from storage.objects import ObjectNotFound, ObjectStore

logger = logging.getLogger(__name__)

FORMAT = "takan-index-copy/1"
#: gzip level: the copy is written rarely and read at every start; 6 is zlib's own default
LEVEL = 6

#: One row of the copy: the record's id, its version number and its summary's fields.
Row = tuple[str, int, list[Any]]


def version_number(tag: Optional[str]) -> Optional[int]:
    """The stored version tag ``tag`` as a 63-bit number (None stays None: not known)."""
    if tag is None:
        return None
    return int.from_bytes(hashlib.blake2b(tag.encode(), digest_size=8).digest(), "big") >> 1


class IndexCopy:
    """The stored copy of the index of the records under ``of``, kept at ``key``."""

    def __init__(self, store: ObjectStore, key: str, of: str) -> None:
        self._store = store
        self.key = key
        self.of = of

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
            if not (isinstance(row, list) and len(row) >= 2 and isinstance(row[0], str) and type(row[1]) is int):
                raise ValueError("a row is not [id, version, ...fields]")
            rows[row[0]] = (row[1], row[2:])
        return rows

    async def save(self, rows: Iterable[Row]) -> int:
        """Store ``rows`` as the copy (replacing the one before); returns its size in bytes."""
        document = {
            "format": FORMAT,
            "of": self.of,
            "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": [[record_id, version, *fields] for record_id, version, fields in rows],
        }
        data = await asyncio.to_thread(_encode, document)
        await self._store.put(self.key, data, "application/gzip")
        return len(data)


def _encode(document: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(), LEVEL, mtime=0)
