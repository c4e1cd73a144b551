"""Inspection records and their life cycle.

An inspection's record is a JSON object in the object store (the system of record) at
``records/inspections/<id>.json``; :class:`InspectionBook` keeps in memory the records that
are still in play (open, or ended and not yet judged) and, bounded, the most recently used
finished ones; any other is read back from the store when asked for. A long-running server's
memory therefore does not grow with the number of inspections it has seen (issue 13's soak:
the server's RSS rose by about 8 kB per inspection while the book kept every record).
Listings and reports range over a :class:`~approval.record_index.RecordIndex` of every
record's summary, kept with each save and reload; a listing reads from the store only the
records of the page it returns. The index is kept in the store too
(:mod:`approval.index_copy`), so that a start reads only the records changed since the copy
was written instead of every record.

On several nodes (docs/nodes.md) the book is given :class:`SharedRecords`: each change is
made under a cross-node lock on a copy read afresh from the store (no node overwrites a
change it has not seen), and announced, so that the other nodes reload it; an id this node
does not know is looked up in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime
import heapq
import itertools
import json
import logging
import secrets
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncContextManager, AsyncIterator, Callable, Iterator, Optional, Protocol

from privacy.fieldcrypto import FieldCipher, decrypt_fields, encrypt_fields, field_context
from storage.objects import ObjectNotFound, ObjectStore

from errors import BadRequest, Conflict, NotFound, ValidationFailed
from .index_copy import IndexCopy
from .record_index import Order, RecordIndex, RecordSummary
from .requests import NewInspection
from .templates import Template, Templates

logger = logging.getLogger(__name__)

RECORD_PREFIX = "records/inspections/"
SENSITIVE_APPLICANT_FIELDS = ("id_number", "contact_phone")
#: Not over yet: an interrupted session can be resumed, so its case stays taken (409).
OPEN_STATUSES = ("scheduled", "live", "interrupted")
# Status changes the record allows; anything else is a 409.
TRANSITIONS = {
    "scheduled": ("live", "cancelled", "ended", "expired"),
    "live": ("ended", "cancelled", "interrupted"),
    "interrupted": ("live", "ended", "cancelled"),
    "ended": ("judged",),
    "judged": ("reviewed",),
    "reviewed": (),
    "cancelled": (),
    "expired": (),
}
#: Records the book always holds in memory: the session is not over, or it ended and the rules
#: have yet to judge it (Decisions.start looks for those after a restart). Few at any time.
RESIDENT_STATUSES = (*OPEN_STATUSES, "ended")
#: Finished records (judged, reviewed, cancelled, expired) kept in memory after their last use,
#: least recently used out first: the seal, the webhook and the approval core's reads that
#: follow a judgement find the record without a store read. A few kB each.
FINISHED_KEPT = 256
#: Store reads in flight at once when the start or a listing reads records the book does not hold.
LIST_READS = 32
#: Where the index's stored copy is kept (approval/index_copy.py): outside RECORD_PREFIX, which
#: holds records only.
INDEX_COPY_KEY = "indexes/inspections.json.gz"
#: Why an inspection is over (the record's ``end_reason``, CONTRACT.md "Additions (2026-12)").
END_REASONS = ("ended", "abandoned", "cancelled")


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(moment: Optional[datetime.datetime]) -> Optional[str]:
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(value: Optional[str]) -> Optional[datetime.datetime]:
    if value is None:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Inspection:
    """One inspection: the request, its status, and what happened."""

    id: str
    case_no: str
    item_code: str
    item_name: str
    applicant: dict[str, Any]
    site: dict[str, Any]
    checkpoints: list[dict[str, Any]]
    callback_url: Optional[str]
    scheduled_at: Optional[str]
    created_at: str
    expires_at: str
    api_key_id: str
    status: str = "scheduled"
    started_at: Optional[str] = None
    ended_at: Optional[str] = None
    cancel_reason: Optional[str] = None
    participants: list[dict[str, Any]] = field(default_factory=list)
    verdict: Optional[dict[str, Any]] = None
    manifest: Optional[dict[str, Any]] = None
    template_version: Optional[str] = None
    inspector_user_id: Optional[str] = None
    #: The assigned inspector's real name, kept with the id so records and webhooks name them.
    inspector_name: Optional[str] = None
    #: ended | abandoned | cancelled once over (None while open, and for expired).
    end_reason: Optional[str] = None
    #: When the sweeper (session/sweeper.py) first found nobody in the open session.
    vacant_since: Optional[str] = None
    #: Invited observers, each with their own link: {link_id, name, kind: staff|guest, user_id, expires_at, invited_by}.
    observers: list[dict[str, Any]] = field(default_factory=list)
    # what was read from captures (recognition/): {kind, evidence_key, fields, matches, at, ...}
    recognitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def duration_s(self) -> Optional[float]:
        start = parse_rfc3339(self.started_at)
        if start is None:
            return None
        end = parse_rfc3339(self.ended_at) or now_utc()
        return round((end - start).total_seconds(), 3)

    def checkpoint(self, code: str) -> dict[str, Any]:
        """The checkpoint ``code`` of this inspection's checklist (400 if there is none)."""
        for checkpoint in self.checkpoints:
            if checkpoint["code"] == code:
                return checkpoint
        raise BadRequest(f"checkpoint {code!r} is not on this inspection's checklist")

    @staticmethod
    def evidence_key(code: str, folder: str, n: int, extension: str) -> str:
        """The key of the ``n``-th still or photo of checkpoint ``code`` (session/service.py
        picks an ``n`` no blob has)."""
        return f"{folder}/{code}/{n}.{extension}"

    def add_evidence(self, code: str, key: str) -> None:
        checkpoint = self.checkpoint(code)
        checkpoint["captured"] = True
        checkpoint["evidence"].append(key)

    def evidence_summary(self) -> dict[str, Any]:
        """What the manifest says about the inspection (no ID or phone numbers)."""
        return {
            "id": self.id,
            "case_no": self.case_no,
            "item_code": self.item_code,
            "item_name": self.item_name,
            "applicant_name": self.applicant.get("name"),
            "site_address": self.site.get("address"),
            "status": self.status,
            "end_reason": self.end_reason,
            "inspector": None if self.inspector_user_id is None else {"user_id": self.inspector_user_id, "name": self.inspector_name},
            "observers": [{"name": o["name"], "kind": o["kind"], "user_id": o.get("user_id")} for o in self.observers],
            "scheduled_at": self.scheduled_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_ms": None if self.duration_s is None else int(self.duration_s * 1000),
            "checkpoints": [
                {"code": c["code"], "required": c["required"], "captured": c["captured"], "evidence": c["evidence"]}
                for c in self.checkpoints
            ],
        }

    def to_json(self, cipher: Optional[FieldCipher] = None) -> bytes:
        """The stored form; with a cipher, ID and phone numbers are encrypted (5.8, 9.5)."""
        data = asdict(self)
        encrypt_fields(data["applicant"], SENSITIVE_APPLICANT_FIELDS, cipher, self._context(self.id))
        return json.dumps(data, ensure_ascii=False, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, cipher: Optional[FieldCipher] = None) -> "Inspection":
        fields = json.loads(data)
        decrypt_fields(fields.get("applicant") or {}, SENSITIVE_APPLICANT_FIELDS, cipher, cls._context(fields["id"]))
        return cls(**fields)

    @staticmethod
    def _context(inspection_id: str) -> Callable[[str], str]:
        return lambda name: field_context("inspection", inspection_id, f"applicant.{name}")


