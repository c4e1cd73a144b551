"""Prudent warnings (DB3714/T 0014-2023, 8.1.8): the lists an application is checked against.

Admins upload four kinds of list as CSV:

``dishonest``
    失信主体名单: a credit code (GB 32100) or resident ID number (GB 11643) and the reason.
``abnormal_operation``
    经营异常名录: a credit code and the reason.
``industry_catalogue``
    《产业结构调整指导目录》 restricted (限制类) and eliminated (淘汰类) entries, by GB/T 4754
    industry code.
``negative_list``
    市场准入负面清单: a measure, keyed by an industry code, an approval item code, or both.

Each upload is validated whole (every problem is reported with its line and column, so the
admin fixes the file in one go) and stored as a new numbered version at
``records/warning-lists/<kind>/<version>.json``; ``records/warning-lists/<kind>/current.json``
points at the version in force. Earlier versions are kept, and :meth:`WarningLists.activate`
puts one back in force.

Industry codes match by prefix: an entry for division ``25`` (or ``C25``) warns an applicant
whose industry is class ``2511``. The section letter is optional and ignored, since GB/T 4754
divisions are numbered uniquely across sections.

A warning never blocks anything by itself: :meth:`WarningLists.match` returns what matched and
the caller shows it to the applicant and the inspector.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, get_args

from storage.objects import ObjectNotFound, ObjectStore

from errors import NotFound, TooLarge, ValidationFailed
from .ids import resident_id_problem, uscc_problem
from .inspections import now_utc, rfc3339

__all__ = [
    "KINDS",
    "LIST_PREFIX",
    "ListKind",
    "ListVersion",
    "Match",
    "WarningLists",
    "expected_header",
    "normalise_industry_code",
]

logger = logging.getLogger(__name__)

ListKind = Literal["dishonest", "abnormal_operation", "industry_catalogue", "negative_list"]
KINDS: tuple[ListKind, ...] = get_args(ListKind)
LIST_PREFIX = "records/warning-lists/"
#: What the applicant and the inspector are shown for a match of each kind.
TITLES: dict[ListKind, str] = {
    "dishonest": "失信警示",
    "abnormal_operation": "经营异常警示",
    "industry_catalogue": "《产业结构调整指导目录》警示",
    "negative_list": "市场准入负面清单警示",
}
MAX_CSV_BYTES = 64 * 1024 * 1024
#: Problems listed in one error; a file with more is usually the wrong file.
MAX_REPORTED = 50
MAX_TEXT = 2000

_INDUSTRY = re.compile(r"^([A-T])?(\d{2,4})$")
_ITEM = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_VERSION_KEY = re.compile(r"/(\d{6})\.json$")

_INDUSTRY_CATEGORIES = {
    "restricted": "restricted", "限制类": "restricted", "限制": "restricted",
    "eliminated": "eliminated", "淘汰类": "eliminated", "淘汰": "eliminated",
}  # fmt: skip
_NEGATIVE_CATEGORIES = {
    "prohibited": "prohibited", "禁止准入类": "prohibited", "禁止类": "prohibited", "禁止": "prohibited",
    "licensed": "licensed", "许可准入类": "licensed", "许可类": "licensed", "许可": "licensed",
}  # fmt: skip
_CATEGORY_LABELS = {
    "restricted": "限制类",
    "eliminated": "淘汰类",
    "prohibited": "禁止准入类",
    "licensed": "许可准入类",
}


@dataclass(frozen=True)
class _Column:
    name: str
    aliases: tuple[str, ...]
    required: bool = False


_COLUMNS: dict[ListKind, tuple[_Column, ...]] = {
    "dishonest": (
        _Column(
            "id_number",
            ("证件号码", "统一社会信用代码/身份证号码", "统一社会信用代码", "身份证号码", "credit_code"),
            True,
        ),
        _Column("name", ("主体名称", "失信主体名称", "名称")),
        _Column("reason", ("失信原因", "列入原因", "失信情形"), True),
        _Column("authority", ("认定机关", "列入机关")),
        _Column("listed_on", ("列入日期", "认定日期")),
    ),
    "abnormal_operation": (
        _Column("credit_code", ("统一社会信用代码",), True),
        _Column("name", ("企业名称", "名称")),
        _Column("reason", ("列入经营异常名录原因", "列入原因"), True),
        _Column("authority", ("作出决定机关", "列入机关")),
        _Column("listed_on", ("列入日期",)),
    ),
    "industry_catalogue": (
        _Column("industry_code", ("行业代码", "国民经济行业代码"), True),
        _Column("category", ("类别",), True),
        _Column("entry", ("条目", "条目内容")),
    ),
    "negative_list": (
        _Column("industry_code", ("行业代码", "国民经济行业代码")),
        _Column("item_code", ("事项编码",)),
        _Column("measure", ("管理措施", "措施", "禁止或许可事项"), True),
        _Column("category", ("类别",)),
    ),
}  # fmt: skip


def normalise_industry_code(value: str) -> Optional[str]:
    """The digits of a GB/T 4754 code (``"C2511"`` -> ``"2511"``), or None if it is not one."""
    found = _INDUSTRY.match(value.strip().upper())
    return found.group(2) if found else None


@dataclass(frozen=True, slots=True)
class ListVersion:
    """One uploaded version of one list: where it came from and what it holds."""

    kind: ListKind
    version: int
    source_name: str
    sha256: str
    encoding: str
    rows: int
    loaded_at: str
    ignored_columns: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The object store key of this version."""
        return version_key(self.kind, self.version)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "source_name": self.source_name,
            "sha256": self.sha256,
            "encoding": self.encoding,
            "rows": self.rows,
            "loaded_at": self.loaded_at,
            "ignored_columns": list(self.ignored_columns),
        }


