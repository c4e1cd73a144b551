"""A long-running server's memory does not grow with finished inspections.

500 short inspections go through the session service (join, a note, end) on a real
server; afterwards the journal holds no log in memory, the service no connection or
participant, the rooms are closed, no idempotency lock is left, and the inspection book holds
no more finished records than it keeps (the rest are read back from the store when asked for).
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from approval.requests import parse_new_inspection
from session import commands
from testkit.server import inspection_body, running_server

N = 500
#: Finished records the book keeps in this test: well below N, so most are let go.
KEEP = 50


class QuietAudience:
    """Collects what the service would tell the pages (no sockets in this test)."""

    def __init__(self) -> None:
        self.told = 0

    async def to_room(self, inspection_id: str, event: str, data: dict[str, Any]) -> None:
        self.told += 1

    async def to_connection(self, connection: str, event: str, data: dict[str, Any]) -> None:
        self.told += 1

    async def enter(self, connection: str, inspection_id: str) -> None:
        pass

    async def drop(self, connection: str) -> None:
        pass

    async def drop_here(self, connection: str) -> None:
        pass


async def test_finished_inspections_leave_memory(tmp_path) -> None:
    async with running_server(tmp_path / "d", api_rate_per_minute="100000") as server, aiohttp.ClientSession() as http:
        services = server.services
        sessions = services.sessions
        sessions.audience = QuietAudience()
        book = services.book
        book.keep_finished = KEEP
        expires = int(time.time()) + 3600
        for n in range(N):
            body = inspection_body(case_no=f"DZ-2026-{n:06d}", callback_url=None)
            record = await book.create(parse_new_inspection(body), "test", __import__("datetime").timedelta(hours=1))
            inspector, applicant = f"i{n}", f"a{n}"
            sessions.admit(inspector, sessions.signer.issue(record.id, "inspector", expires))
            sessions.admit(applicant, sessions.signer.issue(record.id, "applicant", expires))
            await sessions.join(inspector, commands.Join(None, False))
            await sessions.join(applicant, commands.Join(None, False))
            await sessions.note(inspector, commands.Note("现场整洁", None))
            await sessions.end(inspector)
            await sessions.leave(applicant)
            await sessions.leave(inspector)
        # a few requests with an Idempotency-Key, whose locks must be released
        for n in range(5):
            async with http.post(
                server.base_url + "/api/v1/inspections", json=inspection_body(case_no=f"DZ-2026-9{n:05d}"),
                headers=server.headers(**{"Idempotency-Key": f"k{n}"}),
            ) as response:
                assert response.status == 201
        await services.decisions.idle()
        first_id = book.summaries()[0].id
        assert all(s.status == "judged" for s in book.summaries() if s.case_no.startswith("DZ-2026-0"))
        # the book holds the 5 scheduled ones and at most KEEP of the 500 finished
        assert book.held <= KEEP + 5, book.held
        assert book.find(first_id) is None
        # a record the book let go is still served, read back from the store
        async with http.get(server.base_url + f"/api/v1/inspections/{first_id}", headers=server.headers()) as response:
            body = await response.json()
            assert response.status == 200, body
            assert body["case_no"] == "DZ-2026-000000" and body["status"] == "judged" and body["manifest"]["sha256"]
        async with http.get(server.base_url + "/api/v1/inspections", params={"case_no": "DZ-2026-000001"},
                            headers=server.headers()) as response:
            listed = await response.json()
            assert response.status == 200, listed
            assert [r["status"] for r in listed["items"]] == ["judged"]
        assert book.held <= KEEP + 5, book.held  # the listing read the store without keeping what it read
        assert services.journal.logs_in_memory == 0
        assert sessions.connection_count == 0 and not sessions._participants
        assert list(sessions.rooms) == []
        assert services.idempotency.locks_held == 0