class SharedRecords(Protocol):
    """What the book needs when other nodes change the same records (session/recordsync.py)."""

    def exclusive(self, name: str) -> AsyncContextManager[None]:
        """Hold the cross-node lock ``name`` (a record id, or ``case-<case_no>``)."""
        ...

    async def announce(self, inspection_id: str) -> None:
        """Tell the other nodes that the record was saved."""
        ...


class InspectionBook:
    """Creates, finds and updates inspection records."""

    def __init__(
        self, store: ObjectStore, templates: Templates, cipher: Optional[FieldCipher] = None, keep_finished: int = FINISHED_KEPT
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._templates = templates
        #: records in RESIDENT_STATUSES, held until they are finished
        self._records: dict[str, Inspection] = {}
        #: finished records, least recently used first, at most ``keep_finished``
        self._finished: OrderedDict[str, Inspection] = OrderedDict()
        self.keep_finished = keep_finished
        #: a summary of every stored record, for listings and reports
        self._index = RecordIndex()
        #: counts the records held or changed, so that a listing's read that raced a change is not kept
        self._generation = 0
        self._lock = asyncio.Lock()
        self._started = False
        #: Set when several nodes share the records (takan/app.py); None on one node.
        self.shared: Optional[SharedRecords] = None
        #: the index's stored copy, and the version of each record its summary came with
        self.index_copy = IndexCopy(store, INDEX_COPY_KEY, RECORD_PREFIX)

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Index every stored record, from the index's stored copy where a record is unchanged
        since; hold those still in play and the most recent finished ones read. Reads the
        others LIST_READS at a time and keeps no more than that many; idempotent."""
        if self._started:
            return
        copy = self.index_copy
        # in play: held whole, so read
        listed, reused, unread = await copy.reuse(RecordSummary.from_row, lambda s: s.status in RESIDENT_STATUSES)
        for summary in reused:
            self._index.put(summary)
        # the newest finished records read, as a min-heap on (created_at, id), kept to keep_finished
        newest: list[tuple[Order, Inspection]] = []
        async for batch in self._batches([_key(record_id) for record_id in unread]):
            for record in batch:
                copy.note(record.id, listed.get(record.id))
                if record.status in RESIDENT_STATUSES:
                    self._hold(record)
                    continue
                self._index.put(_summary(record))
                if len(newest) < self.keep_finished:
                    heapq.heappush(newest, (_created(record), record))
                elif newest and _created(record) > newest[0][0]:
                    heapq.heapreplace(newest, (_created(record), record))
        for _, record in sorted(newest, key=lambda item: item[0]):  # oldest first: the newest are used last
            self._hold(record)
        self._started = True
        logger.info("indexed %d inspection records, %d of them read (%d from the index copy); holding %d in play and "
                    "%d finished", len(self._index), len(unread), len(self._index) - len(unread), len(self._records),
                    len(self._finished))
        await copy.write_if_due(self._rows)
        copy.keep(self._rows, self._catch_up)

    def _rows(self) -> Iterator[tuple[str, list[Any]]]:
        return ((summary.id, summary.row()) for summary in self._index)

    async def _catch_up(self) -> None:
        """With several nodes, what the upkeep does first: see :meth:`refresh`."""
        if self.shared is not None:
            await self.refresh()

    async def close(self) -> None:
        """Store the index's copy if it changed; let go of every record and the index;
        idempotent (start() reads them again)."""
        if self._started:
            await self.index_copy.close(self._rows)
        self._records.clear()
        self._finished.clear()
        self._index.clear()
        self._started = False

    @property
    def held(self) -> int:
        """Records in memory (the memory test checks finished ones do not pile up)."""
        return len(self._records) + len(self._finished)

    def _hold(self, record: Inspection) -> Inspection:
        """Keep ``record`` (as stored, or just saved) in memory: for good while it is in play,
        else among the recent finished ones (dropping the least recently used beyond
        ``keep_finished``); and its summary in the index."""
        self._index.put(_summary(record))
        self._generation += 1
        if record.status in RESIDENT_STATUSES:
            self._finished.pop(record.id, None)
            self._records[record.id] = record
            return record
        self._records.pop(record.id, None)
        self._finished[record.id] = record
        self._finished.move_to_end(record.id)
        while len(self._finished) > self.keep_finished:
            self._finished.popitem(last=False)
        return record

    async def _read(self, key: str) -> Optional[Inspection]:
        """The record stored at ``key``; None if it is gone (disposed of) or unreadable."""
        try:
            return Inspection.from_json(await self._store.get(key), self._cipher)
        except ObjectNotFound:
            return None
        except (ValueError, TypeError) as exc:
            logger.error("inspection record %s is unreadable (%s); skipped", key, exc)
            return None

    async def _batches(self, keys: list[str]) -> AsyncIterator[list[Inspection]]:
        """The records stored at ``keys`` (``.json`` ones), LIST_READS at a time."""
        keys = [key for key in keys if key.endswith(".json")]
        for start in range(0, len(keys), LIST_READS):
            batch = await asyncio.gather(*(self._read(key) for key in keys[start : start + LIST_READS]))
            yield [record for record in batch if record is not None]

    def get(self, inspection_id: str) -> Inspection:
        """A record the book holds (404 otherwise): for callers that just changed or admitted
        it; anything else awaits :meth:`load`."""
        record = self.find(inspection_id)
        if record is None:
            raise NotFound(f"no inspection with id {inspection_id!r}")
        return record

    async def load(self, inspection_id: str) -> Inspection:
        """The record, read from the store if the book does not hold it (404 if none)."""
        record = await self.fetch(inspection_id)
        if record is None:
            raise NotFound(f"no inspection with id {inspection_id!r}")
        return record

    async def _load(self, inspection_id: str) -> Optional[Inspection]:
        """The stored record, put into the index (the same object is updated, so that
        holders of it see the change); None if the store has none."""
        try:
            data = await self._store.get(_key(inspection_id))
        except (ObjectNotFound, ValueError):  # ValueError: an id that is no valid key
            if self.find(inspection_id) is None:
                self._index.drop(inspection_id)  # gone from the store (disposed of)
            return None
        stored = Inspection.from_json(data, self._cipher)
        if self.shared is not None:  # perhaps changed on another node: which version is not known
            self.index_copy.note(stored.id, None)
            self.index_copy.differ += 1
        record = self.find(stored.id)
        if record is None:
            record = stored
        else:
            for item in dataclasses.fields(Inspection):
                setattr(record, item.name, getattr(stored, item.name))
        return self._hold(record)

    async def reload(self, inspection_id: str) -> Optional[Inspection]:
        """Read the record again from the store (another node changed it)."""
        async with self._lock:
            return await self._load(inspection_id)

    async def fetch(self, inspection_id: str) -> Optional[Inspection]:
        """The record, from the store if this node does not know it (created on another)."""
        return self.find(inspection_id) or await self.reload(inspection_id)

    @contextlib.asynccontextmanager
    async def _changing(self, inspection_id: str) -> AsyncIterator[Inspection]:
        """The record to change in the block, saved after it (not if it raises)."""
        async with self._lock, self._exclusive(inspection_id):
            # on one node a held record is current; one the book let go is read back
            record = self.find(inspection_id) if self.shared is None else None
            record = record or await self._load(inspection_id)
            if record is None:
                raise NotFound(f"no inspection with id {inspection_id!r}")
            # the block changes the held record in place (callers hold it too); if the block
            # or the save fails, it is put back as it was, so memory never runs ahead of the store
            before = copy.deepcopy(record)
            try:
                yield record
                await self._save(record)
            except BaseException:
                for item in dataclasses.fields(record):
                    setattr(record, item.name, getattr(before, item.name))
                raise
            self._hold(record)  # its status may have changed

    def _exclusive(self, name: str) -> AsyncContextManager[None]:
        return contextlib.nullcontext() if self.shared is None else self.shared.exclusive(name)

    def template_of(self, record: Inspection) -> Optional[Template]:
        return self._templates.find(record.item_code)

    def find(self, inspection_id: str) -> Optional[Inspection]:
        """The record if the book holds it (a use: a finished one stays a while longer)."""
        record = self._records.get(inspection_id)
        if record is None:
            record = self._finished.get(inspection_id)
            if record is not None:
                self._finished.move_to_end(inspection_id)
        return record

    def all(self) -> list[Inspection]:
        """The records in memory, oldest first: every one in play (open, or ended and not yet
        judged) and the recently used finished ones. Listings use :meth:`page`, reports
        :meth:`summaries`."""
        return sorted([*self._records.values(), *self._finished.values()], key=_created)

    def summaries(self) -> list[RecordSummary]:
        """Every record's summary, oldest first (reports that need no more than it holds)."""
        return list(self._index)

    async def page(
        self,
        matches: Callable[[RecordSummary], bool],
        limit: int,
        after: Optional[Order] = None,
        case_no: Optional[str] = None,
    ) -> tuple[list[Inspection], bool]:
        """The first ``limit`` records after ``after`` (in (created_at, id) order) whose
        summary ``matches``, of case ``case_no`` if given; and whether more match.

        Filters on the index, then reads from the store the page's records the book does not
        hold (about ``limit`` reads). A read record is checked again (an index entry can be
        stale when another node's announcement was missed) and refreshes its entry.
        """
        candidates = (summary for summary in self._index.after(after, case_no) if matches(summary))
        found: list[Inspection] = []
        while len(found) < limit:
            wanted = list(itertools.islice(candidates, limit - len(found)))
            if not wanted:
                return found, False
            found.extend(r for r in await self._read_page(wanted) if r is not None and matches(_summary(r)))
        return found, next(candidates, None) is not None

    async def _read_page(self, wanted: list[RecordSummary]) -> list[Optional[Inspection]]:
        """The records of ``wanted``, in order: held ones as they are, the others read from the
        store, LIST_READS at a time, and held among the recent finished ones (bounded as
        every finished record is) unless a record changed while they were read, which the
        read may predate. None for one gone from the store."""
        records: list[Optional[Inspection]] = [self.find(summary.id) for summary in wanted]
        missing = [n for n, record in enumerate(records) if record is None]
        for start in range(0, len(missing), LIST_READS):
            batch = missing[start : start + LIST_READS]
            generation = self._generation
            read = await asyncio.gather(*(self._read(_key(wanted[n].id)) for n in batch))
            unchanged = self._generation == generation
            for n, record in zip(batch, read):
                held = self.find(wanted[n].id)
                if held is not None:  # held meanwhile: that one is current
                    records[n] = held
                elif not unchanged:
                    records[n] = record  # shown as read, neither held nor indexed
                elif record is None:
                    self._index.drop(wanted[n].id)
                else:
                    records[n] = self._hold(record)
        return records

    async def refresh(self) -> int:
        """Bring the index up to the store: read the records saved or changed elsewhere since
        this node last knew them (on another node whose announcement this node missed, or
        before it listened), and forget those gone from the store; returns how many it read."""
        copy = self.index_copy
        known = dict(copy.versions)  # before the listing: a record saved after it is not gone
        listed = await copy.listed()
        stale = copy.stale(listed)
        read = 0
        for start in range(0, len(stale), LIST_READS):
            ids = stale[start : start + LIST_READS]
            async with self._lock:  # no change of this node's in between: what is read is current
                records = await asyncio.gather(*(self._read(_key(record_id)) for record_id in ids))
                for record_id, record in zip(ids, records):
                    if record is None or record.id != record_id:
                        continue
                    read += 1
                    copy.note(record.id, listed[record_id])
                    held = self.find(record_id)
                    if held is not None:
                        for item in dataclasses.fields(Inspection):
                            setattr(held, item.name, getattr(record, item.name))
                        self._hold(held)
                    elif record.status in RESIDENT_STATUSES:
                        self._hold(record)
                    else:
                        self._index.put(_summary(record))
        # stored before the listing, unchanged since and not listed: disposed of
        gone = [record_id for record_id, version in known.items()
                if record_id not in listed and copy.versions.get(record_id) == version and self.find(record_id) is None]
        for record_id in gone:
            copy.note(record_id, None)
            self._index.drop(record_id)
        copy.differ += read + len(gone)
        if read or gone:
            logger.info("inspection index caught up with the store: %d records read, %d gone", read, len(gone))
        return read

    def open_for_case(self, case_no: str) -> Optional[Inspection]:
        return next((r for r in self._records.values() if r.case_no == case_no and r.is_open), None)

    async def create(
        self,
        new: NewInspection,
        api_key_id: str,
        link_ttl: datetime.timedelta,
        inspector_user_id: Optional[str] = None,
        inspector_name: Optional[str] = None,
    ) -> Inspection:
        checkpoints = new.checkpoints
        template = self._templates.find(new.item_code)
        if checkpoints is None:
            if template is None:
                raise ValidationFailed(
                    f"no checklist template for item_code {new.item_code!r}; send checkpoints",
                    errors=[{"field": "checkpoints", "message": "is required for this item_code"}],
                )
            checkpoints = template.checkpoints
        created = now_utc()
        start = max(created, new.scheduled_at or created)
        async with self._lock, self._exclusive(f"case-{new.case_no}"):
            existing = self.open_for_case(new.case_no)
            if existing is not None:
                raise Conflict(
                    f"case {new.case_no!r} already has an open inspection {existing.id} "
                    f"({existing.status}); cancel it first"
                )
            record = Inspection(
                id=new_id(),
                case_no=new.case_no,
                item_code=new.item_code,
                item_name=new.item_name,
                applicant=asdict(new.applicant),
                site=asdict(new.site),
                checkpoints=[
                    {"code": c.code, "title": c.title, "required": c.required, "captured": False, "evidence": []}
                    for c in checkpoints
                ],
                callback_url=new.callback_url,
                scheduled_at=rfc3339(new.scheduled_at),
                created_at=rfc3339(created) or "",
                expires_at=rfc3339(start + link_ttl) or "",
                api_key_id=api_key_id,
                template_version=template.version if template else None,
                inspector_user_id=inspector_user_id,
                inspector_name=inspector_name,
            )
            await self._save(record)
            self._hold(record)
        logger.info("inspection %s created for case %s", record.id, record.case_no)
        return record

    async def transition(self, inspection_id: str, status: str, **changes: Any) -> Inspection:
        """Move the record to ``status`` (409 if the life cycle does not allow it)."""
        async with self._changing(inspection_id) as record:
            if status != record.status and status not in TRANSITIONS[record.status]:
                raise Conflict(f"inspection {inspection_id} is {record.status}; it cannot become {status}")
            record.status = status
            for name, value in changes.items():
                setattr(record, name, value)
        return record

    async def assign(self, inspection_id: str, user_id: str, name: str) -> Inspection:
        """Name ``user_id`` the inspector of an inspection that is not over (409 otherwise)."""
        async with self._changing(inspection_id) as record:
            if not record.is_open:
                raise Conflict(f"inspection {inspection_id} is {record.status}; an inspection that is over cannot be reassigned")
            record.inspector_user_id, record.inspector_name = user_id, name
        return record

    async def reschedule(self, inspection_id: str, when: datetime.datetime, link_ttl: datetime.timedelta) -> Inspection:
        """Move a scheduled inspection to ``when``; its links are valid ``link_ttl`` from then."""
        async with self._changing(inspection_id) as record:
            if record.status != "scheduled":
                raise Conflict(f"inspection {inspection_id} is {record.status}; only a scheduled inspection can be rescheduled")
            record.scheduled_at = rfc3339(when)
            record.expires_at = rfc3339(max(now_utc(), when) + link_ttl) or record.expires_at
        return record

    async def add_observer(self, inspection_id: str, entry: dict[str, Any]) -> Inspection:
        async with self._changing(inspection_id) as record:
            if not record.is_open:
                raise Conflict(f"inspection {inspection_id} is {record.status}; nobody can be invited to it")
            record.observers.append(dict(entry))
        return record

    async def add_participant(self, inspection_id: str, entry: dict[str, Any]) -> Inspection:
        """Someone joined the session for the first time (``entry["id"]``: once per participant)."""
        async with self._changing(inspection_id) as record:
            if not any(p.get("id") == entry.get("id") for p in record.participants):
                record.participants.append(dict(entry))
        return record

    def observer(self, inspection_id: str, link_id: str) -> Optional[dict[str, Any]]:
        """The invited observer whose own link carries ``link_id``, if any."""
        record = self.find(inspection_id)
        return next((o for o in record.observers if o.get("link_id") == link_id), None) if record else None

    async def add_evidence(self, inspection_id: str, code: str, key: str) -> Inspection:
        """Checkpoint ``code`` was captured as ``key``."""
        async with self._changing(inspection_id) as record:
            record.add_evidence(code, key)
        return record

    async def add_recognition(self, inspection_id: str, entry: dict[str, Any]) -> Inspection:
        """A capture was read (a licence, a shop sign): keep the reading on the record."""
        async with self._changing(inspection_id) as record:
            record.recognitions.append(dict(entry))
        return record

    async def set_manifest(self, inspection_id: str, reference: dict[str, Any]) -> Inspection:
        """The record points at its latest seal (``{sha256, url}``)."""
        async with self._changing(inspection_id) as record:
            record.manifest = dict(reference)
        return record

    async def _save(self, record: Inspection) -> None:
        info = await self._store.put(_key(record.id), record.to_json(self._cipher), "application/json")
        self.index_copy.saved(record.id, info.version)
        if self.shared is not None:
            await self.shared.announce(record.id)


def _created(record: Inspection) -> Order:
    """The order of listings and cursors: creation time, then id."""
    return (record.created_at, record.id)


def _summary(record: Inspection) -> RecordSummary:
    """What the index holds of ``record``."""
    verdict = record.verdict
    outcome = verdict.get("outcome") if isinstance(verdict, dict) else None
    return RecordSummary.of(
        record.id, record.case_no, record.item_code, record.status, record.created_at, record.scheduled_at,
        record.started_at, record.ended_at, record.inspector_user_id, outcome if isinstance(outcome, str) else None,
    )


def _key(inspection_id: str) -> str:
    return f"{RECORD_PREFIX}{inspection_id}.json"


def _id_of(key: str) -> str:
    return key[len(RECORD_PREFIX) : -len(".json")]


def new_id() -> str:
    """A sortable, unguessable id: UTC date and time, then 64 random bits."""
    return now_utc().strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(8)
