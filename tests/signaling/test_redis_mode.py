"""With Redis configured: live state in Redis, Socket.IO fan-out across nodes, and one node
writing an inspection's log (a change sent to another node is refused with where to go)."""

from __future__ import annotations

import aiohttp

from storage.redis_state import RedisLiveState
from testkit.media import encode_vp8, wait_for
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant


async def test_session_on_redis_and_fan_out_across_nodes(tmp_path, redis_url) -> None:
    frames = encode_vp8(320, 240, frames=20)
    data = tmp_path / "shared"
    async with aiohttp.ClientSession() as http:
        async with running_server(data, redis_url=redis_url, node_id="node-a") as node_a:
            created = await create_inspection(node_a, http)
            async with running_server(data, redis_url=redis_url, node_id="node-b") as node_b:
                inspector = Participant(node_a.base_url, created["inspector_url"])
                applicant = Participant(node_a.base_url, created["applicant_url"])
                try:
                    assert await inspector.connect() and await applicant.connect()
                    await inspector.join_and_publish(frames)
                    await applicant.join_and_publish(frames)
                    assert await wait_for(lambda: inspector.peer.video_sink.frames > 10, 15)
                    # presence and the room's node are in Redis
                    state = RedisLiveState(redis_url)
                    await state.start()
                    try:
                        assert set(await state.presence(created["id"])) == {"inspector", "applicant"}
                        assert await state.room_node(created["id"]) == "node-a"
                        assert await state.role_holder(created["id"], "applicant") == applicant.sio.get_sid()
                    finally:
                        await state.close()
                    # a record node B's index lacks (an announcement not heard yet) is read from the store
                    node_b.services.book._records.pop(created["id"])
                    async with http.get(f"{node_b.base_url}/api/v1/inspections/{created['id']}", headers=node_b.headers()) as r:
                        assert r.status == 200 and (await r.json())["status"] == "live"
                    # a node starting while node A hosts the live session leaves it to node A (its
                    # recovery marks interrupted only what no live node serves)
                    async with running_server(data, redis_url=redis_url, node_id="node-c") as node_c:
                        await node_c.services.sessions.recovery.idle()
                        assert node_c.services.book.get(created["id"]).status == "live"
                    # what node B tells the room reaches the participants connected to node A
                    await node_b.services.sessions.audience.to_room(created["id"], "notice", {"text": "from node b"})
                    assert await wait_for(lambda: ("notice", {"text": "from node b"}) in applicant.events, 10)
                    # a cancel sent to node B is refused with where to send it: node A writes
                    # the inspection's log (docs/nodes.md); sent there, it reaches both pages
                    cancel = {"reason": "改为现场踏勘"}
                    async with http.post(f"{node_b.base_url}/api/v1/inspections/{created['id']}/cancel", json=cancel, headers=node_b.headers()) as r:
                        problem = await r.json(content_type=None)
                        assert r.status == 421, problem
                        assert problem["node_url"] == node_a.base_url, problem
                    async with http.post(f"{problem['node_url']}/api/v1/inspections/{created['id']}/cancel", json=cancel, headers=node_b.headers()) as r:
                        assert r.status == 200, await r.text()
                    assert await wait_for(lambda: "cancelled" in applicant.statuses() and "cancelled" in inspector.statuses(), 10)
                finally:
                    await inspector.close()
                    await applicant.close()
