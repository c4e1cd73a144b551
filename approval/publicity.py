"""Double publicity of licence decisions (DB3714/T 0014-2023, 8.4).

For an approved case, :meth:`Publicity.create` fills the publicity form from the inspection's
applicant and the decision (the fields of 8.4.2) as a ``draft``, due within 7 working days of
the decision date (8.4.1, counted on the :class:`approval.workdays.WorkingCalendar`).
:meth:`Publicity.publish` uploads it (``published``; the upload time is the 数据上传时间);
:meth:`Publicity.withdraw` stops publishing a decision that was revoked (8.4.4).

States: ``draft -> published -> withdrawn``, and ``draft -> withdrawn`` for a decision revoked
before it was published. Records live at ``records/publicity/<id>.json``.

:meth:`Publicity.feed` is what the public channels (8.4.3) pull: only public fields, and for a
natural person's resident ID or passport the number is masked (a credit code, which legal
persons, other organisations and individual businesses have, is published in full). A
withdrawn entry appears as a tombstone that names the decision and the reason, without the
counterpart's details, so that the channels take it down instead of republishing it.

Memory holds a :class:`~approval.publicity_index.PublicityIndex` of every record's state and
dates, and at most CACHED whole records; the feed, the overdue list and the lookups select on
the index and read the records they return from the store. The index is kept in the store too
(:mod:`approval.index_copy`): a start reads only the records changed since the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import re
from functools import partial
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, AsyncContextManager, Iterator, Literal, Optional, get_args

from privacy.fieldcrypto import FieldCipher, decrypt_fields, encrypt_fields, field_context
from storage.objects import ObjectNotFound, ObjectStore

from errors import Conflict, NotFound, ValidationFailed
from .index_copy import IndexCopy
from .inspections import SharedRecords, new_id, now_utc, parse_rfc3339, rfc3339
from .ledger import inspection_view, mask_id
from .publicity_index import PublicityIndex, PublicitySummary
from .workdays import CalendarYearUnknown, WorkingCalendar, china_date

__all__ = [
    "DUE_WORKING_DAYS",
    "LICENCE_CATEGORIES",
    "RECORD_PREFIX",
    "Publicity",
    "PublicityRecord",
    "PublicityState",
]

logger = logging.getLogger(__name__)

RECORD_PREFIX = "records/publicity/"
#: Where the index's stored copy is kept (outside RECORD_PREFIX, which holds records only).
INDEX_COPY_KEY = "indexes/publicity.json.gz"
#: What a record id looks like (approval.inspections.new_id): anything else is not looked up.
_ID = re.compile(r"\d{14}-[0-9a-f]{16}")
#: 8.4.1: publish within 7 working days of the decision.
DUE_WORKING_DAYS = 7
#: Whole records kept in memory after their last use (the one just drafted is published next).
CACHED = 128
#: Store reads in flight at once (the start, a feed).
READS = 32
PublicityState = Literal["draft", "published", "withdrawn"]
STATES: tuple[PublicityState, ...] = get_args(PublicityState)
#: 许可类别 of the national licensing-information data standard, with English aliases.
LICENCE_CATEGORIES = {
    "普通": "普通", "general": "普通",
    "特许": "特许", "franchise": "特许",
    "认可": "认可", "recognition": "认可",
    "核准": "核准", "approval": "核准",
    "登记": "登记", "registration": "登记",
    "其他": "其他", "other": "其他",
}  # fmt: skip
COUNTERPART_CATEGORIES = {"legal_person": "法人", "other_org": "非法人组织", "natural_person": "自然人"}
_DECISION_FIELDS = {
    "document_name": 200,
    "document_no": 100,
    "authority": 200,
    "licence_category": 20,
    "licence_content": 4000,
}


@dataclass(frozen=True, slots=True)
class PublicityRecord:
    """One decision's publicity record: the 8.4.2 fields and where it stands.

    ``uploaded_at`` (数据上传时间) is set when it is published; ``due_on`` is the last day
    of the 7-working-day limit. ``updated_at`` orders the public feed.
    """

    id: str
    inspection_id: str
    case_no: str
    counterpart_name: str
    counterpart_category: str
    id_type: str
    id_number: str
    document_name: str
    document_no: str
    authority: str
    licence_category: str
    licence_content: str
    decision_date: str
    due_on: str
    state: PublicityState
    created_at: str
    updated_at: str
    uploaded_at: Optional[str] = None
    withdrawn_at: Optional[str] = None
    withdraw_reason: Optional[str] = None

    @property
    def key(self) -> str:
        return f"{RECORD_PREFIX}{self.id}.json"

    @property
    def published_at(self) -> Optional[str]:
        """When it went public (the upload time); None if it never did."""
        return self.uploaded_at

    @property
    def on_time(self) -> Optional[bool]:
        """Whether it was published by its due date (None while unpublished)."""
        uploaded = parse_rfc3339(self.uploaded_at)
        if uploaded is None:
            return None
        return china_date(uploaded).isoformat() <= self.due_on

    def public_id_number(self) -> str:
        """The ID number as it may be published: a credit code in full, anything else masked."""
        if self.id_type == "USCC":
            return self.id_number
        return mask_id(self.id_number) or ""

    def as_json(self) -> dict[str, Any]:
        """The whole record (for staff and the ledger's ``publicity``), ID number unmasked."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        body["published_at"] = self.published_at
        body["on_time"] = self.on_time
        return body

    def public(self) -> dict[str, Any]:
        """The record as the public feed shows it (a tombstone once withdrawn)."""
        if self.state == "withdrawn":
            return {
                "id": self.id,
                "state": self.state,
                "document_no": self.document_no,
                "authority": self.authority,
                "withdrawn_at": self.withdrawn_at,
                "withdraw_reason": self.withdraw_reason,
                "updated_at": self.updated_at,
            }
        return {
            "id": self.id,
            "state": self.state,
            "counterpart_name": self.counterpart_name,
            "counterpart_category": self.counterpart_category,
            "counterpart_category_label": COUNTERPART_CATEGORIES[self.counterpart_category],
            "id_type": self.id_type,
            "id_number": self.public_id_number(),
            "uploaded_at": self.uploaded_at,
            "document_name": self.document_name,
            "document_no": self.document_no,
            "authority": self.authority,
            "licence_category": self.licence_category,
            "licence_content": self.licence_content,
            "decision_date": self.decision_date,
            "updated_at": self.updated_at,
        }

    def to_record(self, cipher: Optional[FieldCipher] = None) -> bytes:
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        encrypt_fields(body, ("id_number",), cipher, partial(field_context, "publicity", self.id))
        return json.dumps(body, ensure_ascii=False, sort_keys=True).encode()

    @classmethod
    def from_record(cls, data: bytes, cipher: Optional[FieldCipher] = None) -> PublicityRecord:
        body = json.loads(data)
        decrypt_fields(body, ("id_number",), cipher, partial(field_context, "publicity", body["id"]))
        record = cls(**body)
        if record.state not in STATES:
            raise ValueError(f"unknown publicity state {record.state!r}")
        return record


class Publicity:
    """Creates, publishes and withdraws publicity records; serves the overdue list and feed.

    ``start()`` indexes the records in the store; one process writes them at a time. Due
    dates are counted on ``calendar`` (by default the ``chinese-calendar`` package alone; the
    app passes the one with the imported years). ``clock`` (aware UTC datetimes) is for tests.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        clock: Callable[[], datetime.datetime] = now_utc,
        cipher: Optional[FieldCipher] = None,
        calendar: Optional[WorkingCalendar] = None,
    ) -> None:
        self._store = store
        self.calendar = calendar if calendar is not None else WorkingCalendar()
        self._cipher = cipher
        self._clock = clock
        self._index = PublicityIndex()
        #: whole records, least recently used first, at most CACHED
        self._cache: OrderedDict[str, PublicityRecord] = OrderedDict()
        self._lock = asyncio.Lock()
        self._last_stamp: Optional[datetime.datetime] = None
        self._started = False
        #: the index's stored copy, and the version of each record its summary came with
        self.index_copy = IndexCopy(store, INDEX_COPY_KEY, RECORD_PREFIX)
        #: Set when several nodes share the records (takan/app.py, session/recordsync.py); None on one node.
        self.shared: Optional[SharedRecords] = None

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Index every publicity record, from the index's stored copy where a record is
        unchanged since (READS reads at a time, none kept whole); safe to call twice."""
        if self._started:
            return
        copy = self.index_copy
        listed, reused, unread_ids = await copy.reuse(PublicitySummary.from_row, lambda _: False)
        for summary in reused:
            self._index.put(summary)
        unread = [f"{RECORD_PREFIX}{publicity_id}.json" for publicity_id in unread_ids]
        for start in range(0, len(unread), READS):
            for record in await asyncio.gather(*(self._read(key) for key in unread[start : start + READS])):
                if record is not None:
                    self._index.put(_summary(record))
                    copy.note(record.id, listed.get(record.id))
        self._started = True
        logger.info("indexed %d publicity records, %d of them read", len(self._index), len(unread))
        await copy.write_if_due(self._rows)
        copy.keep(self._rows, self._catch_up)

    async def _catch_up(self) -> None:
        """With several nodes, what the upkeep does first: see :meth:`refresh`."""
        if self.shared is not None:
            await self.refresh()

    async def refresh(self) -> int:
        """Read the records saved or changed elsewhere since this node last knew them (on
        another node whose announcement this node missed, or before it listened); returns
        how many it read."""
        copy = self.index_copy
        listed = await copy.listed()
        stale = copy.stale(listed)
        read = 0
        for start in range(0, len(stale), READS):
            async with self._lock:  # no change of this node's in between: what is read is current
                batch = stale[start : start + READS]
                for record in await asyncio.gather(*(self._read(f"{RECORD_PREFIX}{i}.json") for i in batch)):
                    if record is not None and record.id in listed:
                        self._adopt(record)
                        copy.note(record.id, listed[record.id])
                        read += 1
        copy.differ += read
        return read

    async def reload(self, publicity_id: str) -> Optional[PublicityRecord]:
        """Read the record again from the store (another node changed it)."""
        async with self._lock:
            return await self._fetch(publicity_id)

    async def _fetch(self, publicity_id: str) -> Optional[PublicityRecord]:
        """Read the record from the store and index it (without the lock: publish and
        withdraw, which hold it, look up an id this node has not heard of through get)."""
        record = await self._read(f"{RECORD_PREFIX}{publicity_id}.json")
        if record is not None:
            self._adopt(record)
            self.index_copy.note(record.id, None)  # which version is not known
            self.index_copy.differ += 1
        return record

    def _adopt(self, record: PublicityRecord) -> None:
        """Index a record as stored (changed elsewhere), replacing a cached copy of it."""
        self._index.put(_summary(record))
        if record.id in self._cache:
            self._cache[record.id] = record

    def _exclusive(self, name: str) -> AsyncContextManager[None]:
        """The cross-node lock ``name`` with several nodes; nothing on one node."""
        return contextlib.nullcontext() if self.shared is None else self.shared.exclusive(name)

    def _forget(self, publicity_id: str) -> None:
        """With several nodes, read the record afresh under the lock: the cached one may be stale."""
        if self.shared is not None:
            self._cache.pop(publicity_id, None)

    def _rows(self) -> Iterator[tuple[str, list[Any]]]:
        return ((summary.id, summary.row()) for summary in self._index)

    async def close(self) -> None:
        """Store the index's copy if it changed; forget the records in memory; safe to call twice."""
        if self._started:
            await self.index_copy.close(self._rows)
        self._index.clear()
        self._cache.clear()
        self._started = False

    @property
    def held(self) -> int:
        """Whole records in memory (at most CACHED; the memory test checks it)."""
        return len(self._cache)

    async def get(self, publicity_id: str) -> PublicityRecord:
        """The record with this id (404 if there is none)."""
        self._require_started()
        if self._index.get(publicity_id) is None and self.shared is not None and _ID.fullmatch(publicity_id):
            await self._fetch(publicity_id)  # saved on another node, its announcement not here yet
        record = None if self._index.get(publicity_id) is None else await self._load(publicity_id)
        if record is None:
            raise NotFound(f"no publicity record with id {publicity_id!r}")
        return record

    async def for_inspection(self, inspection_id: str) -> list[PublicityRecord]:
        """The inspection's publicity records, oldest first."""
        self._require_started()
        return await self._load_all(sorted(self._index.for_inspection(inspection_id), key=lambda s: s.created_at))

    async def create(self, inspection: Any, decision: Mapping[str, Any]) -> PublicityRecord:
        """Fill a draft publicity record for an approved case.

        ``inspection`` is an ``Inspection`` or its JSON form (its applicant is the
        counterpart); ``decision`` is ``{document_name, document_no, authority,
        licence_category, licence_content, decision_date}``. Whether the case was approved is
        the caller's to know. 409 if the inspection already has a record that is not
        withdrawn; 422 (listing every problem) for missing or bad fields, a decision date in
        the future, or one whose due date falls in a year the working-day calendar lacks.
        """
        self._require_started()
        view = inspection_view(inspection)
        now = self._clock()
        try:
            fields = _parse(view, decision, china_date(now), self.calendar)
        except CalendarYearUnknown:
            # Another node (or `takan calendar import`) may have loaded the year just now.
            if not await self._refresh_calendar():
                raise
            fields = _parse(view, decision, china_date(now), self.calendar)
        async with self._lock, self._exclusive(f"publicity-of-{fields['inspection_id']}"):
            for existing in self._index.for_inspection(fields["inspection_id"]):
                if existing.state != "withdrawn":
                    raise Conflict(
                        f"inspection {existing.inspection_id} already has publicity record {existing.id} "
                        f"({existing.state}); withdraw it first to publish another decision"
                    )
            stamp = self._stamp(now)
            record = PublicityRecord(id=new_id(), state="draft", created_at=stamp, updated_at=stamp, **fields)
            await self._save(record)
        logger.info("publicity %s drafted for inspection %s, due %s", record.id, record.inspection_id, record.due_on)
        return record

    async def publish(self, publicity_id: str) -> PublicityRecord:
        """Publish a draft; publishing a published record again returns it unchanged."""
        self._require_started()
        async with self._lock, self._exclusive(f"publicity-{publicity_id}"):
            self._forget(publicity_id)
            record = await self.get(publicity_id)
            if record.state == "published":
                return record
            if record.state == "withdrawn":
                raise Conflict(f"publicity {publicity_id} was withdrawn ({record.withdraw_reason}); create a new one")
            stamp = self._stamp(self._clock())
            record = dataclasses.replace(record, state="published", uploaded_at=stamp, updated_at=stamp)
            await self._save(record)
        if not record.on_time:
            logger.warning("publicity %s published after its due date %s (8.4.1)", record.id, record.due_on)
        logger.info("publicity %s published", record.id)
        return record

    async def withdraw(self, publicity_id: str, reason: str) -> PublicityRecord:
        """Stop publishing a revoked decision (8.4.4); ``reason`` says why (e.g. the revocation)."""
        self._require_started()
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationFailed(
                "a withdrawal needs a reason, such as the revocation decision's number",
                errors=[{"field": "reason", "message": "is required"}],
            )
        if len(reason) > 1000:
            raise ValidationFailed("the reason is too long; keep it under 1000 characters")
        async with self._lock, self._exclusive(f"publicity-{publicity_id}"):
            self._forget(publicity_id)
            record = await self.get(publicity_id)
            if record.state == "withdrawn":
                raise Conflict(f"publicity {publicity_id} was already withdrawn at {record.withdrawn_at}")
            stamp = self._stamp(self._clock())
            record = dataclasses.replace(
                record, state="withdrawn", withdrawn_at=stamp, withdraw_reason=reason.strip(), updated_at=stamp
            )
            await self._save(record)
        logger.info("publicity %s withdrawn", record.id)
        return record

    async def overdue(self, today: datetime.date) -> list[PublicityRecord]:
        """Drafts whose due date is before ``today`` (a China date), the most overdue first."""
        self._require_started()
        late = [s for s in self._index if s.state == "draft" and s.due_on < today.isoformat()]
        return await self._load_all(sorted(late, key=lambda s: (s.due_on, s.created_at)))

    async def feed(self, since: Optional[datetime.datetime] = None) -> list[dict[str, Any]]:
        """Public entries changed after ``since`` (all if None), oldest change first.

        Only records that were published appear: published ones, and withdrawn ones as
        tombstones. Use the last entry's ``updated_at`` as the next ``since``; every change
        gets a distinct, increasing ``updated_at``.
        """
        self._require_started()
        if since is not None and (since.tzinfo is None or since.utcoffset() is None):
            raise ValidationFailed("since must be a time with a zone, such as 2024-10-08T00:00:00Z")
        return [record.public() for record in await self._load_all(self._index.public_after(since))]

    # ---- internals ----------------------------------------------------------------------

    async def _refresh_calendar(self) -> bool:
        try:
            return await self.calendar.refresh()
        except Exception as exc:  # the store may be unreachable: refuse the year as before
            logger.warning("could not re-read the working-day calendar (%s)", exc)
            return False

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("Publicity is not started; await start() first")

    def _stamp(self, now: datetime.datetime) -> str:
        # The feed's cursor is updated_at: two changes must never share one (ms precision).
        moment = now.astimezone(datetime.timezone.utc)
        if self._last_stamp is not None and moment <= self._last_stamp:
            moment = self._last_stamp + datetime.timedelta(milliseconds=1)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        self._last_stamp = moment
        return rfc3339(moment) or ""

    async def _save(self, record: PublicityRecord) -> None:
        info = await self._store.put(record.key, record.to_record(self._cipher), "application/json")
        self._index.put(_summary(record))
        self.index_copy.saved(record.id, info.version)
        if self.shared is not None:
            await self.shared.announce(record.id)
        self._keep(record)

    def _keep(self, record: PublicityRecord) -> PublicityRecord:
        """Cache ``record`` (records are immutable: a change replaces it), dropping the least
        recently used beyond CACHED."""
        self._cache[record.id] = record
        self._cache.move_to_end(record.id)
        while len(self._cache) > CACHED:
            self._cache.popitem(last=False)
        return record

    async def _read(self, key: str) -> Optional[PublicityRecord]:
        """The record stored at ``key``; None if it is gone or unreadable."""
        try:
            return PublicityRecord.from_record(await self._store.get(key), self._cipher)
        except ObjectNotFound:
            logger.error("publicity record %s is indexed but gone from the store; skipped", key)
            return None
        except (ValueError, TypeError) as exc:
            logger.error("publicity record %s is unreadable (%s); skipped", key, exc)
            return None

    async def _load(self, publicity_id: str) -> Optional[PublicityRecord]:
        """The whole record: cached, else read from the store (and cached)."""
        record = self._cache.get(publicity_id)
        if record is not None:
            self._cache.move_to_end(publicity_id)
            return record
        record = await self._read(f"{RECORD_PREFIX}{publicity_id}.json")
        current = self._cache.get(publicity_id)
        if current is not None:  # saved (and cached) while the store was read: the newer one
            return current
        summary = self._index.get(publicity_id)
        if record is None or summary is None or record.updated_at != summary.updated_at:
            return record  # a read that a save overtook is not kept
        return self._keep(record)

    async def _load_all(self, summaries: list[PublicitySummary]) -> list[PublicityRecord]:
        """The whole records of ``summaries``, in order, READS store reads at a time."""
        records: list[PublicityRecord] = []
        for start in range(0, len(summaries), READS):
            batch = await asyncio.gather(*(self._load(s.id) for s in summaries[start : start + READS]))
            records.extend(record for record in batch if record is not None)
        return records


def _parse(
    view: Mapping[str, Any], decision: Mapping[str, Any], today: datetime.date, calendar: WorkingCalendar
) -> dict[str, Any]:
    """The record's fields from the inspection and the decision, or 422 with every problem."""
    errors: list[dict[str, str]] = []

    def bad(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    applicant = view.get("applicant") if isinstance(view.get("applicant"), Mapping) else None
    if applicant is None:
        bad("inspection.applicant", "is required")
        applicant = {}
    for name in ("id", "case_no"):
        if not view.get(name):
            bad(f"inspection.{name}", "is required")
    for name in ("name", "kind", "id_type", "id_number"):
        if not isinstance(applicant.get(name), str) or not applicant[name].strip():
            bad(f"inspection.applicant.{name}", "is required for publicity")
    if applicant.get("kind") and applicant["kind"] not in COUNTERPART_CATEGORIES:
        bad("inspection.applicant.kind", f"must be one of {', '.join(COUNTERPART_CATEGORIES)}")

    if not isinstance(decision, Mapping):
        raise ValidationFailed("decision must be an object with the licence decision's fields")
    known = set(_DECISION_FIELDS) | {"decision_date"}
    for name in sorted(set(decision) - known):
        bad(f"decision.{name}", "is not a known field")
    values: dict[str, str] = {}
    for name, limit in _DECISION_FIELDS.items():
        value = decision.get(name)
        if not isinstance(value, str) or not value.strip():
            bad(f"decision.{name}", "is required")
        elif len(value) > limit:
            bad(f"decision.{name}", f"must be at most {limit} characters")
        elif any(ord(c) < 32 and c not in "\n\t" for c in value):
            bad(f"decision.{name}", "must not contain control characters")
        else:
            values[name] = value.strip()
    if "licence_category" in values:
        category = LICENCE_CATEGORIES.get(values["licence_category"].lower())
        if category is None:
            bad("decision.licence_category", "must be one of 普通, 特许, 认可, 核准, 登记, 其他")
        else:
            values["licence_category"] = category
    decision_date = _date(decision.get("decision_date"), bad)
    if decision_date is not None and decision_date > today:
        bad("decision.decision_date", f"{decision_date} is in the future (today is {today} in China)")
        decision_date = None
    if errors:
        raise ValidationFailed(
            f"the publicity record cannot be filled: {errors[0]['field']} {errors[0]['message']}"
            + (f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""),
            errors=errors,
        )
    assert decision_date is not None
    try:
        due_on = calendar.add_working_days(decision_date, DUE_WORKING_DAYS)
    except CalendarYearUnknown as exc:
        raise CalendarYearUnknown(exc.year, "decision.decision_date", exc.known) from None
    return {
        "inspection_id": str(view["id"]),
        "case_no": str(view["case_no"]),
        "counterpart_name": applicant["name"].strip(),
        "counterpart_category": applicant["kind"],
        "id_type": applicant["id_type"],
        "id_number": applicant["id_number"].strip(),
        "decision_date": decision_date.isoformat(),
        "due_on": due_on.isoformat(),
        **values,
    }


def _date(value: Any, bad: Callable[[str, str], None]) -> Optional[datetime.date]:
    field = "decision.decision_date"
    if value is None:
        bad(field, "is required")
        return None
    if isinstance(value, datetime.datetime):
        bad(field, "must be a date (YYYY-MM-DD), not a time")
        return None
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    bad(field, f"must be a date like 2024-10-08, got {value!r}")
    return None


def _summary(record: PublicityRecord) -> PublicitySummary:
    """What the index holds of ``record``."""
    updated = parse_rfc3339(record.updated_at)
    assert updated is not None
    return PublicitySummary(
        id=record.id,
        inspection_id=record.inspection_id,
        state=record.state,
        due_on=record.due_on,
        created_at=record.created_at,
        updated_at=record.updated_at,
        uploaded_at=record.uploaded_at,
        updated=updated,
    )