@dataclass(frozen=True, slots=True)
class Match:
    """One list entry an application matched.

    ``key`` is the entry's key (an ID number, an industry code's digits, an item code);
    ``matched`` is the application's value that hit it (``"2511"`` for the key ``"25"``).
    ``reason`` is the entry's reason, catalogue entry or measure; ``line`` its CSV line.
    """

    kind: ListKind
    key: str
    matched: str
    reason: str
    version: int
    line: int
    category: str = ""
    name: str = ""

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "key": self.key,
            "matched": self.matched,
            "reason": self.reason,
            "category": self.category,
            "name": self.name,
            "version": self.version,
            "line": self.line,
        }


def version_key(kind: str, version: int) -> str:
    return f"{LIST_PREFIX}{kind}/{version:06d}.json"


def current_key(kind: str) -> str:
    return f"{LIST_PREFIX}{kind}/current.json"


@dataclass
class _Loaded:
    """A list in force, indexed for matching."""

    version: ListVersion
    by_key: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    by_item: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def of(cls, version: ListVersion, entries: Iterable[dict[str, Any]]) -> _Loaded:
        loaded = cls(version)
        key_column = _KEY_COLUMN[version.kind]
        for entry in entries:
            if entry.get(key_column):
                loaded.by_key.setdefault(entry[key_column], []).append(entry)
            if version.kind == "negative_list" and entry.get("item_code"):
                loaded.by_item.setdefault(entry["item_code"], []).append(entry)
        return loaded


_KEY_COLUMN: dict[ListKind, str] = {
    "dishonest": "id_number",
    "abnormal_operation": "credit_code",
    "industry_catalogue": "industry_code",
    "negative_list": "industry_code",
}


