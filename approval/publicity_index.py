"""A summary of every publicity record: what the feed, the overdue list and the per-inspection
lookups select on, so that :class:`approval.publicity.Publicity` reads from the store only the
records it returns (a whole record carries the decision's text, up to a few kB)."""

from __future__ import annotations

import datetime
from bisect import bisect_right, insort
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Iterator, Optional

from .index_copy import string_fields


_FEED_ORDER = attrgetter("updated", "id")
_UPDATED = attrgetter("updated")


@dataclass(frozen=True, slots=True)
class PublicitySummary:
    """One publicity record's state and dates."""

    id: str
    inspection_id: str
    state: str
    due_on: str
    created_at: str
    updated_at: str
    uploaded_at: Optional[str]
    #: ``updated_at`` as a time: the feed's order and cursor
    updated: datetime.datetime

    def row(self) -> list[Optional[str]]:
        """The fields but ``updated`` (which ``updated_at`` gives), as the index's stored copy
        keeps them (approval/index_copy.py)."""
        return [self.id, self.inspection_id, self.state, self.due_on, self.created_at, self.updated_at, self.uploaded_at]

    @classmethod
    def from_row(cls, row: Any) -> PublicitySummary:
        """The summary :meth:`row` gave; ValueError if ``row`` is not one."""
        fields = string_fields(row, _ROW, frozenset({"uploaded_at"}))
        updated = datetime.datetime.fromisoformat(str(fields[5]).replace("Z", "+00:00"))
        if updated.tzinfo is None:
            raise ValueError("a publicity summary's updated_at has no time zone")
        return cls(str(fields[0]), str(fields[1]), str(fields[2]), str(fields[3]), str(fields[4]), str(fields[5]), fields[6], updated)

    @property
    def public(self) -> bool:
        """Whether the feed shows it: it was published (it may have been withdrawn since)."""
        return self.uploaded_at is not None


_ROW = ("id", "inspection_id", "state", "due_on", "created_at", "updated_at", "uploaded_at")


class PublicityIndex:
    """Every publicity record's summary: by id, by inspection, and the public ones by change."""

    def __init__(self) -> None:
        self._by_id: dict[str, PublicitySummary] = {}
        self._by_inspection: dict[str, list[str]] = {}
        #: the public summaries, ordered by (updated, id)
        self._feed: list[PublicitySummary] = []

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[PublicitySummary]:
        return iter(list(self._by_id.values()))

    def get(self, publicity_id: str) -> Optional[PublicitySummary]:
        return self._by_id.get(publicity_id)

    def put(self, summary: PublicitySummary) -> None:
        """Add a record's summary, or replace the one it had (its inspection never changes)."""
        old = self._by_id.get(summary.id)
        if old is None:
            self._by_inspection.setdefault(summary.inspection_id, []).append(summary.id)
        elif old.public:
            at = bisect_right(self._feed, _FEED_ORDER(old), key=_FEED_ORDER) - 1
            assert self._feed[at].id == old.id, f"publicity index out of order at {old.id}"
            del self._feed[at]
        if summary.public:
            insort(self._feed, summary, key=_FEED_ORDER)
        self._by_id[summary.id] = summary

    def for_inspection(self, inspection_id: str) -> list[PublicitySummary]:
        return [self._by_id[i] for i in self._by_inspection.get(inspection_id, [])]

    def public_after(self, since: Optional[datetime.datetime]) -> list[PublicitySummary]:
        """The public summaries changed after ``since`` (all if None), oldest change first."""
        return self._feed[0 if since is None else bisect_right(self._feed, since, key=_UPDATED) :]

    def clear(self) -> None:
        self._by_id.clear()
        self._by_inspection.clear()
        self._feed.clear()
