"""Ledger write time after a judgement (8.5: within 20 s; aim under 1 s).

    .venv/bin/python bench/ledger.py [--n 200]

Times ``Ledger.record`` (the entry built from a judged inspection, its ID number encrypted,
written atomically with fsync to the local object store) for n inspections.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approval.inspections import Inspection  # noqa: E402
from approval.ledger import Ledger  # noqa: E402
from privacy.fieldcrypto import FieldCipher, FieldKeys  # noqa: E402
from storage.local import LocalObjectStore  # noqa: E402


def judged(i: int) -> Inspection:
    return Inspection(
        id=f"20261126100000-{i:016x}", case_no=f"DZ-2026-{i:06d}", item_code="food-business-license", item_name="食品经营许可",
        applicant={"name": "德州某某餐饮有限公司", "kind": "legal_person", "id_type": "USCC", "id_number": "91350100M000100Y43",
                   "contact_name": "张三", "contact_phone": "13800000000"},
        site={"address": "德州市德城区某路1号", "lat": 37.4, "lon": 116.3, "radius_m": 300}, checkpoints=[],
        callback_url=None, scheduled_at=None, created_at="2026-11-26T02:00:00.000Z", expires_at="2026-11-29T02:00:00.000Z",
        api_key_id="seeded", status="judged", started_at="2026-11-26T02:00:00.000Z", ended_at="2026-11-26T02:21:00.000Z",
        participants=[{"role": "inspector", "id": "inspector"}],
        verdict={"outcome": "pass", "reasons": [], "rules_version": "food-business-license@2026.1+abc", "decided_at": datetime.datetime.now(datetime.timezone.utc).isoformat()},
    )


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalObjectStore(Path(tmp) / "objects")
        await store.start()
        keys = FieldKeys(Path(tmp) / "field-keys")
        keys.start()
        ledger = Ledger(store, FieldCipher(keys))
        times = []
        for i in range(n):
            record = judged(i)
            start = time.perf_counter()
            await ledger.record(record)
            times.append(time.perf_counter() - start)
        await store.close()
    times.sort()
    print(f"ledger write after judgement, n={n}: p50 {statistics.median(times) * 1000:.2f} ms, "
          f"p99 {times[int(n * 0.99) - 1] * 1000:.2f} ms, max {times[-1] * 1000:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    asyncio.run(main(parser.parse_args().n))
