"""Camera requests from afar: on a device without torch or zoom the phone says so plainly."""

from __future__ import annotations

import aiohttp

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
