"""Two Takan nodes, one cut off from Redis mid-session: it fences itself, the other takes over.

Real parts: two ``takan serve`` processes on one redis-server and one S3 server (moto); node
A reaches Redis through a TCP proxy of the test's own (testkit/tcpproxy.py), node B directly.
A hosts a live inspection (Socket.IO participants, A's recorder filing segments); the test
blackholes A's proxy (a partition: A's Redis requests hang) while A keeps serving its pages.
A must disconnect its pages and stop writing before B can take the room (docs/nodes.md,
"Fencing"); B takes it once A's heartbeat lapses, the participants join there as the pages
would (``POST /api/v1/session/node``, then Socket.IO to the node it names), the session goes
on and ends on B, and ``takan verify`` passes: one chain, no fork. Then A's way to Redis comes
back: A beats again, is healthy, and leaves the room with B.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
import redis.asyncio

from testkit.media import encode_vp8
from testkit.nodes import ROOT, Node
from testkit.server import API_KEY, WEBHOOK_SECRET, inspection_body, wait_healthy
from testkit.servers import REDIS_SERVER, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, RedisServer, free_port
from testkit.sockets import Participant, token_of
from testkit.tcpproxy import TcpProxy

LINK_SECRET = "multinode-fencing-link-secret-0123456789abcdef"

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_SERVER.exists(), reason=f"redis-server not found at {REDIS_SERVER}"),
]


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str, every_s: float = 0.1) -> Any:
    """The first truthy answer of ``check()`` within ``timeout_s``, else a failure naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(every_s)


async def ask_node(http: aiohttp.ClientSession, base_url: str, link: str) -> tuple[int, dict[str, Any]]:
    """What a page asks on load and while its node does not answer."""
    try:
        async with http.post(base_url + "/api/v1/session/node", data=token_of(link), headers={"Content-Type": "text/plain"},
                             timeout=aiohttp.ClientTimeout(total=5)) as r:
            return r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return 0, {"error": str(exc)}


