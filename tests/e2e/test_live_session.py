"""Two real Chromium pages in a live inspection through Takan's relay."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from testkit.browser import STATS, artifact, chromium, chromium_available, wait_decoding
from testkit.server import create_inspection, running_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="Debian chromium is not installed (scripts/install.sh installs it)"),
]


async def status_of(server, http, inspection_id: str) -> str:
    async with http.get(f"{server.base_url}/api/v1/inspections/{inspection_id}", headers=server.headers()) as r:
        return (await r.json())["status"]


async def test_inspector_and_applicant_in_real_browsers(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with chromium() as browser:
            inspector_ctx = await browser.new_context(viewport={"width": 1366, "height": 768})
            applicant_ctx = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            inspector = await inspector_ctx.new_page()
            applicant = await applicant_ctx.new_page()
            await inspector.goto(created["inspector_url"])
            await applicant.goto(created["applicant_url"])

            # each page receives and decodes the other's video
            await wait_decoding(inspector, 20)
            await wait_decoding(applicant, 20)
            assert await status_of(server, http, created["id"]) == "live"
            stats = await inspector.evaluate(STATS)
            assert stats["audioPacketsReceived"] > 0, stats
            # Chromium reports the arrival of what the server forwards it (transport-cc on
            # the subscriber's leg), and the server reads its link from that feedback
            room = server.services.sessions.rooms.find(created["id"])
            assert room is not None
            for watcher in room.participants.values():
                assert watcher.peer is not None and watcher.peer.queue_estimator is not None, watcher.role
                estimator = watcher.peer.queue_estimator
                deadline = asyncio.get_running_loop().time() + 10
                while estimator.feedbacks < 20 and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.2)
                assert estimator.feedbacks >= 20 and estimator.unknown == 0, (watcher.role, estimator.feedbacks, estimator.unknown)
                video = watcher.peer.forwarded_tracks["video"]
                assert video._cap.delay_based and video._cap.queue_s is not None and video._cap.queue_s < 0.5
            await inspector.screenshot(path=str(artifact("e2e-console.png")))
            await applicant.screenshot(path=str(artifact("e2e-join.png")))

            # the applicant's page reloads; the session recovers on both sides
            before = (await inspector.evaluate(STATS))["videoFramesDecoded"]
            await applicant.reload()
            await wait_decoding(applicant, 20)
            await wait_decoding(inspector, before + 40)
            assert await status_of(server, http, created["id"]) == "live"

            # the inspector ends the inspection
            await inspector.click("#btn-end")
            await inspector.click("#end-confirm")
            await applicant.wait_for_function("() => window.takan.state.status === 'ended'", timeout=10_000)
            assert await status_of(server, http, created["id"]) in ("ended", "judged")
            await applicant.screenshot(path=str(artifact("e2e-join-ended.png")))


async def test_pages_explain_bad_links(tmp_path) -> None:
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(server.base_url + "/join#not-a-token")
            overlay = page.locator("#overlay")
            await overlay.wait_for(state="visible", timeout=10_000)
            text = await overlay.inner_text()
            assert "链接" in text, text
            await page.screenshot(path=str(artifact("e2e-join-bad-link.png")))
            # a cancelled inspection says so
            async with http.post(f"{server.base_url}/api/v1/inspections/{created['id']}/cancel", json={"reason": "x"}, headers=server.headers()) as r:
                assert r.status == 200
            await page.goto(created["applicant_url"])
            await page.reload()
            await overlay.wait_for(state="visible", timeout=10_000)
            assert "取消" in await overlay.inner_text()
