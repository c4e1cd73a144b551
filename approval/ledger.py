"""The approval ledger (DB3714/T 0014-2023, 8.5): one archived entry per inspection.

An entry gathers what 8.5.3 asks for (the applicant, the item, the inspection's times and
inspectors, the verdict and any review, the licence decision date and publicity state) and is
written to ``records/ledger/<yyyy>/<mm>/<inspection id>.json`` as soon as :meth:`Ledger.record`
is called: the store write is the archiving, so the 20 s limit of 8.5.2 is one store ``put``.
``yyyy/mm`` is the month of the inspection in China time, which never changes, so re-recording
an inspection (after a review, when its publicity changes) replaces the same object; the entry
it replaces is kept at ``records/ledger/history/<inspection id>/<version>.json``.

ID numbers are stored in full (the store is the system of record) and masked in every view
unless the caller asks for ``full=True``; that decision (who may ask) belongs to the web layer.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime
import io
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Optional

from privacy.fieldcrypto import FieldCipher, decrypt_fields, encrypt_fields, field_context
from storage.objects import ObjectNotFound, ObjectStore

from errors import ValidationFailed
from .inspections import now_utc, parse_rfc3339, rfc3339
from .workdays import CHINA_TZ, china_date

__all__ = [
    "ARCHIVE_LIMIT_S",
    "COLUMNS",
    "ExportFormat",
    "HISTORY_PREFIX",
    "LEDGER_PREFIX",
    "Ledger",
    "LedgerEntry",
    "inspection_view",
    "mask_id",
]

logger = logging.getLogger(__name__)

LEDGER_PREFIX = "records/ledger/"
HISTORY_PREFIX = "records/ledger/history/"
#: 8.5.2: a ledger entry is generated within 20 s of the decision it records.
ARCHIVE_LIMIT_S = 20.0
ExportFormat = Literal["csv", "json", "xlsx"]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Export columns: the entry's field and its Chinese header, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("inspection_id", "踏勘编号"),
    ("case_no", "办件编号"),
    ("item_code", "事项编码"),
    ("item_name", "事项名称"),
    ("applicant_name", "申请主体名称"),
    ("applicant_kind", "主体类别"),
    ("id_type", "证件类型"),
    ("id_number", "证件号码"),
    ("inspected_on", "踏勘日期"),
    ("started_at", "踏勘开始时间"),
    ("ended_at", "踏勘结束时间"),
    ("duration_s", "踏勘时长(秒)"),
    ("inspectors", "踏勘人员"),
    ("verdict_outcome", "研判结果"),
    ("verdict_reasons", "研判理由"),
    ("rules_version", "规则版本"),
    ("decided_at", "研判时间"),
    ("review_outcome", "复核结果"),
    ("review_comment", "复核意见"),
    ("reviewer", "复核人"),
    ("reviewed_at", "复核时间"),
    ("licensed_on", "许可决定日期"),
    ("publicity_state", "公示状态"),
    ("published_at", "公示时间"),
    ("written_at", "归档时间"),
    ("version", "台账版本"),
)
_LABELS: dict[str, dict[str, str]] = {
    "applicant_kind": {"natural_person": "自然人", "legal_person": "法人", "other_org": "非法人组织"},
    "id_type": {"USCC": "统一社会信用代码", "RESIDENT_ID": "居民身份证", "PASSPORT": "护照", "OTHER": "其他"},
    "verdict_outcome": {"pass": "通过", "fail": "不通过", "manual_review": "转人工审核"},
    "review_outcome": {"pass": "通过", "fail": "不通过"},
    "publicity_state": {"draft": "待公示", "published": "已公示", "withdrawn": "已撤销"},
}
_TIMES = ("started_at", "ended_at", "decided_at", "reviewed_at", "published_at", "written_at")
_REVIEW_OUTCOMES = ("pass", "fail")
_PUBLICITY_STATES = ("draft", "published", "withdrawn")
# Fields that do not make an entry different from the one it would replace.
_BOOKKEEPING = ("written_at", "archived_after_s", "version")


def mask_id(value: Optional[str]) -> Optional[str]:
    """``value`` with all but its first and last 4 characters starred (birth dates hidden)."""
    if not value:
        return value
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def inspection_view(record: Any) -> dict[str, Any]:
    """An inspection record as a plain dict, from an ``Inspection`` or its JSON form.

    ``duration_s`` is filled in when the record is an ``Inspection`` (where it is a property).
    """
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        view = dataclasses.asdict(record)
        view["duration_s"] = getattr(record, "duration_s", None)
        return view
    if isinstance(record, Mapping):
        return dict(record)
    raise TypeError(f"expected an Inspection or a mapping, got {type(record).__name__}")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One inspection's ledger entry (8.5.3). Times are RFC 3339 UTC; dates ISO, China time.

    ``archived_after_s`` is how long after the decision it records (the review, else the
    verdict) the entry was written: the 8.5.2 figure. ``version`` counts re-recordings.
    """

    inspection_id: str
    case_no: str
    item_code: str
    item_name: str
    applicant_name: str
    applicant_kind: str
    id_type: str
    id_number: str
    inspected_on: str
    started_at: Optional[str]
    ended_at: Optional[str]
    duration_s: Optional[float]
    inspectors: tuple[str, ...]
    verdict_outcome: Optional[str]
    verdict_reasons: tuple[str, ...]
    rules_version: Optional[str]
    decided_at: Optional[str]
    review_outcome: Optional[str]
    review_comment: Optional[str]
    reviewer: Optional[str]
    reviewed_at: Optional[str]
    licensed_on: Optional[str]
    publicity_state: Optional[str]
    published_at: Optional[str]
    written_at: str
    archived_after_s: Optional[float]
    version: int

    @property
    def key(self) -> str:
        """Where the entry is stored."""
        year, month, _ = self.inspected_on.split("-")
        return f"{LEDGER_PREFIX}{year}/{month}/{self.inspection_id}.json"

    @property
    def reviewed(self) -> bool:
        return self.review_outcome is not None

    def as_json(self, full: bool = False) -> dict[str, Any]:
        """The entry as JSON; the ID number is masked unless ``full``."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        body["inspectors"] = list(self.inspectors)
        body["verdict_reasons"] = list(self.verdict_reasons)
        if not full:
            body["id_number"] = mask_id(self.id_number)
        return body

    def as_row(self, full: bool = False) -> list[Any]:
        """The entry as a spreadsheet row in :data:`COLUMNS` order: labels, local times."""
        body = self.as_json(full)
        row: list[Any] = []
        for name, _ in COLUMNS:
            value = body[name]
            if name in _LABELS and value is not None:
                value = _LABELS[name].get(value, value)
            elif name in _TIMES:
                value = _local_time(value)
            elif isinstance(value, list):
                value = "；".join(value)
            row.append("" if value is None else value)
        return row

    def to_record(self, cipher: Optional[FieldCipher] = None) -> bytes:
        body = encrypt_fields(self.as_json(full=True), ("id_number",), cipher, partial(field_context, "ledger", self.inspection_id))
        return json.dumps(body, ensure_ascii=False, sort_keys=True).encode()

    @classmethod
    def from_record(cls, data: bytes, cipher: Optional[FieldCipher] = None) -> LedgerEntry:
        body = json.loads(data)
        decrypt_fields(body, ("id_number",), cipher, partial(field_context, "ledger", body["inspection_id"]))
        body["inspectors"] = tuple(body["inspectors"])
        body["verdict_reasons"] = tuple(body["verdict_reasons"])
        return cls(**body)

    def same_facts(self, other: LedgerEntry) -> bool:
        """Whether the two entries record the same facts (bookkeeping fields aside)."""
        mine, theirs = self.as_json(full=True), other.as_json(full=True)
        return all(mine[name] == theirs[name] for name in mine if name not in _BOOKKEEPING)


class Ledger:
    """Writes, reads and exports ledger entries; the object store holds them all.

    Stateless apart from a lock that orders re-recordings of the same entry, so it needs no
    ``start()``; one process writes the ledger at a time.
    """

    def __init__(self, store: ObjectStore, cipher: Optional[FieldCipher] = None) -> None:
        self._store = store
        self._cipher = cipher
        self._lock = asyncio.Lock()

    async def record(
        self,
        inspection: Any,
        review: Optional[Mapping[str, Any]] = None,
        *,
        publicity: Optional[Mapping[str, Any]] = None,
    ) -> LedgerEntry:
        """Write (or rewrite) the ledger entry of ``inspection`` and return it.

        ``inspection`` is an ``Inspection`` or its JSON form. ``review`` is
        ``{outcome: pass|fail, comment, reviewer, at}`` (``at`` defaults to now);
        ``publicity`` is ``{state: draft|published|withdrawn, published_at, decision_date}``,
        for instance :meth:`approval.publicity.PublicityRecord.as_json`. A review or publicity
        left out keeps what the previous entry had. Recording the same facts again writes
        nothing and returns the stored entry; different facts make a new ``version`` and move
        the old one to the history.
        """
        started = now_utc()
        view = inspection_view(inspection)
        draft = _entry(view, started)
        async with self._lock:
            previous = await self._get(draft.key)
            entry = _with_review(draft, review, previous, started)
            entry = _with_publicity(entry, publicity, previous)
            if previous is not None and previous.same_facts(entry):
                return previous
            if previous is not None:
                await self._store.put(_history_key(previous), previous.to_record(self._cipher), "application/json")
                entry = dataclasses.replace(entry, version=previous.version + 1)
            entry = dataclasses.replace(entry, archived_after_s=_archived_after(entry))
            await self._store.put(entry.key, entry.to_record(self._cipher), "application/json")
        lag = entry.archived_after_s
        if lag is not None and lag > ARCHIVE_LIMIT_S:
            logger.warning(
                "inspection %s: ledger entry written %.1f s after its decision (8.5.2 allows %.0f s)",
                entry.inspection_id, lag, ARCHIVE_LIMIT_S,
            )  # fmt: skip
        logger.info(
            "inspection %s: ledger entry version %d archived at %s", entry.inspection_id, entry.version, entry.key
        )
        return entry

    async def query(self, start: datetime.date, end: datetime.date) -> list[LedgerEntry]:
        """The entries of inspections held from ``start`` to ``end`` (inclusive, China dates)."""
        _check_period(start, end)
        entries: list[LedgerEntry] = []
        for year, month in _months(start, end):
            for key in await self._store.list(f"{LEDGER_PREFIX}{year:04d}/{month:02d}/"):
                if not key.endswith(".json"):
                    continue
                try:
                    entry = LedgerEntry.from_record(await self._store.get(key), self._cipher)
                except ObjectNotFound:
                    continue  # removed between list and get
                except (ValueError, TypeError) as exc:
                    logger.error("ledger entry %s is unreadable (%s); skipped", key, exc)
                    continue
                if start.isoformat() <= entry.inspected_on <= end.isoformat():
                    entries.append(entry)
        return sorted(entries, key=lambda e: (e.started_at or e.inspected_on, e.inspection_id))

    async def history(self, inspection_id: str) -> list[LedgerEntry]:
        """The entries an inspection's current entry replaced, oldest first."""
        keys = await self._store.list(f"{HISTORY_PREFIX}{inspection_id}/")
        return [LedgerEntry.from_record(await self._store.get(key), self._cipher) for key in keys]

    async def export(self, start: datetime.date, end: datetime.date, fmt: ExportFormat, full: bool = False) -> bytes:
        """The period's entries as CSV (UTF-8 with BOM, for Excel), JSON or XLSX bytes.

        CSV and XLSX carry the Chinese headers of :data:`COLUMNS`, labels instead of codes and
        China local times; JSON carries the entries as :meth:`LedgerEntry.as_json`. ID
        numbers are masked unless ``full``.
        """
        if fmt not in ("csv", "json", "xlsx"):
            raise ValidationFailed(
                f"unknown export format {fmt!r}; use csv, json or xlsx",
                errors=[{"field": "format", "message": "must be csv, json or xlsx"}],
            )
        entries = await self.query(start, end)
        if fmt == "json":
            body = {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "count": len(entries),
                "entries": [e.as_json(full) for e in entries],
            }
            return json.dumps(body, ensure_ascii=False, indent=1).encode()
        rows = [e.as_row(full) for e in entries]
        if fmt == "csv":
            return _csv(rows)
        return await asyncio.to_thread(_xlsx, rows, f"{start.isoformat()}~{end.isoformat()}")

    async def _get(self, key: str) -> Optional[LedgerEntry]:
        try:
            return LedgerEntry.from_record(await self._store.get(key), self._cipher)
        except ObjectNotFound:
            return None


