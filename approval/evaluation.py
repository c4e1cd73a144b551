"""Service evaluation (DB3714/T 0014-2023, clause 10): applicant ratings and period reports.

An applicant rates an inspection once, 1-5 (the overall satisfaction, 群众满意度), with an
optional comment and optional per-dimension scores; the rating is stored at
``records/evaluations/<inspection id>.json`` and cannot be changed (a second one is 409).

:meth:`Evaluations.report` measures a period for 10.3-10.4: satisfaction, how often a
reviewer overturned the automatic verdict (the verdict's accuracy, 信息准确率), the verdict
mix, and how long inspections took against the 30 minutes of 8.2.3, plus the low ratings
to follow up on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from storage.objects import ObjectNotFound, ObjectStore

from errors import Conflict, ValidationFailed
from .inspections import now_utc, parse_rfc3339, rfc3339
from .ledger import LedgerEntry, inspection_view
from .workdays import china_date

__all__ = [
    "DIMENSIONS",
    "RECORD_PREFIX",
    "TARGET_DURATION_S",
    "Evaluations",
    "Rating",
    "percentile",
]

logger = logging.getLogger(__name__)

RECORD_PREFIX = "records/evaluations/"
#: Optional per-dimension scores an applicant may give, with what each measures.
DIMENSIONS = {
    "satisfaction": "满意度",
    "accuracy": "信息准确",
    "timeliness": "办理时效",
    "convenience": "便捷程度",
    "attitude": "服务态度",
}
#: 8.2.3: an inspection should finish within 30 minutes.
TARGET_DURATION_S = 30 * 60
#: Ratings at or below this are listed in the report for follow-up (10.4).
LOW_SCORE = 2
MAX_COMMENT = 1000
MAX_LISTED = 50
_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_OUTCOMES = ("pass", "fail", "manual_review")


@dataclass(frozen=True, slots=True)
class Rating:
    """An applicant's rating of one inspection."""

    inspection_id: str
    score: int
    comment: str
    rated_at: str
    dimensions: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{RECORD_PREFIX}{self.inspection_id}.json"

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_record(self) -> bytes:
        return json.dumps(self.as_json(), ensure_ascii=False, sort_keys=True).encode()

    @classmethod
    def from_record(cls, data: bytes) -> Rating:
        return cls(**json.loads(data))