async def test_a_node_cut_off_from_redis_steps_aside_and_the_other_takes_over(tmp_path: Path, redis_server, moto_server) -> None:
    started = time.monotonic()
    proxy = TcpProxy("127.0.0.1", redis_server.port, free_port())
    await proxy.start()
    public_url = f"http://127.0.0.1:{free_port()}"  # no load balancer: the test asks the nodes itself
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TAKAN_")},
        "PYTHONPATH": str(ROOT),
        "TAKAN_API_KEY": API_KEY, "TAKAN_WEBHOOK_SECRET": WEBHOOK_SECRET, "TAKAN_LINK_SECRET": LINK_SECRET,
        "TAKAN_INSPECTOR_LOGIN": "link",
        "TAKAN_S3_ENDPOINT": moto_server.endpoint, "TAKAN_S3_ACCESS_KEY": S3_ACCESS_KEY, "TAKAN_S3_SECRET_KEY": S3_SECRET_KEY,
        "TAKAN_S3_BUCKET": f"takan-fencing-{uuid.uuid4().hex[:12]}", "TAKAN_S3_REGION": S3_REGION, "TAKAN_S3_SECURE": "false",
        "TAKAN_LOG_LEVEL": "INFO",
    }
    field_keys = tmp_path / "field-keys"
    field_keys.mkdir()
    a = Node("node-a", tmp_path, {**env, "TAKAN_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}, public_url)
    b = Node("node-b", tmp_path, {**env, "TAKAN_REDIS_URL": redis_server.url}, public_url)
    direct = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    people: list[Participant] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        async with aiohttp.ClientSession() as http:
            for n in (a, b):  # one after the other: the first creates the shared keys and bucket
                n.start(field_keys)
                await wait_healthy(http, n.url, 60)
            async with http.post(a.url + "/api/v1/inspections", json=inspection_body(), headers=headers) as r:
                created = await r.json()
                assert r.status == 201, created
            inspection_id = created["id"]
            links = {"inspector": created["inspector_url"], "applicant": created["applicant_url"]}

            # -- on A: the page asks where its room is (A takes it), connects, joins, publishes
            status, place = await ask_node(http, a.url, links["inspector"])
            assert status == 200 and place["node"] == "node-a", place
            frames = encode_vp8(320, 240, frames=20)
            on_a = {role: Participant(a.url, link) for role, link in links.items()}
            people.extend(on_a.values())
            for role, p in on_a.items():
                assert await p.connect(), (role, p.refused)
                await p.join_and_publish(frames)
            assert (await on_a["inspector"].call("chat", {"text": "on A"}))["ok"]
            epoch = int(await direct.get(f"takan:room:{inspection_id}:epoch") or 0)
            assert await direct.get(f"takan:room:{inspection_id}:node") == "node-a" and epoch >= 1
            await asyncio.sleep(5)  # a closed 4 s segment per track on A, its events shipped

            # -- the partition: A keeps its pages but no longer reaches Redis
            proxy.blackhole()
            cut = time.monotonic()

            async def dropped() -> bool:
                return not any(p.sio.connected for p in on_a.values())

            await eventually(dropped, 15, "node A disconnected its pages")
            dropped_s = time.monotonic() - cut

            # -- the pages ask again every second; B takes the room once A's heartbeat lapses
            async def taken() -> dict[str, Any] | None:
                status, place = await ask_node(http, b.url, links["inspector"])
                return place if status == 200 and place["node"] == "node-b" else None

            place = await eventually(taken, 20, "node B took the room", every_s=0.25)
            taken_s = time.monotonic() - cut
            assert place["node_url"] == b.url, place
            assert int(await direct.get(f"takan:room:{inspection_id}:epoch")) == epoch + 1

            # A, still cut off, takes nothing and admits nobody (node_fenced, or its Redis timeout)
            status, place = await ask_node(http, a.url, links["inspector"])
            assert status != 200, place

            on_b = {role: Participant(b.url, link) for role, link in links.items()}
            people.extend(on_b.values())
            for role, p in on_b.items():
                assert await p.connect(), (role, p.refused)
                joined = await p.call("join")
                assert joined["ok"], (role, joined)
            assert (await on_b["inspector"].call("chat", {"text": "on B"}))["ok"]

            # -- A's way to Redis comes back: A beats again, healthy, and leaves the room to B
            proxy.restore()

            async def a_beats() -> bool:
                return bool(await direct.exists("takan:value:node:node-a"))

            await eventually(a_beats, 20, "node A's heartbeat came back")
            async with http.get(a.url + "/healthz") as r:
                assert r.status == 200, await r.text()

            async def a_points_at_b() -> dict[str, Any] | None:
                status, place = await ask_node(http, a.url, links["applicant"])
                return place if status == 200 else None

            place = await eventually(a_points_at_b, 20, "node A answered where the room is")
            assert place["node"] == "node-b" and place["node_url"] == b.url, place
            assert await direct.get(f"takan:room:{inspection_id}:node") == "node-b"
            assert int(await direct.get(f"takan:room:{inspection_id}:epoch")) == epoch + 1
            refused = Participant(a.url, links["applicant"])  # an old tab on A is sent to B
            people.append(refused)
            assert not await refused.connect() and refused.refusal_code == "elsewhere", refused.refused

            assert (await on_b["inspector"].call("end"))["ok"]

            async def sealed() -> dict[str, Any] | None:
                async with http.get(f"{b.url}/api/v1/inspections/{inspection_id}", headers=headers) as r:
                    record = await r.json()
                return record if record["status"] in ("ended", "judged") and record.get("manifest") else None

            await eventually(sealed, 30, "the inspection ended and was sealed on B")
            async with http.get(f"{b.url}/api/v1/inspections/{inspection_id}/objects/events.jsonl", headers=headers) as r:
                assert r.status == 200
                events = [json.loads(line) for line in (await r.read()).splitlines()]
        print(f"\nfencing: A dropped its pages {dropped_s:.1f} s after the cut, B took the room {taken_s:.1f} s after; "
              f"{len(events)} events, {sum(e['type'] == 'evidence.recovered' for e in events)} recovered; "
              f"test {time.monotonic() - started:.0f} s")
    finally:
        for p in people:
            await p.close()
        for n in (a, b):
            n.stop()
        await direct.aclose()
        await proxy.stop()

    # one chain, written by A, then by B alone
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for before, after in zip(events, events[1:]):
        assert after["prev"] == before["hash"], after
    interrupted = [e for e in events if e["type"] == "session.interrupted"]
    assert len(interrupted) == 1 and interrupted[0]["data"]["previous_node"] == "node-a", interrupted
    assert interrupted[0]["data"]["node"] == "node-b"
    cut_at = events.index(interrupted[0])
    chats = [(i, e["data"]["text"]) for i, e in enumerate(events) if e["type"] == "chat"]
    assert [text for _, text in chats] == ["on A", "on B"] and chats[0][0] < cut_at < chats[1][0], chats
    assert any(e["type"] == "media.segment" for e in events[:cut_at]), [e["type"] for e in events]
    assert "session.ended" in [e["type"] for e in events]
    assert "fenced" in a.tail() or "fenced" in a.log.read_text(errors="replace"), a.tail()

    verify = subprocess.run(
        [sys.executable, "-m", "takan", "verify", "--data-dir", str(b.data_dir), inspection_id],
        cwd=ROOT, env=b.env, capture_output=True, text=True, timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr + b.tail()