# ---- building an entry ----------------------------------------------------------------------


def _entry(view: Mapping[str, Any], now: datetime.datetime) -> LedgerEntry:
    applicant: Mapping[str, Any] = view["applicant"] if isinstance(view.get("applicant"), Mapping) else {}
    verdict: Mapping[str, Any] = view["verdict"] if isinstance(view.get("verdict"), Mapping) else {}
    missing = [name for name in ("id", "case_no", "item_code", "item_name") if not view.get(name)]
    missing += [f"applicant.{n}" for n in ("name", "kind", "id_type", "id_number") if not applicant.get(n)]
    moment = next((view[n] for n in ("started_at", "scheduled_at", "created_at") if view.get(n)), None)
    if moment is None:
        missing.append("started_at")
    if missing:
        raise ValidationFailed(
            f"the inspection record lacks {', '.join(missing)}; a ledger entry needs them",
            errors=[{"field": name, "message": "is required for the ledger"} for name in missing],
        )
    inspected_on = china_date(_parse_time(moment, "started_at"))
    return LedgerEntry(
        inspection_id=str(view["id"]),
        case_no=str(view["case_no"]),
        item_code=str(view["item_code"]),
        item_name=str(view["item_name"]),
        applicant_name=str(applicant["name"]),
        applicant_kind=str(applicant["kind"]),
        id_type=str(applicant["id_type"]),
        id_number=str(applicant["id_number"]),
        inspected_on=inspected_on.isoformat(),
        started_at=view.get("started_at"),
        ended_at=view.get("ended_at"),
        duration_s=_duration(view),
        inspectors=_inspectors(view.get("participants") or []),
        verdict_outcome=verdict.get("outcome"),
        verdict_reasons=tuple(str(r) for r in verdict.get("reasons") or ()),
        rules_version=verdict.get("rules_version"),
        decided_at=verdict.get("decided_at"),
        review_outcome=None,
        review_comment=None,
        reviewer=None,
        reviewed_at=None,
        licensed_on=None,
        publicity_state=None,
        published_at=None,
        written_at=rfc3339(now) or "",
        archived_after_s=None,
        version=1,
    )