class WarningLists:
    """The warning lists in force, their history, and matching an application against them.

    ``start()`` loads the current version of each list from the store; one process writes the
    lists at a time (the same rule as :class:`~approval.inspections.InspectionBook`).
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._loaded: dict[ListKind, _Loaded] = {}
        self._lock = asyncio.Lock()
        self._started = False

    async def start(self) -> None:
        """Load the version in force of every list; safe to call twice."""
        if self._started:
            return
        for kind in KINDS:
            try:
                pointer = json.loads(await self._store.get(current_key(kind)))
            except ObjectNotFound:
                continue
            try:
                self._loaded[kind] = await self._read(kind, int(pointer["version"]))
            except (ObjectNotFound, ValueError, KeyError, TypeError) as exc:
                # Matching against nothing is safer than refusing to start; say so loudly.
                logger.error("warning list %s: current version unreadable (%s); list not in force", kind, exc)
        self._started = True
        logger.info("warning lists in force: %s", {k: v.version.version for k, v in self._loaded.items()})

    async def close(self) -> None:
        """Forget the lists in memory; safe to call twice."""
        self._loaded.clear()
        self._started = False

    def current(self, kind: ListKind) -> Optional[ListVersion]:
        """The version in force of ``kind``, or None if none was ever loaded."""
        self._require_started()
        loaded = self._loaded.get(_check_kind(kind))
        return loaded.version if loaded else None

    async def history(self, kind: ListKind) -> list[ListVersion]:
        """Every stored version of ``kind``, oldest first."""
        self._require_started()
        versions = []
        for key in await self._store.list(f"{LIST_PREFIX}{_check_kind(kind)}/"):
            found = _VERSION_KEY.search(key)
            if found:
                versions.append(_version_of(json.loads(await self._store.get(key))))
        return sorted(versions, key=lambda v: v.version)

    async def load_csv(self, kind: ListKind, csv_bytes: bytes, source_name: str) -> ListVersion:
        """Validate a CSV list, store it as the next version of ``kind`` and put it in force.

        The header names columns in English or Chinese (:func:`expected_header`); extra
        columns are ignored and named in :attr:`ListVersion.ignored_columns`. UTF-8 (with or
        without BOM) is read, then GB 18030 (a superset of GBK) as a fallback. Any problem
        raises :class:`ValidationFailed` listing each one with its line and column, and
        nothing is stored.
        """
        self._require_started()
        kind = _check_kind(kind)
        if not isinstance(source_name, str) or not source_name.strip():
            raise ValidationFailed(
                "source_name is required: name the file or publication the list came from",
                errors=[{"field": "source_name", "message": "is required"}],
            )
        if len(csv_bytes) > MAX_CSV_BYTES:
            raise TooLarge(f"the {kind} CSV is {len(csv_bytes)} bytes; split it below {MAX_CSV_BYTES} bytes")
        # A national list runs to tens of thousands of rows: parse off the event loop.
        text, encoding = await asyncio.to_thread(_decode, csv_bytes)
        entries, ignored = await asyncio.to_thread(_parse, kind, text)
        async with self._lock:
            existing = [
                int(m.group(1))
                for k in await self._store.list(f"{LIST_PREFIX}{kind}/")
                if (m := _VERSION_KEY.search(k))
            ]
            version = ListVersion(
                kind=kind,
                version=max(existing, default=0) + 1,
                source_name=source_name.strip(),
                sha256=hashlib.sha256(csv_bytes).hexdigest(),
                encoding=encoding,
                rows=len(entries),
                loaded_at=rfc3339(now_utc()) or "",
                ignored_columns=tuple(ignored),
            )
            body = {**version.as_json(), "entries": entries}
            await self._store.put(version.key, json.dumps(body, ensure_ascii=False).encode(), "application/json")
            await self._point(kind, version.version)
            self._loaded[kind] = _Loaded.of(version, entries)
        logger.info(
            "warning list %s version %d loaded from %s: %d rows",
            kind,
            version.version,
            version.source_name,
            len(entries),
        )
        return version

    async def activate(self, kind: ListKind, version: int) -> ListVersion:
        """Put a stored version of ``kind`` back in force (to undo a bad upload)."""
        self._require_started()
        kind = _check_kind(kind)
        async with self._lock:
            try:
                loaded = await self._read(kind, version)
            except ObjectNotFound:
                raise NotFound(
                    f"no version {version} of the {kind} list; see its history for the stored ones"
                ) from None
            await self._point(kind, version)
            self._loaded[kind] = loaded
        logger.info("warning list %s: version %d put in force", kind, version)
        return loaded.version

    def match(self, applicant: Mapping[str, Any], industry_codes: list[str], item_code: str) -> list[Match]:
        """Every entry of the lists in force that the application hits.

        ``applicant`` is an inspection's applicant (its ``id_number`` is looked up in the
        dishonest and abnormal-operation lists); ``industry_codes`` are GB/T 4754 codes of the
        applicant's business; ``item_code`` is the approval item.
        """
        self._require_started()
        digits = _applicant_industries(industry_codes)
        id_number = str(applicant.get("id_number") or "").strip().upper()
        item = (item_code or "").strip().lower()
        found: list[Match] = []
        for kind in KINDS:
            loaded = self._loaded.get(kind)
            if loaded is None:
                continue
            # (entry, the application's value that hit it, the entry's key it hit)
            hits: list[tuple[dict[str, Any], str, str]] = []
            if kind in ("dishonest", "abnormal_operation"):
                if id_number:
                    hits += [(e, id_number, id_number) for e in loaded.by_key.get(id_number, [])]
            else:
                for code in digits:
                    for length in range(2, len(code) + 1):
                        hits += [(e, code, code[:length]) for e in loaded.by_key.get(code[:length], [])]
                if item:
                    hits += [(e, item, item) for e in loaded.by_item.get(item, [])]
            seen: set[int] = set()
            for entry, matched, key in hits:
                if entry["line"] not in seen:
                    seen.add(entry["line"])
                    found.append(_match(kind, loaded.version.version, entry, matched, key))
        if found:
            logger.info("application %s / %s matched %d warning entries", item or "-", _masked(id_number), len(found))
        return found

    # ---- internals ----------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("WarningLists is not started; await start() first")

    async def _read(self, kind: ListKind, version: int) -> _Loaded:
        body = json.loads(await self._store.get(version_key(kind, version)))
        return _Loaded.of(_version_of(body), body["entries"])

    async def _point(self, kind: ListKind, version: int) -> None:
        pointer = {"kind": kind, "version": version, "key": version_key(kind, version), "at": rfc3339(now_utc())}
        await self._store.put(current_key(kind), json.dumps(pointer).encode(), "application/json")


def _check_kind(kind: str) -> ListKind:
    if kind not in KINDS:
        raise ValidationFailed(
            f"unknown warning list kind {kind!r}; use one of {', '.join(KINDS)}",
            errors=[{"field": "kind", "message": f"must be one of {', '.join(KINDS)}"}],
        )
    return kind


def _version_of(body: Mapping[str, Any]) -> ListVersion:
    return ListVersion(
        kind=_check_kind(body["kind"]),
        version=int(body["version"]),
        source_name=body["source_name"],
        sha256=body["sha256"],
        encoding=body["encoding"],
        rows=int(body["rows"]),
        loaded_at=body["loaded_at"],
        ignored_columns=tuple(body.get("ignored_columns", ())),
    )


def _match(kind: ListKind, version: int, entry: Mapping[str, Any], matched: str, key: str) -> Match:
    if kind == "industry_catalogue":
        reason = entry.get("entry") or _CATEGORY_LABELS[entry["category"]]
    elif kind == "negative_list":
        reason = entry["measure"]
    else:
        reason = entry["reason"]
    return Match(
        kind=kind,
        key=key,
        matched=matched,
        reason=reason,
        version=version,
        line=entry["line"],
        category=entry.get("category", ""),
        name=entry.get("name", ""),
    )


def _applicant_industries(codes: list[str]) -> list[str]:
    if not isinstance(codes, list):
        raise ValidationFailed("industry_codes must be a list of GB/T 4754 codes such as 'C2511'")
    digits, errors = [], []
    for index, code in enumerate(codes):
        normal = normalise_industry_code(code) if isinstance(code, str) else None
        if normal is None:
            errors.append(
                {
                    "field": f"industry_codes[{index}]",
                    "message": f"{code!r} is not a GB/T 4754 code such as 'C2511' or '2511'",
                }
            )
        else:
            digits.append(normal)
    if errors:
        raise ValidationFailed(
            "industry_codes has codes that are not GB/T 4754 codes; fix them and retry", errors=errors
        )
    return digits


def _masked(value: str) -> str:
    return value[:4] + "*" * max(len(value) - 8, 0) + value[-4:] if len(value) > 8 else "*" * len(value)


# ---- CSV parsing ----------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            raise ValidationFailed(
                f"the CSV is neither UTF-8 nor GBK/GB 18030 (byte {utf8_error.start} is not UTF-8); "
                "save it as 'CSV UTF-8' and upload it again"
            ) from None


def _parse(kind: ListKind, text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The list's entries (canonical column names, plus ``line``) and the ignored columns."""
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = _COLUMNS[kind]
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationFailed(f"the {kind} CSV is empty; it needs a header line: {expected_header(kind)}") from None
    except csv.Error as exc:
        raise ValidationFailed(
            f"line 1 is not valid CSV ({exc}); the header should be: {expected_header(kind)}"
        ) from None
    positions, ignored, problems = _header(kind, header)
    if problems:
        raise ValidationFailed(
            f"the {kind} CSV header is wrong; it should be: {expected_header(kind)}", errors=problems
        )
    entries: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    count = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append({"line": reader.line_num, "field": "", "message": f"is not valid CSV: {exc}"})
            break
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            errors.append(
                {"line": line, "field": "", "message": f"has {len(row)} fields but the header has {len(header)}"}
            )
            continue
        count += 1
        raw = {column.name: row[positions[column.name]].strip() for column in columns if column.name in positions}
        entry, row_errors = _row(kind, raw, line)
        errors += row_errors
        if not row_errors:
            entries.append(entry)
    if errors:
        shown = errors[:MAX_REPORTED]
        more = f"; the first {MAX_REPORTED} are listed" if len(errors) > MAX_REPORTED else ""
        first = shown[0]
        raise ValidationFailed(
            f"the {kind} CSV has {len(errors)} problem(s){more}, first at line {first['line']}"
            f"{', column ' + first['field'] if first['field'] else ''}: {first['message']}; "
            "fix the file and upload it again (nothing was stored)",
            errors=shown,
        )
    logger.debug("parsed %d %s rows", count, kind)
    return entries, ignored


