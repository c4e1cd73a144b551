"""A restart with many open inspections is healthy quickly (issue 9, finding 6).

The live ones are marked interrupted and sealed in the background after the server
listens, so the time to healthy does not grow with them.
"""

from __future__ import annotations

import datetime
import time

import aiohttp

from approval.requests import parse_new_inspection
from testkit.server import inspection_body, running_server

OPEN = 2000


async def test_restart_with_2000_open_inspections(tmp_path) -> None:
    data = tmp_path / "d"
    async with running_server(data) as server:
        book = server.services.book
        for n in range(OPEN):
            record = await book.create(
                parse_new_inspection(inspection_body(case_no=f"DZ-2026-{n:06d}", callback_url=None)), "test",
                datetime.timedelta(hours=2),
            )
            if n % 2 == 0:
                await book.transition(record.id, "live")
    started = time.monotonic()
    async with running_server(data) as server, aiohttp.ClientSession() as http:
        async with http.get(server.base_url + "/healthz") as r:
            assert r.status == 200
        healthy_after = time.monotonic() - started
        # healthy before the background seals are done: the time to healthy does not wait for them
        # (a structural check; a wall-clock bound alone flakes on a loaded machine)
        unsealed = sum(1 for r in server.services.book.all() if r.status in ("live", "interrupted") and not r.manifest)
        recovery = server.services.sessions.recovery
        await recovery.idle()
        statuses = [r.status for r in server.services.book.all()]
        assert statuses.count("interrupted") == OPEN // 2 and statuses.count("scheduled") == OPEN // 2
        assert all(r.manifest for r in server.services.book.all() if r.status == "interrupted")
    assert unsealed > 0, "the server answered only after sealing every interrupted inspection"
    assert healthy_after < 60.0, f"healthy after {healthy_after:.1f} s with {OPEN} open inspections"