def _with_review(
    entry: LedgerEntry, review: Optional[Mapping[str, Any]], previous: Optional[LedgerEntry], now: datetime.datetime
) -> LedgerEntry:
    if review is None:
        if previous is None:
            return entry
        return dataclasses.replace(
            entry,
            review_outcome=previous.review_outcome,
            review_comment=previous.review_comment,
            reviewer=previous.reviewer,
            reviewed_at=previous.reviewed_at,
        )
    errors = []
    if review.get("outcome") not in _REVIEW_OUTCOMES:
        errors.append({"field": "review.outcome", "message": f"must be pass or fail, got {review.get('outcome')!r}"})
    if not isinstance(review.get("reviewer"), str) or not review["reviewer"].strip():
        errors.append({"field": "review.reviewer", "message": "is required: who reviewed"})
    if review.get("comment") is not None and not isinstance(review.get("comment"), str):
        errors.append({"field": "review.comment", "message": "must be a string"})
    if errors:
        raise ValidationFailed("the review is incomplete; fix the fields listed and record again", errors=errors)
    at = rfc3339(_parse_time(review["at"], "review.at")) if review.get("at") else rfc3339(now)
    return dataclasses.replace(
        entry,
        review_outcome=review["outcome"],
        review_comment=review.get("comment"),
        reviewer=review["reviewer"].strip(),
        reviewed_at=at,
    )


