"""Camera requests from afar: on a device without torch or zoom the phone says so plainly."""

from __future__ import annotations

import aiohttp

from testkit.browser import artifact
from testkit.media import wait_for
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant
from tests.web_client.test_pages import JOINED, browser, browser_test, open_page, until


@browser_test
async def test_torch_and_zoom_requests_get_an_answer_without_support(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            phone = await open_page(b, created["applicant_url"], mobile=True)
            await phone.wait_for_timeout(1000)
            await until(phone, JOINED)
            await until(phone, "document.getElementById('local-video').srcObject?.getVideoTracks().length > 0")
            inspector = Participant(server.base_url, created["inspector_url"])
            assert await inspector.connect() and (await inspector.call("join"))["ok"]
            for request in ({"action": "torch_on"}, {"action": "zoom", "zoom": 2}):
                ack = await inspector.call("camera", request)
                assert ack["ok"], ack
                rid = ack["request_id"]
                assert await wait_for(lambda: any(e == "camera_result" and d["request_id"] == rid for e, d in inspector.events), 15)
                answer = next(d for e, d in inspector.events if e == "camera_result" and d["request_id"] == rid)
                # Chromium's fake camera has neither torch nor zoom
                assert answer["ok"] is False and answer["reason"] == "unsupported" and answer["detail"], answer
            assert not phone.js_errors, phone.js_errors
            await inspector.close()


@browser_test
async def test_the_console_asks_for_torch_and_zoom_and_shows_the_phone_cannot(tmp_path) -> None:
    """The console's buttons on a phone whose browser offers neither (Chromium's fake
    camera): each answer is shown plainly on the console, and the state stays as it was."""
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            phone = await open_page(b, created["applicant_url"], mobile=True)
            console = await open_page(b, created["inspector_url"])
            await until(phone, JOINED)
            await until(console, JOINED)
            await until(phone, "document.getElementById('local-video').srcObject?.getVideoTracks().length > 0")
            status = console.locator("#camera-status")

            await console.click("#btn-torch")
            await until(console, "document.getElementById('camera-status').dataset.reason === 'unsupported'", timeout_s=15)
            assert await status.get_attribute("data-action") == "torch_on"
            assert "不支持" in await status.inner_text() and "补光灯" in await status.inner_text()
            assert await console.get_attribute("#btn-torch", "aria-pressed") == "false"  # still off
            await console.screenshot(path=str(artifact("web-console-camera-unsupported.png")))

            await console.click("#btn-zoom-in")
            await until(console, "document.getElementById('camera-status').dataset.action === 'zoom'"
                                 " && document.getElementById('camera-status').dataset.reason === 'unsupported'", timeout_s=15)
            assert "变焦" in await status.inner_text()
            assert await console.inner_text("#zoom-level") == "1×"  # the phone did not zoom
            answers = [p for n, p in await console.evaluate("() => window.takan.events.map(e => [e.name, e.payload])") if n == "camera_result"]
            assert [(a["action"], a["ok"], a["reason"]) for a in answers] == [("torch_on", False, "unsupported"), ("zoom", False, "unsupported")]

            # a full-resolution photo: Chromium has ImageCapture, so this one is done
            await console.click("#btn-photo")
            await until(console, "document.getElementById('camera-status').dataset.action === 'photo'"
                                 " && document.getElementById('camera-status').dataset.tone !== 'busy'", timeout_s=20)
            assert await status.get_attribute("data-tone") == "ok", await status.inner_text()
            assert "高清照片" in await status.inner_text()
            await until(console, "window.takan.events.some(e => e.name === 'captured' && e.payload.kind === 'photo')", timeout_s=10)
            assert not phone.js_errors and not console.js_errors, (phone.js_errors, console.js_errors)