def expected_header(kind: ListKind) -> str:
    """The header a ``kind`` CSV takes: each column's name, '?' if optional, and its aliases."""
    return ",".join(f"{c.name}{'' if c.required else '?'} ({'/'.join(c.aliases)})" for c in _COLUMNS[kind])


def _header(kind: ListKind, header: list[str]) -> tuple[dict[str, int], list[str], list[dict[str, Any]]]:
    names: dict[str, str] = {}
    for column in _COLUMNS[kind]:
        for alias in (column.name, *column.aliases):
            names[alias.lower()] = column.name
    positions: dict[str, int] = {}
    ignored: list[str] = []
    problems: list[dict[str, Any]] = []
    for index, cell in enumerate(header):
        label = cell.strip().lstrip("\ufeff")
        name = names.get(label.lower())
        if name is None:
            if label:
                ignored.append(label)
            continue
        if name in positions:
            problems.append(
                {"line": 1, "field": label, "message": f"names column {name!r} a second time (column {index + 1})"}
            )
            continue
        positions[name] = index
    for column in _COLUMNS[kind]:
        if column.required and column.name not in positions:
            problems.append(
                {
                    "line": 1,
                    "field": column.name,
                    "message": f"is missing; name it {column.name!r} or {' / '.join(repr(a) for a in column.aliases)}",
                }
            )
    return positions, ignored, problems


