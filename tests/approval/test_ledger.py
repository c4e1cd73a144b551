"""The ledger (8.5): archiving entries, re-recording after a review, periods and exports."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from errors import ValidationFailed
from approval.inspections import Inspection, rfc3339
from approval.ledger import ARCHIVE_LIMIT_S, COLUMNS, Ledger, LedgerEntry, inspection_view, mask_id
from storage.local import LocalObjectStore

D = datetime.date
UTC = datetime.timezone.utc


def make_inspection(**changes: Any) -> Inspection:
    record = Inspection(
        id="20240930163000-0123456789abcdef",
        case_no="DZ-2024-000123",
        item_code="food-business-license",
        item_name="食品经营许可",
        applicant={
            "name": "德州某某餐饮有限公司",
            "kind": "legal_person",
            "id_type": "USCC",
            "id_number": "91371400MA3C1234XF",
            "contact_name": "张三",
            "contact_phone": "13800000000",
        },
        site={"address": "德州市德城区某路1号"},
        checkpoints=[],
        callback_url=None,
        scheduled_at=None,
        created_at="2024-09-30T08:00:00.000Z",
        expires_at="2024-10-01T08:00:00.000Z",
        api_key_id="key-1",
        status="judged",
        # 00:30 on 1 October in Dezhou: a National Day inspection, filed under 2024/10.
        started_at="2024-09-30T16:30:00.000Z",
        ended_at="2024-09-30T16:52:30.000Z",
        participants=[
            {"id": "insp-li", "role": "inspector", "name": "李检查"},
            {"id": "app-1", "role": "applicant"},
            {"id": "insp-li", "role": "inspector", "name": "李检查"},  # reconnected
        ],
        verdict={
            "outcome": "manual_review",
            "reasons": ["门头招牌缺失"],
            "rules_version": "r7",
            "decided_at": "2024-09-30T16:53:00.000Z",
        },
    )
    return dataclasses.replace(record, **changes)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
def ledger(store: LocalObjectStore) -> Ledger:
    return Ledger(store)


async def test_record_archives_the_entry(ledger: Ledger, store: LocalObjectStore) -> None:
    entry = await ledger.record(make_inspection())
    assert entry.key == "records/ledger/2024/10/20240930163000-0123456789abcdef.json"
    assert LedgerEntry.from_record(await store.get(entry.key)) == entry
    assert (entry.applicant_name, entry.applicant_kind, entry.id_type, entry.id_number) == (
        "德州某某餐饮有限公司", "legal_person", "USCC", "91371400MA3C1234XF",
    )  # fmt: skip
    assert (entry.inspected_on, entry.duration_s, entry.inspectors) == ("2024-10-01", 1350.0, ("李检查",))
    assert (entry.verdict_outcome, entry.verdict_reasons, entry.rules_version) == (
        "manual_review",
        ("门头招牌缺失",),
        "r7",
    )
    assert entry.review_outcome is None and entry.version == 1
    assert entry.archived_after_s is not None and entry.archived_after_s > ARCHIVE_LIMIT_S  # decided in 2024
    assert entry.as_json()["id_number"] == "9137**********34XF"
    assert entry.as_json(full=True)["id_number"] == "91371400MA3C1234XF"


async def test_archiving_time(ledger: Ledger, record_property: Callable[[str, object], None]) -> None:
    """8.5.2 allows 20 s; the figure is recorded (``-rP`` or the JUnit XML shows it), not asserted."""
    timings_ms = []
    for index in range(20):
        decided = datetime.datetime.now(UTC)
        inspection = make_inspection(
            id=f"20241008093000-{index:016x}",
            started_at=rfc3339(decided - datetime.timedelta(minutes=20)),
            ended_at=rfc3339(decided),
            verdict={"outcome": "pass", "reasons": [], "rules_version": "r7", "decided_at": rfc3339(decided)},
        )
        began = time.perf_counter()
        entry = await ledger.record(inspection)
        timings_ms.append((time.perf_counter() - began) * 1000)
        assert entry.archived_after_s is not None
    figures = {"mean_ms": round(statistics.fmean(timings_ms), 2), "max_ms": round(max(timings_ms), 2)}
    record_property("ledger_record_ms", figures)
    print(f"ledger record(): {figures} over {len(timings_ms)} entries (8.5.2 limit {ARCHIVE_LIMIT_S} s)")


async def test_re_recording_keeps_the_previous_version(ledger: Ledger) -> None:
    inspection = make_inspection()
    first = await ledger.record(inspection)
    assert await ledger.record(inspection) == first  # same facts: nothing written

    review = {"outcome": "pass", "comment": "招牌已补拍", "reviewer": "王复核", "at": "2024-10-08T01:00:00Z"}
    second = await ledger.record(inspection, review)
    assert second.version == 2
    assert (second.review_outcome, second.review_comment, second.reviewer, second.reviewed_at) == (
        "pass", "招牌已补拍", "王复核", "2024-10-08T01:00:00.000Z",
    )  # fmt: skip
    assert second.key == first.key

    publicity = {"state": "published", "published_at": "2024-10-09T02:00:00Z", "decision_date": D(2024, 10, 8)}
    third = await ledger.record(inspection, publicity=publicity)
    assert third.version == 3
    assert third.review_outcome == "pass"  # a review left out is kept
    assert (third.licensed_on, third.publicity_state, third.published_at) == (
        "2024-10-08", "published", "2024-10-09T02:00:00.000Z",
    )  # fmt: skip

    history = await ledger.history(inspection.id)
    assert [e.version for e in history] == [1, 2]
    assert history[0] == first and history[1] == second
    [current] = await ledger.query(D(2024, 10, 1), D(2024, 10, 1))
    assert current == third


async def test_a_mapping_records_like_the_dataclass(ledger: Ledger) -> None:
    record = make_inspection()
    as_api_json = {**inspection_view(record), "duration_s": record.duration_s}
    from_dict = await ledger.record(as_api_json)
    assert from_dict.duration_s == 1350.0 and from_dict.inspectors == ("李检查",)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (D(2024, 9, 30), D(2024, 9, 30), ["sep30"]),
        (D(2024, 10, 1), D(2024, 10, 31), ["oct01", "oct31"]),
        (D(2024, 9, 1), D(2024, 11, 30), ["sep30", "oct01", "oct31", "nov01"]),
        (D(2024, 11, 2), D(2025, 1, 31), []),
    ],
)
async def test_query_by_china_date(
    ledger: Ledger, start: datetime.date, end: datetime.date, expected: list[str]
) -> None:
    starts = {
        "sep30": "2024-09-30T15:59:00Z",  # 23:59 in Dezhou
        "oct01": "2024-09-30T16:00:00Z",  # 00:00 on 1 October
        "oct31": "2024-10-31T15:00:00Z",
        "nov01": "2024-10-31T16:30:00Z",
    }
    for name, started in starts.items():
        await ledger.record(make_inspection(id=f"20241001000000-{name}", started_at=started, ended_at=None))
    got = await ledger.query(start, end)
    assert [e.inspection_id.split("-")[1] for e in got] == expected


async def test_export_csv(ledger: Ledger) -> None:
    await ledger.record(make_inspection())
    await ledger.record(
        make_inspection(
            id="20241002010000-feedfacefeedface",
            started_at="2024-10-02T01:00:00Z",
            applicant={
                "name": '=HYPERLINK("http://x")',
                "kind": "natural_person",
                "id_type": "RESIDENT_ID",
                "id_number": "371402199003071235",
            },
        ),
        {"outcome": "fail", "comment": "", "reviewer": "王复核", "at": "2024-10-03T02:00:00Z"},
    )
    data = await ledger.export(D(2024, 10, 1), D(2024, 10, 31), "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == [header for _, header in COLUMNS]
    assert rows[0][:5] == ["踏勘编号", "办件编号", "事项编码", "事项名称", "申请主体名称"]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["证件号码"] == "9137**********34XF" and first["主体类别"] == "法人"
    assert first["踏勘开始时间"] == "2024-10-01 00:30:00"  # China time
    assert first["研判结果"] == "转人工审核" and first["踏勘人员"] == "李检查" and first["踏勘时长(秒)"] == "1350.0"
    second = dict(zip(rows[0], rows[2], strict=True))
    assert second["申请主体名称"] == '\'=HYPERLINK("http://x")'  # stays text in Excel
    assert second["证件号码"] == "3714**********1235" and second["复核结果"] == "不通过"

    full = await ledger.export(D(2024, 10, 1), D(2024, 10, 31), "csv", full=True)
    assert "91371400MA3C1234XF" in full.decode("utf-8-sig") and "371402199003071235" in full.decode("utf-8-sig")


async def test_export_json_and_xlsx(ledger: Ledger) -> None:
    await ledger.record(make_inspection(applicant={**make_inspection().applicant, "name": "=1+1"}))
    body = json.loads(await ledger.export(D(2024, 10, 1), D(2024, 10, 1), "json"))
    assert (body["start"], body["end"], body["count"]) == ("2024-10-01", "2024-10-01", 1)
    assert body["entries"][0]["id_number"] == "9137**********34XF"
    assert body["entries"][0]["started_at"] == "2024-09-30T16:30:00.000Z"

    data = await ledger.export(D(2024, 10, 1), D(2024, 10, 1), "xlsx", full=True)
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == [header for _, header in COLUMNS]
    row = dict(zip(values[0], values[1], strict=True))
    assert row["申请主体名称"] == "=1+1" and sheet["E2"].data_type == "s"  # text, not a formula
    assert row["证件号码"] == "91371400MA3C1234XF" and row["踏勘时长(秒)"] == 1350.0

    empty = await ledger.export(D(2025, 1, 1), D(2025, 1, 31), "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(empty)).active
    assert sheet is not None and sheet.max_row == 1


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda led: led.record(make_inspection(applicant={"name": "x", "kind": "legal_person"})), "applicant.id_type"),
        (lambda led: led.record(make_inspection(started_at=None, created_at="")), "started_at"),
        (lambda led: led.record(make_inspection(), {"outcome": "maybe", "reviewer": "王"}), "review is incomplete"),
        (
            lambda led: led.record(make_inspection(), {"outcome": "pass", "reviewer": "王", "at": "yesterday"}),
            "RFC 3339",
        ),
        (lambda led: led.record(make_inspection(), publicity={"state": "online"}), "publicity state"),
        (lambda led: led.export(D(2024, 10, 1), D(2024, 10, 2), "pdf"), "use csv, json or xlsx"),
        (lambda led: led.query(D(2024, 10, 2), D(2024, 10, 1)), "swap them"),
    ],
)
async def test_validation(ledger: Ledger, call: Callable[[Ledger], Any], fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await call(ledger)
    assert fragment in caught.value.detail + json.dumps(caught.value.errors, ensure_ascii=False)


@pytest.mark.parametrize(
    ("value", "masked"),
    [("91371400MA3C1234XF", "9137**********34XF"), ("E1234567", "********"), ("", ""), (None, None)],
)
def test_mask_id(value: str | None, masked: str | None) -> None:
    assert mask_id(value) == masked
