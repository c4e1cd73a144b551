"""Inspection records written straight to a store: many of them, quickly, for the tests of
listings and memory bounds (making each through the book would take a second per hundred)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Optional

from approval.inspections import RECORD_PREFIX, Inspection, rfc3339
from approval.requests import parse_new_inspection
from storage.objects import ObjectStore

from .server import inspection_body

#: Status by record number: one in ten in play (held by every book), the others finished.
STATUSES = ("scheduled", "judged", "cancelled", "reviewed", "expired", "judged", "cancelled", "judged", "reviewed", "judged")
START = datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc)
#: long enough that no sweeper expires a scheduled one during a test
LINKS_VALID = datetime.timedelta(days=365 * 50)


def record(number: int, status: Optional[str] = None) -> Inspection:
    """Record ``number``: case ``DZ-2026-<number>``, created ``number`` minutes after START,
    run by inspector ``u<number % 3>``."""
    new = parse_new_inspection(inspection_body(case_no=f"DZ-2026-{number:06d}", callback_url=None))
    status = status or STATUSES[number % len(STATUSES)]
    created = START + datetime.timedelta(minutes=number)
    return Inspection(
        id=created.strftime("%Y%m%d%H%M%S") + f"-{number:016x}",
        case_no=new.case_no,
        item_code=new.item_code,
        item_name=new.item_name,
        applicant=dataclasses.asdict(new.applicant),
        site=dataclasses.asdict(new.site),
        checkpoints=[{"code": c.code, "title": c.title, "required": c.required, "captured": False, "evidence": []}
                     for c in new.checkpoints or ()],
        callback_url=None,
        scheduled_at=None,
        created_at=rfc3339(created) or "",
        expires_at=rfc3339(created + LINKS_VALID) or "",
        api_key_id="test",
        status=status,
        inspector_user_id=f"u{number % 3}",
        verdict={"outcome": "pass" if number % 2 else "fail"} if status in ("judged", "reviewed") else None,
    )


async def store_records(store: ObjectStore, count: int, first: int = 0) -> list[Inspection]:
    """Records ``first`` .. ``first + count - 1``, written to ``store``; oldest first."""
    records = [record(n) for n in range(first, first + count)]
    for start in range(0, len(records), 50):
        await asyncio.gather(*(
            store.put(f"{RECORD_PREFIX}{r.id}.json", r.to_json(), "application/json") for r in records[start : start + 50]
        ))
    return records
