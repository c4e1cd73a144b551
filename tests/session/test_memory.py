"""A long-running server's memory does not grow with finished inspections.

500 short inspections go through the session service (join, a note, end) on a real
server; afterwards the journal holds no log in memory, the service no connection or
participant, the rooms are closed and no idempotency lock is left.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from approval.requests import parse_new_inspection
from session import commands
from testkit.server import inspection_body, running_server

N = 500


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
        assert all(book.get(r.id).status == "judged" for r in book.all() if r.case_no.startswith("DZ-2026-0"))
        assert services.journal.logs_in_memory == 0
        assert sessions.connection_count == 0 and not sessions._participants
        assert list(sessions.rooms) == []
        assert services.idempotency.locks_held == 0
