"""What a page sees of a node that lost its lease (docs/nodes.md, "Fencing"): its events are
refused with ``node_fenced`` the moment the lease is not valid (before the watchdog acts),
a new connection is refused with the same code, and then the node disconnects its pages
and closes their room without logging anything more. One node on a real redis-server; the
lease is made invalid by shrinking its margin, so nothing here waits for a timeout."""

from __future__ import annotations

import aiohttp

from testkit.media import wait_for
from testkit.server import create_inspection, logged_events, running_server
from testkit.sockets import Participant


async def test_a_fenced_node_refuses_events_then_drops_its_pages(tmp_path, redis_url) -> None:
    async with aiohttp.ClientSession() as http, running_server(tmp_path / "d", redis_url=redis_url, node_id="node-f") as server:
        created = await create_inspection(server, http)
        inspection_id = created["id"]
        placement = server.services.placement
        assert placement.fencing
        inspector = Participant(server.base_url, created["inspector_url"])
        applicant = Participant(server.base_url, created["applicant_url"])
        late = Participant(server.base_url, created["applicant_url"])
        try:
            assert await inspector.connect() and await applicant.connect()
            assert (await inspector.call("join"))["ok"] and (await applicant.call("join"))["ok"]
            assert (await inspector.call("chat", {"text": "before"}))["ok"]
            assert server.services.sessions.rooms.find(inspection_id) is not None

            # the lease is no longer valid (as 2 s after the last renewal), the watchdog not yet acting
            await placement._watchdog.close()
            margin, placement.fence_after_s = placement.fence_after_s, 0.0
            logged = len(await logged_events(server, inspection_id))
            refused = await inspector.call("chat", {"text": "while fenced"})
            assert not refused["ok"] and refused["error"]["code"] == "node_fenced", refused
            assert "reconnects" in refused["error"]["message"]
            assert not await late.connect() and late.refusal_code == "node_fenced", late.refused
            async with http.post(server.base_url + "/api/v1/session/node", data=created["applicant_url"].split("#", 1)[1]) as r:
                assert r.status == 503 and (await r.json(content_type=None))["type"].endswith("node_fenced")

            # the watchdog: the node steps aside
            placement._watchdog.start(placement._watch)
            assert await wait_for(lambda: not inspector.sio.connected and not applicant.sio.connected, 10)
            assert await wait_for(lambda: server.services.sessions.rooms.find(inspection_id) is None, 10)
            assert placement.fences == 1 and not placement.holds(inspection_id)
            assert server.services.sessions.connection_count == 0
            # nothing logged after the lease ended; the record is left as it was (the next node
            # marks it interrupted), and Redis still names this node until someone takes the room
            assert server.services.journal.held(inspection_id) is None
            assert len(await logged_events(server, inspection_id)) == logged
            assert server.services.book.get(inspection_id).status == "live"

            # the lease comes back: the node takes its own room afresh, as any node would
            placement.fence_after_s = margin
            assert await wait_for(lambda: placement.lease_valid, 10)
            again = Participant(server.base_url, created["inspector_url"])
            try:
                assert await again.connect(), again.refused
                assert (await again.call("join"))["ok"]
                events = await logged_events(server, inspection_id)
                interrupted = [e for e in events if e["type"] == "session.interrupted"]
                assert len(interrupted) == 1 and interrupted[0]["data"]["previous_node"] == "node-f", interrupted
                assert [e["data"]["text"] for e in events if e["type"] == "chat"] == ["before"]
            finally:
                await again.close()
        finally:
            for p in (inspector, applicant, late):
                await p.close()
