"""The approval core's view: inspections over REST, signed webhooks on a local receiver.

Plays the other team's system against a real Takan: a session runs through the server,
the verdict arrives as an HMAC-signed webhook, the receiver goes away and comes back,
Takan restarts mid-backoff, and every delivery id is still delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import aiohttp
from aiohttp import web

from testkit.media import encode_vp8, wait_for
from testkit.server import WEBHOOK_SECRET, create_inspection, free_port, running_server
from testkit.sockets import Participant


class Receiver:
    """The approval core's webhook endpoint on loopback; can be stopped and restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.deliveries: list[dict] = []
        self.bad_signatures = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/takan"

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        header = request.headers.get("Takan-Signature", "")
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        expected = hmac.new(WEBHOOK_SECRET.encode(), f"{parts.get('t')}.".encode() + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.deliveries.append(json.loads(raw))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/takan", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def unique(self, event: str) -> dict[str, dict]:
        """Deliveries of ``event`` deduplicated by delivery_id, as the approval core does."""
        return {d["delivery_id"]: d for d in self.deliveries if d["event"] == event}


async def test_approval_core_contract(tmp_path) -> None:
    frames = encode_vp8(320, 240, frames=20)
    receiver = Receiver()
    await receiver.start()
    data = tmp_path / "data"
    try:
        async with aiohttp.ClientSession() as http:
            async with running_server(data) as server:
                # 1. a session runs; the verdict arrives signed
                created = await create_inspection(server, http, callback_url=receiver.url)
                inspector = Participant(server.base_url, created["inspector_url"])
                applicant = Participant(server.base_url, created["applicant_url"])
                try:
                    assert await inspector.connect() and await applicant.connect()
                    await inspector.join_and_publish(frames)
                    await applicant.join_and_publish(frames)
                    assert await wait_for(lambda: inspector.peer.video_sink.frames > 10, 20)
                    assert (await inspector.call("capture", {"checkpoint": "storefront"}))["ok"]
                    assert (await inspector.call("end"))["ok"]
                finally:
                    await inspector.close()
                    await applicant.close()
                assert await wait_for(lambda: receiver.unique("inspection.judged"), 20)
                (judged,) = receiver.unique("inspection.judged").values()
                assert judged["inspection"]["id"] == created["id"] and judged["inspection"]["status"] == "judged"
                assert judged["inspection"]["verdict"]["outcome"] in ("pass", "fail", "manual_review")
                async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}/manifest", headers=server.headers()) as r:
                    assert hashlib.sha256(await r.read()).hexdigest() == judged["inspection"]["manifest_sha256"]
                async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
                    participants = (await r.json())["participants"]
                assert sorted(p["role"] for p in participants) == ["applicant", "inspector"], participants
                assert all(p["joined_at"].endswith("Z") or "+" in p["joined_at"] for p in participants)
                # the approval core's person reviews it (no signature/signing key needed here)
                decided = "fail" if judged["inspection"]["verdict"]["outcome"] == "pass" else "pass"  # overturn the rules
                async with http.post(f"{server.base_url}/api/v1/inspections/{created['id']}/review",
                                     json={"outcome": decided, "comment": "现场核查无误"}, headers=server.headers()) as r:
                    assert r.status == 200, await r.text()
                assert await wait_for(lambda: receiver.unique("inspection.reviewed"), 20)
                (reviewed,) = receiver.unique("inspection.reviewed").values()
                # the webhook carries the person's decision, the rules' beside it
                assert reviewed["inspection"]["verdict"]["outcome"] == decided, reviewed
                assert reviewed["inspection"]["verdict"]["rules_outcome"] == judged["inspection"]["verdict"]["outcome"]
                assert reviewed["inspection"]["verdict"]["review"]["outcome"] == decided

                # 2. the receiver goes away; a cancellation is queued and retried
                await receiver.stop()
                second = await create_inspection(server, http, case_no="DZ-2026-000124", callback_url=receiver.url)
                async with http.post(f"{server.base_url}/api/v1/inspections/{second['id']}/cancel",
                                     json={"reason": "申请人选择现场踏勘"}, headers=server.headers()) as r:
                    assert r.status == 200
                assert await wait_for(lambda: any(d.attempts for d in server.services.outbox.pending()), 15)
                async with http.get(f"{server.base_url}/api/v1/webhooks?state=pending", headers=server.headers()) as r:
                    pending = await r.json()
                assert pending["stats"]["pending"] >= 1 and pending["items"][0]["attempts"], pending
            # 3. Takan restarts mid-backoff, then the receiver comes back
            async with running_server(data) as server:
                await asyncio.sleep(1)
                await receiver.start()
                assert await wait_for(lambda: receiver.unique("inspection.cancelled"), 60, 0.5)
                (cancelled,) = receiver.unique("inspection.cancelled").values()
                assert cancelled["inspection"]["id"] == second["id"] and cancelled["inspection"]["status"] == "cancelled"
                assert await wait_for(lambda: not server.services.outbox.pending(), 30, 0.5)
        # every delivery id arrived; duplicates on the wire (at least once) collapse by id
        ids = [d["delivery_id"] for d in receiver.deliveries]
        assert len(set(ids)) == 3, ids
        assert receiver.bad_signatures == 0
    finally:
        await receiver.stop()
