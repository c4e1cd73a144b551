"""Service evaluation (clause 10): one rating per inspection, and the period report."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Optional

import pytest

from web.problems import http_status

from errors import Conflict, ValidationFailed
from approval.evaluation import Evaluations, Rating, percentile
from approval.inspections import Inspection
from approval.ledger import Ledger
from storage.local import LocalObjectStore

D = datetime.date
UTC = datetime.timezone.utc
APPLICANT = {
    "name": "德州某某餐饮有限公司",
    "kind": "legal_person",
    "id_type": "USCC",
    "id_number": "91371400MA3C1234XF",
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
def evaluations(store: LocalObjectStore) -> Evaluations:
    return Evaluations(store, clock=lambda: datetime.datetime(2024, 10, 9, 2, 0, tzinfo=UTC))


async def test_one_rating_per_inspection(evaluations: Evaluations, store: LocalObjectStore) -> None:
    rating = await evaluations.rate("i1", 4, "  视频清晰，指导耐心  ", {"accuracy": 5, "attitude": 4})
    assert rating == Rating("i1", 4, "视频清晰，指导耐心", "2024-10-09T02:00:00.000Z", {"accuracy": 5, "attitude": 4})
    assert Rating.from_record(await store.get("records/evaluations/i1.json")) == rating
    assert await evaluations.get("i1") == rating and await evaluations.get("i2") is None
    with pytest.raises(Conflict, match="already rated at 2024-10-09T02:00:00.000Z") as caught:
        await evaluations.rate("i1", 5)
    assert http_status(caught.value) == 409
    assert await evaluations.get("i1") == rating


@pytest.mark.parametrize(
    ("args", "field", "fragment"),
    [
        (("i1", 0), "score", "from 1 to 5"),
        (("i1", 6), "score", "from 1 to 5"),
        (("i1", 3.5), "score", "from 1 to 5"),
        (("i1", True), "score", "from 1 to 5"),
        (("i1", "5"), "score", "from 1 to 5"),
        (("i1", 5, "x" * 1001), "comment", "at most 1000"),
        (("i1", 5, "ok", {"speed": 5}), "dimensions.speed", "satisfaction, accuracy"),
        (("i1", 5, "ok", {"accuracy": 9}), "dimensions.accuracy", "from 1 to 5"),
        (("i1", 5, "ok", [5]), "dimensions", "must be an object"),
        (("../i1", 5), "inspection_id", "A-Z a-z 0-9"),
    ],
)
async def test_bad_ratings(evaluations: Evaluations, args: tuple[Any, ...], field: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await evaluations.rate(*args)
    [problem] = caught.value.errors
    assert problem["field"] == field and fragment in problem["message"]


def inspection(
    number: int, started: str, minutes: Optional[float], outcome: Optional[str], status: str = "judged"
) -> dict[str, Any]:
    begin = datetime.datetime.fromisoformat(started)
    return {
        "id": f"i{number}",
        "case_no": f"DZ-2024-{number:06d}",
        "item_code": "food-business-license",
        "item_name": "食品经营许可",
        "applicant": APPLICANT,
        "status": status,
        "created_at": started,
        "started_at": started,
        "ended_at": None if minutes is None else (begin + datetime.timedelta(minutes=minutes)).isoformat(),
        "verdict": None if outcome is None else {"outcome": outcome, "reasons": [], "decided_at": started},
    }


async def test_report(evaluations: Evaluations, store: LocalObjectStore) -> None:
    records: list[Any] = [
        inspection(1, "2024-10-08T01:00:00+00:00", 20, "pass"),
        inspection(2, "2024-10-09T01:00:00+00:00", 25, "pass", "reviewed"),
        inspection(3, "2024-10-10T01:00:00+00:00", 35, "fail", "reviewed"),
        inspection(4, "2024-10-11T01:00:00+00:00", 40, "manual_review", "reviewed"),
        inspection(5, "2024-10-12T01:00:00+00:00", 10, "pass"),
        inspection(6, "2024-10-14T01:00:00+00:00", None, None, "cancelled"),
        inspection(7, "2024-09-30T15:00:00+00:00", 15, "fail", "reviewed"),  # 23:00 on 30 Sep in Dezhou
        inspection(8, "2024-10-31T16:30:00+00:00", 15, "pass"),  # 1 November in Dezhou
    ]
    # The first as an Inspection dataclass, as InspectionBook hands it out.
    first = records[0]
    records[0] = Inspection(
        **first,
        site={},
        checkpoints=[],
        callback_url=None,
        scheduled_at=None,
        expires_at=first["started_at"],
        api_key_id="key-1",
    )
    for number, score, comment, dims in [
        (1, 5, "很方便", {"accuracy": 5}),
        (2, 4, "", None),
        (3, 2, "等太久", None),
        (4, 3, "", {"accuracy": 4, "timeliness": 2}),
        (7, 1, "out of period", None),
    ]:
        await evaluations.rate(f"i{number}", score, comment, dims)

    ledger = Ledger(store)
    overturned = await ledger.record(
        records[1], {"outcome": "fail", "reviewer": "王复核", "at": "2024-10-09T03:00:00Z"}
    )
    entries: list[Any] = [
        overturned,
        {"inspection_id": "i3", "review_outcome": "fail"},  # upheld
        {"inspection_id": "i4", "review_outcome": "pass"},  # handed over by the rules
        {"inspection_id": "i5", "review_outcome": None},
        {"inspection_id": "i7", "review_outcome": "pass"},  # outside the period
    ]
    report = await evaluations.report(D(2024, 10, 1), D(2024, 10, 31), records, entries)
    assert report == {
        "period": {"start": "2024-10-01", "end": "2024-10-31"},
        "inspections": {"count": 6, "by_status": {"cancelled": 1, "judged": 2, "reviewed": 3}},
        "satisfaction": {
            "ratings": 4,
            "response_rate": 0.6667,
            "mean": 3.5,
            "distribution": {"1": 0, "2": 1, "3": 1, "4": 1, "5": 1},
            "satisfied_share": 0.5,
        },
        "dimensions": {
            "accuracy": {"label": "信息准确", "count": 2, "mean": 4.5},
            "timeliness": {"label": "办理时效", "count": 1, "mean": 2.0},
        },
        "verdicts": {"pass": 3, "fail": 1, "manual_review": 1, "none": 1},
        "reviews": {
            "reviewed": 3,
            "reviewed_verdicts": 2,
            "overturned": 1,
            "overturned_share": 0.5,
            "upheld_share": 0.5,
            "handed_over": 1,
        },
        # 10, 20, 25, 35, 40 minutes; the cancelled one has no duration.
        "durations": {
            "count": 5,
            "mean_s": 1560.0,
            "p50_s": 1500.0,
            "p90_s": 2280.0,
            "within_30_min": 3,
            "within_30_min_share": 0.6,
        },
        "low_ratings": [
            {"inspection_id": "i3", "score": 2, "comment": "等太久", "rated_at": "2024-10-09T02:00:00.000Z"}
        ],
    }
    json.dumps(report)  # ready for the wire


async def test_an_empty_period(evaluations: Evaluations) -> None:
    report = await evaluations.report(
        D(2025, 1, 1), D(2025, 1, 31), [inspection(1, "2024-10-08T01:00:00+00:00", 20, "pass")]
    )
    assert report["inspections"]["count"] == 0
    assert report["satisfaction"]["mean"] is None and report["satisfaction"]["response_rate"] is None
    assert report["reviews"]["overturned_share"] is None
    assert report["durations"] == {
        "count": 0, "mean_s": None, "p50_s": None, "p90_s": None, "within_30_min": 0, "within_30_min_share": None,
    }  # fmt: skip
    with pytest.raises(ValidationFailed, match="swap them"):
        await evaluations.report(D(2025, 1, 31), D(2025, 1, 1), [])


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 90, 7.0),
        ([1.0, 2.0], 50, 1.5),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),
        ([10.0, 20.0, 30.0, 40.0, 50.0], 90, 46.0),
        ([10.0, 20.0, 30.0, 40.0, 50.0], 0, 10.0),
        ([10.0, 20.0, 30.0, 40.0, 50.0], 100, 50.0),
    ],
)
def test_percentile(values: list[float], p: float, expected: Optional[float]) -> None:
    assert percentile(values, p) == pytest.approx(expected) if expected is not None else percentile(values, p) is None


def test_rating_is_frozen() -> None:
    rating = Rating("i1", 5, "", "2024-10-09T02:00:00.000Z")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rating.score = 1  # type: ignore[misc]
