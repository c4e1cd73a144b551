"""Inspections end by themselves (issue 11, part 6): abandoned and expired, across restarts."""

from __future__ import annotations

import asyncio
import datetime

import aiohttp

from testkit.media import wait_for
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant
from tests.contract.test_approval_core import Receiver


async def join_both(server, created) -> tuple[Participant, Participant]:
    inspector = Participant(server.base_url, created["inspector_url"])
    applicant = Participant(server.base_url, created["applicant_url"])
    assert await inspector.connect() and await applicant.connect()
    assert (await inspector.call("join"))["ok"]
    assert (await applicant.call("join"))["ok"]
    assert await wait_for(lambda: server.services.book.get(created["id"]).status == "live", 10)
    return inspector, applicant


async def test_an_empty_session_is_abandoned_across_a_restart_and_judged_for_a_person(tmp_path) -> None:
    receiver = Receiver()
    await receiver.start()
    data = tmp_path / "data"
    try:
        async with aiohttp.ClientSession() as http:
            async with running_server(data, abandon_after_s="600") as server:
                created = await create_inspection(server, http, callback_url=receiver.url)
                inspector, applicant = await join_both(server, created)
                await inspector.close()
                await applicant.close()
            # the process stopped with the session live and empty; the next one has a short window
            async with running_server(data, abandon_after_s="1.5") as server:
                book = server.services.book
                assert await wait_for(lambda: book.get(created["id"]).status == "interrupted", 10)
                assert await wait_for(lambda: book.get(created["id"]).status == "judged", 20), book.get(created["id"]).status
                record = book.get(created["id"])
                assert record.end_reason == "abandoned"
                assert record.verdict["outcome"] == "manual_review"
                assert "judge.abandoned" in [r["rule"] for r in record.verdict["reasons"]]
                events = await server.services.journal.events(created["id"])
                ended = [e for e in events if e["type"] == "session.ended"]
                assert ended and ended[-1]["actor"] == "system" and ended[-1]["data"]["end_reason"] == "abandoned"
                assert await wait_for(lambda: receiver.unique("inspection.judged"), 20)
                (hook,) = receiver.unique("inspection.judged").values()
                assert hook["inspection"]["end_reason"] == "abandoned"
                assert hook["inspection"]["verdict"]["outcome"] == "manual_review"
                async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
                    assert (await r.json())["end_reason"] == "abandoned"
    finally:
        await receiver.stop()


async def test_the_inspector_resumes_inside_the_window(tmp_path) -> None:
    async with aiohttp.ClientSession() as http, running_server(tmp_path / "data", abandon_after_s="2") as server:
        created = await create_inspection(server, http)
        inspector, applicant = await join_both(server, created)
        await inspector.close()
        await applicant.close()
        await asyncio.sleep(1.0)
        inspector, applicant = await join_both(server, created)
        try:
            await asyncio.sleep(3.0)
            record = server.services.book.get(created["id"])
            assert record.status == "live" and record.vacant_since is None
            assert (await inspector.call("end"))["ok"]
            assert server.services.book.get(created["id"]).end_reason == "ended"
        finally:
            await inspector.close()
            await applicant.close()


async def test_an_unjoined_scheduled_inspection_expires_across_a_restart(tmp_path) -> None:
    receiver = Receiver()
    await receiver.start()
    data = tmp_path / "data"
    past = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).isoformat()
    try:
        async with aiohttp.ClientSession() as http:
            # links valid for 2 s from now; the server stops before they run out
            async with running_server(data, link_ttl_hours=str(2 / 3600)) as server:
                created = await create_inspection(server, http, callback_url=receiver.url, scheduled_at=past)
                assert server.services.book.get(created["id"]).status == "scheduled"
            await asyncio.sleep(2.5)
            async with running_server(data, link_ttl_hours=str(2 / 3600)) as server:
                book = server.services.book
                assert await wait_for(lambda: book.get(created["id"]).status == "expired", 10)
                assert await wait_for(lambda: book.get(created["id"]).manifest is not None, 10)
                assert await wait_for(lambda: receiver.unique("inspection.expired"), 20)
                (hook,) = receiver.unique("inspection.expired").values()
                assert set(hook) == {"event", "delivery_id", "occurred_at", "inspection"}
                assert hook["inspection"]["status"] == "expired" and hook["inspection"]["id"] == created["id"]
                events = await server.services.journal.events(created["id"])
                assert events[-1]["type"] == "session.expired"
                late = Participant(server.base_url, created["applicant_url"])
                assert not await late.connect()
                assert late.refusal_code == "token_expired"
                async with http.get(f"{server.base_url}/api/v1/inspections?status=expired", headers=server.headers()) as r:
                    assert [i["id"] for i in (await r.json())["items"]] == [created["id"]]
    finally:
        await receiver.stop()
