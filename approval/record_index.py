"""A compact summary of every inspection record, in listing order.

The book (:mod:`approval.inspections`) holds only the records in play and a few recent
finished ones; listings, reports and the retention report range over every record. They do
so over :class:`RecordIndex`: a :class:`RecordSummary` (a few hundred bytes: ids, status and
times, no applicant, site, checklist or evidence) per record, so a listing filters in memory
and reads from the store only the records of the page it returns.
"""

from __future__ import annotations

import sys
from bisect import bisect_right, insort
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Iterator, Optional, Sequence

from .index_copy import string_fields

#: The order of listings and cursors: creation time, then id.
Order = tuple[str, str]
_ORDER = attrgetter("order")


@dataclass(frozen=True, slots=True)
class RecordSummary:
    """What listings and reports read of one record (``may_see`` reads ``inspector_user_id``)."""

    id: str
    case_no: str
    item_code: str
    status: str
    created_at: str
    scheduled_at: Optional[str]
    started_at: Optional[str]
    ended_at: Optional[str]
    inspector_user_id: Optional[str]
    #: the verdict's outcome (pass, fail, manual_review), None before the rules judged it
    outcome: Optional[str]

    @classmethod
    def of(
        cls,
        id: str,
        case_no: str,
        item_code: str,
        status: str,
        created_at: str,
        scheduled_at: Optional[str],
        started_at: Optional[str],
        ended_at: Optional[str],
        inspector_user_id: Optional[str],
        outcome: Optional[str],
    ) -> RecordSummary:
        """A summary with the few distinct values repeated over every record (item codes,
        statuses, inspectors, outcomes) interned, one string each."""
        return cls(
            id, case_no, sys.intern(item_code), sys.intern(status), created_at, scheduled_at, started_at, ended_at,
            None if inspector_user_id is None else sys.intern(inspector_user_id),
            None if outcome is None else sys.intern(outcome),
        )

    def row(self) -> list[Optional[str]]:
        """The fields in order, as the index's stored copy keeps them (approval/index_copy.py)."""
        return [getattr(self, name) for name in _FIELDS]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> RecordSummary:
        """The summary :meth:`row` gave; ValueError if ``row`` is not one."""
        return cls.of(*string_fields(row, _FIELDS, _OPTIONAL))  # type: ignore[arg-type]  # checked: str where not optional

    @property
    def order(self) -> Order:
        return (self.created_at, self.id)

    def as_json(self) -> dict[str, Any]:
        """The summarised fields in the record's own JSON shape (the verdict as ``{outcome}``),
        which the evaluation and retention reports read as they read whole records."""
        return {
            "id": self.id,
            "case_no": self.case_no,
            "item_code": self.item_code,
            "status": self.status,
            "created_at": self.created_at,
            "scheduled_at": self.scheduled_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "inspector_user_id": self.inspector_user_id,
            "verdict": None if self.outcome is None else {"outcome": self.outcome},
        }


_FIELDS = tuple(item.name for item in fields(RecordSummary))
_OPTIONAL = frozenset({"scheduled_at", "started_at", "ended_at", "inspector_user_id", "outcome"})


class RecordIndex:
    """Every record's summary, by id, in listing order, and by case number."""

    def __init__(self) -> None:
        self._by_id: dict[str, RecordSummary] = {}
        #: every summary, ordered by (created_at, id); a record's created_at never changes
        self._ordered: list[RecordSummary] = []
        #: a case's summaries in the same order (a case has a few inspections at most)
        self._by_case: dict[str, list[RecordSummary]] = {}

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._by_id

    def put(self, summary: RecordSummary) -> None:
        """Add a record's summary, or replace the one it had."""
        old = self._by_id.get(summary.id)
        if old is not None and old.order == summary.order and old.case_no == summary.case_no:
            self._ordered[self._position(self._ordered, old)] = summary
            case = self._by_case[old.case_no]
            case[self._position(case, old)] = summary
        else:
            if old is not None:
                self.drop(old.id)
            insort(self._ordered, summary, key=_ORDER)
            insort(self._by_case.setdefault(summary.case_no, []), summary, key=_ORDER)
        self._by_id[summary.id] = summary

    def drop(self, record_id: str) -> None:
        """Forget a record (it is gone from the store); nothing if the index lacks it."""
        old = self._by_id.pop(record_id, None)
        if old is None:
            return
        del self._ordered[self._position(self._ordered, old)]
        case = self._by_case[old.case_no]
        del case[self._position(case, old)]
        if not case:
            del self._by_case[old.case_no]

    def __len__(self) -> int:
        return len(self._by_id)

    def clear(self) -> None:
        self._by_id.clear()
        self._ordered.clear()
        self._by_case.clear()

    def __iter__(self) -> Iterator[RecordSummary]:
        """Every summary, oldest first (a snapshot: the index may change meanwhile)."""
        return iter(list(self._ordered))

    def after(self, cursor: Optional[Order] = None, case_no: Optional[str] = None) -> Iterator[RecordSummary]:
        """The summaries after ``cursor`` (all if None) in order, only case ``case_no``'s if
        given. Lazy, and safe to go on with after the index changed (a listing awaits store
        reads between steps): each step looks up the next one after the last one yielded."""
        last = cursor
        while True:
            ordered = self._ordered if case_no is None else self._by_case.get(case_no, [])
            at = 0 if last is None else bisect_right(ordered, last, key=_ORDER)
            if at >= len(ordered):
                return
            summary = ordered[at]
            last = summary.order
            yield summary

    @staticmethod
    def _position(ordered: list[RecordSummary], summary: RecordSummary) -> int:
        at = bisect_right(ordered, summary.order, key=_ORDER) - 1
        assert at >= 0 and ordered[at].id == summary.id, f"record index out of order at {summary.id}"
        return at
