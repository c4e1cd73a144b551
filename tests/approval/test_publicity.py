"""Double publicity (8.4): drafting, the 7-working-day due date, publishing, withdrawing, feed."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from web.problems import http_status

from errors import Conflict, NotFound, ValidationFailed
from approval.ledger import Ledger
from approval import publicity as publicity_module
from approval.publicity import Publicity, PublicityRecord
from approval.workdays import CalendarYearUnknown, package_years as known_years
from storage.local import LocalObjectStore
from testkit.counting import CountingStore

D = datetime.date
UTC = datetime.timezone.utc

COMPANY = {
    "name": "德州某某餐饮有限公司",
    "kind": "legal_person",
    "id_type": "USCC",
    "id_number": "91371400MA3C1234XF",
    "contact_name": "张三",
    "contact_phone": "13800000000",
}
PERSON = {"name": "王某某", "kind": "natural_person", "id_type": "RESIDENT_ID", "id_number": "371402199003071235"}


def inspection(number: int = 1, applicant: dict[str, Any] = COMPANY) -> dict[str, Any]:
    return {
        "id": f"20240930093000-{number:016x}",
        "case_no": f"DZ-2024-{number:06d}",
        "item_code": "food-business-license",
        "item_name": "食品经营许可",
        "applicant": applicant,
        "started_at": "2024-09-30T01:30:00.000Z",
        "verdict": {"outcome": "pass", "reasons": [], "decided_at": "2024-09-30T02:00:00.000Z"},
    }


def decision(**changes: Any) -> dict[str, Any]:
    return {
        "document_name": "食品经营许可证",
        "document_no": "JY13714020012345",
        "authority": "德州市德城区行政审批服务局",
        "licence_category": "普通",
        "licence_content": "预包装食品销售（含冷藏冷冻食品）；热食类食品制售",
        "decision_date": "2024-09-30",
        **changes,
    }


class Clock:
    """A settable UTC clock."""

    def __init__(self, moment: datetime.datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime.datetime:
        return self.moment

    def at(self, text: str) -> None:
        self.moment = datetime.datetime.fromisoformat(text)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.datetime(2024, 10, 8, 1, 0, tzinfo=UTC))


@pytest.fixture
async def publicity(store: LocalObjectStore, clock: Clock) -> AsyncIterator[Publicity]:
    publicity = Publicity(store, clock=clock)
    await publicity.start()
    yield publicity
    await publicity.close()


async def test_create_fills_the_8_4_2_fields(publicity: Publicity, store: LocalObjectStore) -> None:
    record = await publicity.create(inspection(), decision())
    assert record.state == "draft" and record.uploaded_at is None and record.on_time is None
    assert (record.counterpart_name, record.counterpart_category, record.id_type, record.id_number) == (
        "德州某某餐饮有限公司", "legal_person", "USCC", "91371400MA3C1234XF",
    )  # fmt: skip
    assert (record.document_name, record.document_no, record.authority) == (
        "食品经营许可证", "JY13714020012345", "德州市德城区行政审批服务局",
    )  # fmt: skip
    assert (record.licence_category, record.decision_date, record.due_on) == ("普通", "2024-09-30", "2024-10-15")
    assert PublicityRecord.from_record(await store.get(f"records/publicity/{record.id}.json")) == record
    assert await publicity.get(record.id) == record and await publicity.for_inspection(record.inspection_id) == [record]


@pytest.mark.parametrize(
    ("decided", "due"),
    [
        ("2024-09-27", "2024-10-12"),  # the make-up Sunday 29th and Saturday 12th count
        ("2024-09-30", "2024-10-15"),  # the Golden Week does not
        ("2024-10-01", "2024-10-15"),  # a decision taken on a holiday: as from 30 Sep
        ("2025-01-24", "2025-02-10"),  # 26, 27, 5, 6, 7, 8 (make-up Saturday), 10
        ("2025-01-27", "2025-02-12"),  # 5, 6, 7, 8, 10, 11, 12
    ],
)
async def test_due_in_seven_working_days(publicity: Publicity, clock: Clock, decided: str, due: str) -> None:
    clock.at("2025-03-01T00:00:00+00:00")
    record = await publicity.create(inspection(), decision(decision_date=decided))
    assert record.due_on == due


async def test_publish_withdraw_and_the_feed(publicity: Publicity, clock: Clock) -> None:
    company = await publicity.create(inspection(1), decision())
    person = await publicity.create(
        inspection(2, PERSON), decision(document_no="JY23714020000002", licence_category="approval")
    )
    assert person.licence_category == "核准"
    assert await publicity.feed() == []  # drafts are not public

    clock.at("2024-10-09T02:00:00+00:00")
    published = await publicity.publish(company.id)
    assert published.state == "published" and published.uploaded_at == "2024-10-09T02:00:00.000Z"
    assert published.on_time is True
    assert await publicity.publish(company.id) == published  # idempotent
    await publicity.publish(person.id)  # same clock reading: still a later updated_at

    feed = await publicity.feed()
    assert [e["id"] for e in feed] == [company.id, person.id]
    assert feed[0] == {
        "id": company.id,
        "state": "published",
        "counterpart_name": "德州某某餐饮有限公司",
        "counterpart_category": "legal_person",
        "counterpart_category_label": "法人",
        "id_type": "USCC",
        "id_number": "91371400MA3C1234XF",  # a credit code is published in full
        "uploaded_at": "2024-10-09T02:00:00.000Z",
        "document_name": "食品经营许可证",
        "document_no": "JY13714020012345",
        "authority": "德州市德城区行政审批服务局",
        "licence_category": "普通",
        "licence_content": "预包装食品销售（含冷藏冷冻食品）；热食类食品制售",
        "decision_date": "2024-09-30",
        "updated_at": "2024-10-09T02:00:00.000Z",
    }
    assert feed[1]["id_number"] == "3714**********1235"  # a natural person's ID is masked
    assert feed[1]["updated_at"] == "2024-10-09T02:00:00.001Z"
    assert "contact_phone" not in json.dumps(feed)

    cursor = datetime.datetime.fromisoformat(feed[-1]["updated_at"])
    assert await publicity.feed(cursor) == []
    clock.at("2024-11-01T08:00:00+00:00")
    withdrawn = await publicity.withdraw(company.id, "  德城审批撤字〔2024〕12号：依法撤销  ")
    assert withdrawn.withdraw_reason == "德城审批撤字〔2024〕12号：依法撤销"
    [tombstone] = await publicity.feed(cursor)
    assert tombstone == {
        "id": company.id,
        "state": "withdrawn",
        "document_no": "JY13714020012345",
        "authority": "德州市德城区行政审批服务局",
        "withdrawn_at": "2024-11-01T08:00:00.000Z",
        "withdraw_reason": "德城审批撤字〔2024〕12号：依法撤销",
        "updated_at": "2024-11-01T08:00:00.000Z",
    }
    assert [e["state"] for e in await publicity.feed()] == ["published", "withdrawn"]  # by last change


async def test_state_rules(publicity: Publicity) -> None:
    record = await publicity.create(inspection(), decision())
    with pytest.raises(Conflict, match="withdraw it first"):
        await publicity.create(inspection(), decision(document_no="JY-other"))
    with pytest.raises(ValidationFailed, match="needs a reason"):
        await publicity.withdraw(record.id, " ")
    withdrawn = await publicity.withdraw(record.id, "申请人撤回申请")  # revoked before it was published
    assert withdrawn.uploaded_at is None and await publicity.feed() == []  # never public, no tombstone
    with pytest.raises(Conflict, match="already withdrawn"):
        await publicity.withdraw(record.id, "again")
    with pytest.raises(Conflict, match="create a new one"):
        await publicity.publish(record.id)
    again = await publicity.create(inspection(), decision(document_no="JY-2"))
    assert [r.id for r in await publicity.for_inspection(again.inspection_id)] == [record.id, again.id]
    with pytest.raises(NotFound):
        await publicity.publish("nope")


async def test_overdue(publicity: Publicity, clock: Clock) -> None:
    first = await publicity.create(inspection(1), decision(decision_date="2024-09-30"))  # due 10-15
    second = await publicity.create(inspection(2), decision(decision_date="2024-09-27"))  # due 10-12
    third = await publicity.create(inspection(3), decision(decision_date="2024-10-08"))  # due 10-17
    assert await publicity.overdue(D(2024, 10, 12)) == []
    assert await publicity.overdue(D(2024, 10, 13)) == [second]
    assert [r.id for r in await publicity.overdue(D(2024, 10, 18))] == [second.id, first.id, third.id]
    clock.at("2024-10-20T01:00:00+00:00")
    late = await publicity.publish(second.id)
    assert late.on_time is False
    assert [r.id for r in await publicity.overdue(D(2024, 10, 20))] == [first.id, third.id]


async def test_records_survive_a_restart(store: LocalObjectStore, publicity: Publicity, clock: Clock) -> None:
    record = await publicity.publish((await publicity.create(inspection(), decision())).id)
    again = Publicity(store, clock=clock)
    await again.start()
    await again.start()
    assert await again.get(record.id) == record and await again.feed() == await publicity.feed()
    await again.close()
    await again.close()
    with pytest.raises(RuntimeError, match="await start"):
        await again.feed()


async def test_the_ledger_takes_the_record(store: LocalObjectStore, publicity: Publicity) -> None:
    record = await publicity.publish((await publicity.create(inspection(), decision())).id)
    entry = await Ledger(store).record(inspection(), publicity=record.as_json())
    assert (entry.licensed_on, entry.publicity_state, entry.published_at) == (
        "2024-09-30",
        "published",
        record.uploaded_at,
    )


@pytest.mark.parametrize(
    ("record", "changes", "field", "fragment"),
    [
        (inspection(), {"document_no": ""}, "decision.document_no", "is required"),
        (inspection(), {"valid_to": "2029-09-29"}, "decision.valid_to", "not a known field"),
        (inspection(), {"licence_category": "normal"}, "decision.licence_category", "普通, 特许"),
        (inspection(), {"decision_date": "2024-10-09"}, "decision.decision_date", "in the future"),
        (inspection(), {"decision_date": "30/09/2024"}, "decision.decision_date", "like 2024-10-08"),
        (
            inspection(),
            {"decision_date": datetime.datetime(2024, 9, 30, tzinfo=UTC)},
            "decision.decision_date",
            "not a time",
        ),
        (inspection(applicant={**COMPANY, "id_number": ""}), {}, "inspection.applicant.id_number", "is required"),
        (inspection(applicant={**COMPANY, "kind": "company"}), {}, "inspection.applicant.kind", "must be one of"),
        ({**inspection(), "case_no": None}, {}, "inspection.case_no", "is required"),
    ],
)
async def test_validation(
    publicity: Publicity, record: dict[str, Any], changes: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await publicity.create(record, decision(**changes))
    [problem] = caught.value.errors
    assert problem["field"] == field and fragment in problem["message"]
    assert field in caught.value.detail


async def test_a_due_date_in_an_unknown_year(publicity: Publicity, clock: Clock) -> None:
    last = known_years().stop - 1
    clock.moment = datetime.datetime(last + 1, 6, 1, tzinfo=UTC)
    with pytest.raises(CalendarYearUnknown) as caught:
        await publicity.create(inspection(), decision(decision_date=f"{last}-12-30"))
    assert caught.value.year == last + 1 and http_status(caught.value) == 422
    assert caught.value.errors[0]["field"] == "decision.decision_date"
    assert "takan calendar import" in caught.value.detail
    with pytest.raises(CalendarYearUnknown, match=str(known_years().start - 1)):
        await publicity.create(inspection(), decision(decision_date=f"{known_years().start - 1}-06-01"))
    assert await publicity.for_inspection(inspection()["id"]) == []


async def test_memory_stays_bounded_and_the_feed_reads_only_what_it_returns(
    store: LocalObjectStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publicity_module, "CACHED", 5)
    counting = CountingStore(store)
    publicity = Publicity(counting, clock=clock)  # type: ignore[arg-type]
    await publicity.start()
    made = [await publicity.create(inspection(n), decision(document_no=f"JY-{n}")) for n in range(1, 31)]
    assert publicity.held <= 5
    published = [await publicity.publish(r.id) for r in made[:20]]
    withdrawn = await publicity.withdraw(made[3].id, "依法撤销")
    assert publicity.held <= 5
    # the feed: every public record, by last change, each read whole
    feed = await publicity.feed()
    assert [e["id"] for e in feed] == [r.id for r in published if r.id != withdrawn.id] + [withdrawn.id]
    assert feed[-1] == withdrawn.public() and feed[0] == published[0].public()
    # a pull since a cursor reads only what changed after it
    counting.gets = 0
    later = await publicity.feed(datetime.datetime.fromisoformat(published[16].updated_at.replace("Z", "+00:00")))
    assert [e["id"] for e in later] == [published[17].id, published[18].id, published[19].id, withdrawn.id]
    assert counting.gets <= 4
    # the drafts still overdue, and the lookups, read from the store
    assert [r.id for r in await publicity.overdue(D(2024, 10, 16))] == [r.id for r in made[20:]]
    assert await publicity.get(made[0].id) == published[0]
    assert await publicity.for_inspection(made[3].inspection_id) == [withdrawn]
    assert publicity.held <= 5
    # withdrawn, the inspection may have another; a live one still blocks it
    with pytest.raises(Conflict):
        await publicity.create(inspection(1), decision(document_no="JY-again"))
    assert (await publicity.create(inspection(4), decision(document_no="JY-4b"))).state == "draft"
    # a restart indexes the same
    again = Publicity(store, clock=clock)
    await again.start()
    again_rows = list(again._index)
    assert again.held == 0  # indexed, none kept whole
    assert await again.feed() == feed and again.held <= 5
    await again.close()
    await publicity.close()  # stores the index's copy
    # a start after that reads the copy alone, and indexes the same
    counting = CountingStore(store)
    third = Publicity(counting, clock=clock)  # type: ignore[arg-type]
    await third.start()
    assert counting.gets == 1 and [s.row() for s in third._index] == [s.row() for s in again_rows]
    assert await third.feed() == feed
    await third.close()
