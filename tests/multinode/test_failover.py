"""Two Takan nodes behind nginx: the node hosting a live session is killed, the other takes over.

Real parts throughout: two ``takan serve`` processes sharing a redis-server and an S3
server (moto), Debian's nginx as an ordinary round-robin upstream pool in front of them,
and real Chromium pages (inspector and applicant) opened through nginx. The pages move to
the node hosting their room; that node gets SIGKILL mid-session; both pages must be back in
the session on the other node within seconds, the session ends there, and the evidence
(segments recorded by both nodes, one hash chain) verifies with ``takan verify``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from testkit.browser import chromium_available
from testkit.server import API_KEY, WEBHOOK_SECRET, inspection_body, wait_healthy
from testkit.nodes import ROOT, Node
from testkit.servers import NGINX, REDIS_SERVER, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, MotoServer, NginxProxy, RedisServer, free_port
from tests.web_client.test_pages import JOINED, browser, decoding, open_page, until

LINK_SECRET = "multinode-test-link-secret-0123456789abcdef"
#: From the kill to both pages joined again on the other node: the heartbeat lapses (3 s),
#: the pages ask again every second, load the page there, join and offer (6-11 s measured;
#: the bound leaves room for a loaded shared CI machine).
BACK_WITHIN_S = 30.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.redis,
    pytest.mark.skipif(not chromium_available(), reason="Debian chromium is not installed"),
    pytest.mark.skipif(not NGINX.exists(), reason=f"nginx not found at {NGINX}; scripts/install.sh installs it"),
    pytest.mark.skipif(not REDIS_SERVER.exists(), reason=f"redis-server not found at {REDIS_SERVER}"),
]


@contextlib.asynccontextmanager
async def deployment(root: Path, redis: RedisServer, moto: MotoServer) -> AsyncIterator[tuple[NginxProxy, list[Node]]]:
    """nginx in front of two nodes on one Redis and one bucket; everything stopped after."""
    proxy_port = free_port()
    public_url = f"http://127.0.0.1:{proxy_port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TAKAN_")},
        "PYTHONPATH": str(ROOT),
        "TAKAN_API_KEY": API_KEY, "TAKAN_WEBHOOK_SECRET": WEBHOOK_SECRET, "TAKAN_LINK_SECRET": LINK_SECRET,
        "TAKAN_INSPECTOR_LOGIN": "link",  # the link alone, as in testkit.server
        "TAKAN_REDIS_URL": redis.url,
        "TAKAN_S3_ENDPOINT": moto.endpoint, "TAKAN_S3_ACCESS_KEY": S3_ACCESS_KEY, "TAKAN_S3_SECRET_KEY": S3_SECRET_KEY,
        "TAKAN_S3_BUCKET": f"takan-multinode-{uuid.uuid4().hex[:12]}", "TAKAN_S3_REGION": S3_REGION, "TAKAN_S3_SECURE": "false",
        "TAKAN_LOG_LEVEL": "INFO",
    }
    field_keys = root / "field-keys"
    field_keys.mkdir(parents=True)
    nodes = [Node(name, root, env, public_url) for name in ("node-a", "node-b")]
    proxy = NginxProxy([f"127.0.0.1:{n.port}" for n in nodes], root / "nginx")
    proxy.port = proxy_port
    try:
        async with aiohttp.ClientSession() as http:
            for node in nodes:  # one after the other: the first creates the shared keys and bucket
                node.start(field_keys)
                await wait_healthy(http, node.url, 60)
        proxy.start()
        yield proxy, nodes
    finally:
        proxy.discard()
        for node in nodes:
            node.stop()


async def node_of(page, nodes: list[Node]) -> Node:
    """The node whose URL the page is on (after it moved to its room's node)."""
    for node in nodes:
        if page.url.startswith(node.url + "/"):
            return node
    raise AssertionError(f"the page is on {page.url}, no node's URL")


async def test_a_killed_node_s_session_comes_back_on_the_other(tmp_path, redis_server, moto_server) -> None:
    async with deployment(tmp_path, redis_server, moto_server) as (proxy, nodes), aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with http.post(proxy.url + "/api/v1/inspections", json=inspection_body(), headers=headers) as r:
            created = await r.json()
            assert r.status == 201, created
        assert created["inspector_url"].startswith(proxy.url)

        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            applicant = await open_page(b, created["applicant_url"], mobile=True)
            console: list[str] = []  # printed if the test fails: when each page asked, moved, joined
            for name, page in (("inspector", inspector), ("applicant", applicant)):
                page.on("console", lambda m, name=name: console.append(f"{time.strftime('%H:%M:%S')} {name}: {m.text}"))
            await until(inspector, JOINED, 40)
            await until(applicant, JOINED, 40)
            # both pages left the proxy's URL for the one node that hosts the room
            host = await node_of(inspector, nodes)
            assert await node_of(applicant, nodes) is host
            other = next(n for n in nodes if n is not host)
            await decoding(inspector)
            await decoding(applicant)
            # a change sent to the other node is refused with where to send it: one node writes the log
            async with http.post(f"{other.url}/api/v1/inspections/{created['id']}/observers",
                                 json={"name": "专家"}, headers=headers) as r:
                problem = await r.json(content_type=None)
                assert r.status == 421 and problem["node_url"] == host.url, problem
            async with http.post(f"{host.url}/api/v1/inspections/{created['id']}/observers",
                                 json={"name": "专家"}, headers=headers) as r:
                assert r.status == 201, await r.text()
            await asyncio.sleep(9)  # two closed 4 s segments per track on the first node
            # acknowledged just before the kill: within the shipper's second, so in the store
            # only through the copy in Redis that the other node adopts (evidence/tail.py)
            async with http.post(f"{host.url}/api/v1/inspections/{created['id']}/observers",
                                 json={"name": "最后一位"}, headers=headers) as r:
                assert r.status == 201, await r.text()

            host.kill()
            killed = time.monotonic()
            console.append(f"{time.strftime('%H:%M:%S')} {host.name} killed")
            try:
                for page in (inspector, applicant):
                    await until(page, f"location.origin === {json.dumps(other.url)} && {JOINED}", BACK_WITHIN_S - (time.monotonic() - killed))
            except AssertionError as exc:
                raise AssertionError("\n".join([str(exc), *console])) from None
            back_s = time.monotonic() - killed
            await decoding(inspector)
            await decoding(applicant)
            resumed_s = time.monotonic() - killed
            print(f"\nfailover: both pages joined on {other.name} {back_s:.1f} s after the kill, video both ways {resumed_s:.1f} s after")
            await asyncio.sleep(9)  # segments recorded by the second node
            await inspector.click("#btn-end")
            await inspector.click("#end-confirm")
            await until(inspector, "window.takan.state.status === 'ended'", 20)
            for page in (inspector, applicant):
                assert page.js_errors == [], (page.js_errors, console)

        # the record, through the proxy (the surviving node answers): ended, sealed
        deadline = time.monotonic() + 30
        while True:
            async with http.get(f"{proxy.url}/api/v1/inspections/{created['id']}", headers=headers) as r:
                record = await r.json()
            if record["status"] in ("ended", "judged") and record.get("manifest"):
                break
            assert time.monotonic() < deadline, record
            await asyncio.sleep(0.5)
        async with http.get(f"{proxy.url}/api/v1/inspections/{created['id']}/objects/events.jsonl", headers=headers) as r:
            assert r.status == 200
            events = [json.loads(line) for line in (await r.read()).splitlines()]

    # one chain across both nodes: the take-over is in it, with segments before and after
    types = [e["type"] for e in events]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    interrupted = [e for e in events if e["type"] == "session.interrupted"]
    assert len(interrupted) == 1 and interrupted[0]["data"]["previous_node"] == host.name, interrupted
    assert interrupted[0]["data"]["node"] == other.name
    cut = events.index(interrupted[0])
    for track in ("applicant-video", "inspector-video"):
        before = [e["data"]["seq"] for e in events[:cut] if e["type"] == "media.segment" and e["data"]["track"] == track]
        after = [e["data"]["seq"] for e in events[cut:] if e["type"] == "media.segment" and e["data"]["track"] == track]
        # segments the first node stored whose events it had not shipped when it died
        recovered = [int(e["data"]["key"].split("/")[2].split(".")[0]) for e in events
                     if e["type"] == "evidence.recovered" and e["data"]["key"].startswith(f"media/{track}/")]
        assert len(before) >= 1 and len(after) >= 1, (track, before, after)
        # numbering continues on the other node, past any recovered segment (none overwritten)
        assert sorted(before + recovered + after) == list(range(1, len(before + recovered + after) + 1)), (track, before, recovered, after)
    assert types.index("session.live") < cut < len(types) - types[::-1].index("session.live") - 1
    assert "session.ended" in types
    invited = [e["data"] for e in events[:cut] if e["type"] == "observer.invited"]
    assert len(invited) == 2, invited  # the second one's 201 came just before the kill

    # an auditor's verification, from the store alone (the killed node's data dir is not used)
    verify = subprocess.run(
        [sys.executable, "-m", "takan", "verify", "--data-dir", str(other.data_dir), created["id"]],
        cwd=ROOT, env=other.env, capture_output=True, text=True, timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr + other.tail()


async def test_a_killed_node_s_pending_webhook_is_sent_by_the_other(tmp_path, redis_server, moto_server) -> None:
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    port = free_port()
    async with deployment(tmp_path, redis_server, moto_server) as (_, nodes), aiohttp.ClientSession() as http:
        first, second = nodes
        headers = {"Authorization": f"Bearer {API_KEY}"}
        body = inspection_body(case_no="DZ-2026-000777", callback_url=f"http://127.0.0.1:{port}/hooks")
        async with http.post(first.url + "/api/v1/inspections", json=body, headers=headers) as r:
            created = await r.json()
            assert r.status == 201, created
        async with http.post(f"{first.url}/api/v1/inspections/{created['id']}/cancel", json={"reason": "申请人撤回"},
                             headers=headers) as r:
            assert r.status == 200, await r.text()
        # the approval core is down: the first node's attempt fails and it waits to retry
        deadline = time.monotonic() + 30
        while True:
            async with http.get(f"{first.url}/api/v1/webhooks", params={"state": "pending"}, headers=headers) as r:
                pending = (await r.json())["items"]
            if pending and pending[0]["attempts"]:
                break
            assert time.monotonic() < deadline, pending
            await asyncio.sleep(0.5)
        assert pending[0]["node"] == first.name
        first.kill()
        app = web.Application()
        app.router.add_post("/hooks", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            killed, deadline = time.monotonic(), time.monotonic() + 60
            while not received:
                assert time.monotonic() < deadline, "the other node never sent the killed node's webhook"
                await asyncio.sleep(0.5)
            print(f"\nwebhook failover: sent by {second.name} {time.monotonic() - killed:.1f} s after the kill")
            assert received[0]["event"] == "inspection.cancelled" and received[0]["inspection"]["id"] == created["id"]
            async with http.get(f"{second.url}/api/v1/webhooks/{pending[0]['delivery_id']}", headers=headers) as r:
                sent = await r.json()
            assert sent["state"] == "delivered" and sent["node"] == second.name, sent
        finally:
            await runner.cleanup()