def _row(kind: ListKind, raw: dict[str, str], line: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    errors: list[dict[str, Any]] = []

    def bad(column: str, message: str) -> None:
        errors.append({"line": line, "field": column, "message": message})

    entry: dict[str, Any] = {"line": line}
    for column in _COLUMNS[kind]:
        value = raw.get(column.name, "")
        if column.required and not value:
            bad(column.name, "is empty")
        elif len(value) > MAX_TEXT:
            bad(column.name, f"is {len(value)} characters long; at most {MAX_TEXT}")
        elif any(ord(c) < 32 for c in value):
            bad(column.name, "contains a control character (a line break inside a cell?)")
        else:
            entry[column.name] = value
    if errors:
        return entry, errors

    if kind == "dishonest" and "id_number" in entry:
        value = entry["id_number"].upper()
        as_uscc, as_rid = uscc_problem(value), resident_id_problem(value)
        if as_uscc and as_rid:
            bad("id_number", f"{value!r} is neither a credit code ({as_uscc}) nor a resident ID ({as_rid})")
        entry["id_number"] = value
    if kind == "abnormal_operation":
        value = entry["credit_code"].upper()
        problem = uscc_problem(value)
        if problem:
            bad("credit_code", f"{value!r} {problem}")
        entry["credit_code"] = value
    if entry.get("listed_on"):
        found = _DATE.match(entry["listed_on"])
        try:
            if not found:
                raise ValueError
            entry["listed_on"] = datetime.date(*(int(g) for g in found.groups())).isoformat()
        except ValueError:
            bad("listed_on", f"{entry['listed_on']!r} is not a date like 2024-10-08")
    if kind in ("industry_catalogue", "negative_list") and entry.get("industry_code"):
        normal = normalise_industry_code(entry["industry_code"])
        if normal is None:
            bad("industry_code", f"{entry['industry_code']!r} is not a GB/T 4754 code such as 'C25' or '2511'")
        else:
            entry["industry_code"] = normal
    if kind == "industry_catalogue":
        category = _INDUSTRY_CATEGORIES.get(entry["category"].lower())
        if category is None:
            bad(
                "category",
                f"{entry['category']!r} is not restricted (限制类) or eliminated (淘汰类); "
                "encouraged (鼓励类) entries are no warning: leave them out",
            )
        entry["category"] = category or entry["category"]
    if kind == "negative_list":
        if entry.get("item_code"):
            item = entry["item_code"].lower()
            if not _ITEM.match(item):
                bad("item_code", f"{entry['item_code']!r} is not an item code (a-z 0-9 _ . -, at most 64)")
            entry["item_code"] = item
        if not entry.get("industry_code") and not entry.get("item_code"):
            bad("industry_code", "and item_code are both empty; give at least one")
        if entry.get("category"):
            category = _NEGATIVE_CATEGORIES.get(entry["category"].lower())
            if category is None:
                bad("category", f"{entry['category']!r} is not prohibited (禁止准入类) or licensed (许可准入类)")
            entry["category"] = category or entry["category"]
    # Optional columns left empty are simply absent from the entry.
    return {k: v for k, v in entry.items() if v != ""}, errors
