"""The inspector's drawing appears over the applicant's camera view at once, and clears."""

from __future__ import annotations

import aiohttp

from testkit.browser import artifact
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant
from tests.web_client.test_pages import JOINED, browser, browser_test, open_page, until


@browser_test
async def test_a_drawing_appears_on_the_applicant_page(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            phone = await open_page(b, created["applicant_url"], mobile=True)
            await phone.wait_for_timeout(1000)
            await until(phone, JOINED)
            inspector = Participant(server.base_url, created["inspector_url"])
            assert await inspector.connect() and (await inspector.call("join"))["ok"]
            ack = await inspector.call("draw", {"shapes": [
                {"kind": "arrow", "points": [[0.2, 0.2], [0.5, 0.5]]},
                {"kind": "circle", "points": [[0.5, 0.5], [0.6, 0.5]]},
                {"kind": "text", "points": [[0.1, 0.8]], "text": "看这里"},
            ]})
            assert ack["ok"], ack
            await until(phone, "document.getElementById('drawing-overlay')?.dataset.count === '3'", timeout_s=10)
            assert await phone.locator("#drawing-overlay text").text_content() == "看这里"
            assert await phone.locator("#drawing-overlay [data-kind=circle]").count() == 1
            await phone.screenshot(path=str(artifact("web-join-drawing.png")))
            assert (await inspector.call("draw_clear"))["ok"]
            await until(phone, "document.getElementById('drawing-overlay').dataset.count === '0'", timeout_s=10)
            assert not phone.js_errors, phone.js_errors
            await inspector.close()