def _with_publicity(
    entry: LedgerEntry, publicity: Optional[Mapping[str, Any]], previous: Optional[LedgerEntry]
) -> LedgerEntry:
    if publicity is None:
        if previous is None:
            return entry
        return dataclasses.replace(
            entry,
            licensed_on=previous.licensed_on,
            publicity_state=previous.publicity_state,
            published_at=previous.published_at,
        )
    state = publicity.get("state")
    if state not in _PUBLICITY_STATES:
        raise ValidationFailed(
            f"publicity state {state!r} is not draft, published or withdrawn",
            errors=[{"field": "publicity.state", "message": "must be draft, published or withdrawn"}],
        )
    published_at = publicity.get("published_at")
    if published_at is not None:
        published_at = rfc3339(_parse_time(published_at, "publicity.published_at"))
    decision_date = publicity.get("decision_date")
    if isinstance(decision_date, datetime.date):
        decision_date = decision_date.isoformat()
    return dataclasses.replace(entry, licensed_on=decision_date, publicity_state=state, published_at=published_at)


def _archived_after(entry: LedgerEntry) -> Optional[float]:
    decided = entry.reviewed_at or entry.decided_at
    if decided is None:
        return None
    written = parse_rfc3339(entry.written_at)
    moment = parse_rfc3339(decided)
    assert written is not None and moment is not None
    return round((written - moment).total_seconds(), 3)