class Evaluations:
    """Stores ratings and reports on a period.

    Stateless apart from a lock (the store holds every rating), so it needs no ``start()``.
    Whether the inspection exists and may be rated by this caller is the web layer's check.
    """

    def __init__(self, store: ObjectStore, *, clock: Callable[[], datetime.datetime] = now_utc) -> None:
        self._store = store
        self._clock = clock
        self._lock = asyncio.Lock()

    async def rate(
        self,
        inspection_id: str,
        score: int,
        comment: str = "",
        dimensions: Optional[Mapping[str, int]] = None,
    ) -> Rating:
        """Store the one rating of ``inspection_id``; 409 if it was already rated."""
        rating = _parse(inspection_id, score, comment, dimensions, rfc3339(self._clock()) or "")
        async with self._lock:
            existing = await self.get(rating.inspection_id)
            if existing is not None:
                raise Conflict(
                    f"inspection {rating.inspection_id} was already rated at {existing.rated_at}; "
                    "a rating cannot be changed"
                )
            await self._store.put(rating.key, rating.to_record(), "application/json")
        logger.info("inspection %s rated %d", rating.inspection_id, rating.score)
        return rating

    async def get(self, inspection_id: str) -> Optional[Rating]:
        """The inspection's rating, or None."""
        _check_id(inspection_id)
        try:
            return Rating.from_record(await self._store.get(f"{RECORD_PREFIX}{inspection_id}.json"))
        except ObjectNotFound:
            return None

    async def report(
        self,
        start: datetime.date,
        end: datetime.date,
        inspections: Iterable[Any],
        ledger_entries: Iterable[LedgerEntry | Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Measure the inspections held from ``start`` to ``end`` (inclusive, China dates).

        ``inspections`` (``Inspection`` records or their JSON) define the population: those
        whose start (else schedule, else creation) falls in the period. ``ledger_entries``
        supply the reviews (:class:`~approval.ledger.LedgerEntry` or its JSON); others are
        ignored. Ratings are those of the selected inspections.

        A verdict counts as *overturned* when a reviewer decided other than a ``pass`` or
        ``fail`` verdict; a ``manual_review`` verdict that a reviewer settled is *handed over*
        (the rules asked for a person, so it is no error) and stays out of that share.
        """
        if end < start:
            raise ValidationFailed(f"the period ends ({end}) before it starts ({start}); swap them")
        selected = [v for v in map(inspection_view, inspections) if _in_period(v, start, end)]
        ids = {str(v.get("id")) for v in selected}
        reviews = {}
        for entry in ledger_entries:
            body = entry.as_json() if isinstance(entry, LedgerEntry) else entry
            if body.get("inspection_id") in ids and body.get("review_outcome"):
                reviews[body["inspection_id"]] = body["review_outcome"]
        ratings = [r for r in await asyncio.gather(*(self.get(i) for i in sorted(ids))) if r is not None]
        return {
            "period": {"start": start.isoformat(), "end": end.isoformat()},
            "inspections": {
                "count": len(selected),
                "by_status": dict(sorted(Counter(str(v.get("status")) for v in selected).items())),
            },
            "satisfaction": _satisfaction(ratings, len(selected)),
            "dimensions": _dimensions(ratings),
            "verdicts": _verdicts(selected),
            "reviews": _reviews(selected, reviews),
            "durations": _durations(selected),
            "low_ratings": [
                {"inspection_id": r.inspection_id, "score": r.score, "comment": r.comment, "rated_at": r.rated_at}
                for r in sorted(ratings, key=lambda r: (r.score, r.rated_at))
                if r.score <= LOW_SCORE
            ][:MAX_LISTED],
        }


def percentile(values: list[float], p: float) -> Optional[float]:
    """The ``p``-th percentile (0-100) by linear interpolation between closest ranks.

    The same as numpy's default; None for no values.
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---- validation -----------------------------------------------------------------------------


def _check_id(inspection_id: Any) -> str:
    if not isinstance(inspection_id, str) or not _ID.match(inspection_id):
        raise ValidationFailed(
            f"inspection id {inspection_id!r} is not an inspection id",
            errors=[{"field": "inspection_id", "message": "must be 1-128 of A-Z a-z 0-9 . _ -"}],
        )
    return inspection_id


def _score(value: Any, field: str, errors: list[dict[str, str]]) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        errors.append({"field": field, "message": f"must be a whole number from 1 to 5, got {value!r}"})
        return None
    return value


def _parse(
    inspection_id: str, score: Any, comment: Any, dimensions: Optional[Mapping[str, Any]], rated_at: str
) -> Rating:
    _check_id(inspection_id)
    errors: list[dict[str, str]] = []
    checked = _score(score, "score", errors)
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        errors.append({"field": "comment", "message": "must be a string"})
    elif len(comment) > MAX_COMMENT:
        errors.append({"field": "comment", "message": f"must be at most {MAX_COMMENT} characters"})
    elif any(ord(c) < 32 and c not in "\n\t" for c in comment):
        errors.append({"field": "comment", "message": "must not contain control characters"})
    scores: dict[str, int] = {}
    if dimensions is not None and not isinstance(dimensions, Mapping):
        errors.append({"field": "dimensions", "message": "must be an object of dimension: score"})
        dimensions = None
    for name, value in (dimensions or {}).items():
        if name not in DIMENSIONS:
            errors.append(
                {"field": f"dimensions.{name}", "message": f"is not a dimension; use {', '.join(DIMENSIONS)}"}
            )
            continue
        dimension = _score(value, f"dimensions.{name}", errors)
        if dimension is not None:
            scores[name] = dimension
    if errors:
        raise ValidationFailed(f"the rating is not valid: {errors[0]['field']} {errors[0]['message']}", errors=errors)
    assert checked is not None and isinstance(comment, str)
    return Rating(
        inspection_id=inspection_id, score=checked, comment=comment.strip(), rated_at=rated_at, dimensions=scores
    )


# ---- measures -------------------------------------------------------------------------------


def _in_period(view: Mapping[str, Any], start: datetime.date, end: datetime.date) -> bool:
    for name in ("started_at", "scheduled_at", "created_at"):
        moment = parse_rfc3339(view.get(name)) if isinstance(view.get(name), str) and view.get(name) else None
        if moment is not None:
            return start <= china_date(moment) <= end
    return False


def _mean(values: list[float]) -> Optional[float]:
    return round(sum(values) / len(values), 3) if values else None


def _share(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def _satisfaction(ratings: list[Rating], population: int) -> dict[str, Any]:
    counts = Counter(r.score for r in ratings)
    return {
        "ratings": len(ratings),
        "response_rate": _share(len(ratings), population),
        "mean": _mean([float(r.score) for r in ratings]),
        "distribution": {str(score): counts.get(score, 0) for score in range(1, 6)},
        "satisfied_share": _share(sum(1 for r in ratings if r.score >= 4), len(ratings)),
    }


def _dimensions(ratings: list[Rating]) -> dict[str, Any]:
    report = {}
    for name, label in DIMENSIONS.items():
        values = [float(r.dimensions[name]) for r in ratings if name in r.dimensions]
        if values:
            report[name] = {"label": label, "count": len(values), "mean": _mean(values)}
    return report


def _outcome(view: Mapping[str, Any]) -> Optional[str]:
    verdict = view.get("verdict")
    return verdict.get("outcome") if isinstance(verdict, Mapping) else None


def _verdicts(selected: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = Counter(_outcome(v) if _outcome(v) in _OUTCOMES else "none" for v in selected)
    return {name: counts.get(name, 0) for name in (*_OUTCOMES, "none")}


def _reviews(selected: Sequence[Mapping[str, Any]], reviews: Mapping[str, str]) -> dict[str, Any]:
    reviewed = overturned = handed_over = decided = 0
    for view in selected:
        review = reviews.get(str(view.get("id")))
        if review is None:
            continue
        reviewed += 1
        verdict = _outcome(view)
        if verdict in ("pass", "fail"):
            decided += 1
            overturned += verdict != review
        elif verdict == "manual_review":
            handed_over += 1
    share = _share(overturned, decided)
    return {
        "reviewed": reviewed,
        "reviewed_verdicts": decided,
        "overturned": overturned,
        "overturned_share": share,
        "upheld_share": None if share is None else round(1 - share, 4),
        "handed_over": handed_over,
    }


def _durations(selected: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    durations = []
    for view in selected:
        if view.get("status") == "cancelled":
            continue
        started = parse_rfc3339(view.get("started_at")) if isinstance(view.get("started_at"), str) else None
        ended = parse_rfc3339(view.get("ended_at")) if isinstance(view.get("ended_at"), str) else None
        if started is not None and ended is not None:
            durations.append((ended - started).total_seconds())
    within = sum(1 for d in durations if d <= TARGET_DURATION_S)
    p50, p90 = percentile(durations, 50), percentile(durations, 90)
    return {
        "count": len(durations),
        "mean_s": None if not durations else round(sum(durations) / len(durations), 1),
        "p50_s": None if p50 is None else round(p50, 1),
        "p90_s": None if p90 is None else round(p90, 1),
        "within_30_min": within,
        "within_30_min_share": _share(within, len(durations)),
    }