def _duration(view: Mapping[str, Any]) -> Optional[float]:
    if isinstance(view.get("duration_s"), (int, float)) and not isinstance(view.get("duration_s"), bool):
        return round(float(view["duration_s"]), 3)
    if view.get("started_at") and view.get("ended_at"):
        start, end = _parse_time(view["started_at"], "started_at"), _parse_time(view["ended_at"], "ended_at")
        return round((end - start).total_seconds(), 3)
    return None


def _inspectors(participants: Iterable[Any]) -> tuple[str, ...]:
    names: list[str] = []
    for participant in participants:
        if isinstance(participant, str):
            names.append(participant)
        elif isinstance(participant, Mapping) and participant.get("role") in ("inspector", None):
            label = participant.get("name") or participant.get("id")
            if label:
                names.append(str(label))
    return tuple(dict.fromkeys(names))  # a reconnecting inspector is one inspector


def _parse_time(value: Any, field: str) -> datetime.datetime:
    try:
        moment = parse_rfc3339(value) if isinstance(value, str) else value
        if not isinstance(moment, datetime.datetime) or moment.tzinfo is None:
            raise ValueError
    except ValueError:
        raise ValidationFailed(
            f"{field} {value!r} is not an RFC 3339 time with a zone such as 2024-10-08T09:30:00+08:00",
            errors=[{"field": field, "message": "must be an RFC 3339 time with a zone"}],
        ) from None
    return moment


def _history_key(entry: LedgerEntry) -> str:
    return f"{HISTORY_PREFIX}{entry.inspection_id}/{entry.version:06d}.json"


# ---- periods and exports --------------------------------------------------------------------


def _check_period(start: datetime.date, end: datetime.date) -> None:
    for name, day in (("start", start), ("end", end)):
        if isinstance(day, datetime.datetime) or not isinstance(day, datetime.date):
            raise ValidationFailed(f"{name} must be a date (YYYY-MM-DD), got {day!r}")
    if end < start:
        raise ValidationFailed(f"the period ends ({end}) before it starts ({start}); swap them")


def _months(start: datetime.date, end: datetime.date) -> list[tuple[int, int]]:
    months = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _local_time(value: Optional[str]) -> Optional[str]:
    moment = parse_rfc3339(value)
    return None if moment is None else moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: Any) -> Any:
    # A name like "=HYPERLINK(...)" must stay text when the export is opened in Excel.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header for _, header in COLUMNS])
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return buffer.getvalue().encode("utf-8-sig")


def _xlsx(rows: list[list[Any]], title: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "台账"
    sheet.append([header for _, header in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text, not a formula
    sheet.freeze_panes = "A2"
    for index, (_, header) in enumerate(COLUMNS, start=1):
        width = max([len(header) * 2] + [len(str(r[index - 1])) for r in rows[:200]])
        sheet.column_dimensions[get_column_letter(index)].width = min(max(width + 2, 8), 60)
    book.properties.title = f"踏勘台账 {title}"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
