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


@browser_test
async def test_the_inspector_freezes_draws_and_clears_on_the_console(tmp_path) -> None:
    """The console's own tool, end to end: freeze the applicant's video, drag an arrow and a
    circle, place a text (mouse), and the phone shows them; one tap clears both sides."""
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            phone = await open_page(b, created["applicant_url"], mobile=True)
            console = await open_page(b, created["inspector_url"])
            await until(phone, JOINED)
            await until(console, JOINED)
            await until(console, "document.getElementById('remote-video').videoWidth > 0 && !document.getElementById('btn-freeze').disabled")
            await console.click("#btn-freeze")
            assert await console.is_visible("#frozen-frame") and await console.is_visible("#draw-bar")
            assert await console.evaluate("() => document.getElementById('frozen-frame').width") > 0
            box = await console.locator("#draw-surface").bounding_box()
            assert box and box["width"] > 100

            def at(x: float, y: float) -> tuple[float, float]:
                return box["x"] + x * box["width"], box["y"] + y * box["height"]

            async def drag(start: tuple[float, float], end: tuple[float, float]) -> None:
                await console.mouse.move(*at(*start))
                await console.mouse.down()
                await console.mouse.move(*at(*end), steps=6)
                await console.mouse.up()

            await drag((0.2, 0.7), (0.45, 0.4))  # an arrow (the default tool)
            await until(phone, "document.getElementById('drawing-overlay')?.dataset.count === '1'", timeout_s=10)
            await console.click("#draw-bar [data-tool=circle]")
            await drag((0.6, 0.35), (0.7, 0.35))
            await until(phone, "document.getElementById('drawing-overlay')?.dataset.count === '2'", timeout_s=10)
            await console.click("#draw-bar [data-tool=text]")
            await console.fill("#draw-text", "看这里")
            await console.mouse.click(*at(0.55, 0.2))
            await until(phone, "document.getElementById('drawing-overlay')?.dataset.count === '3'", timeout_s=10)
            assert await phone.locator("#drawing-overlay text").text_content() == "看这里"
            assert await phone.locator("#drawing-overlay [data-kind=circle]").count() == 1

            # what the phone was sent is what was drawn, in fractions of the picture
            [event] = [p for n, p in await console.evaluate("() => window.takan.events.map(e => [e.name, e.payload])")
                       if n == "drawing" and len(p["shapes"]) == 3][-1:]
            arrow, circle, text = event["shapes"]
            assert arrow["kind"] == "arrow" and abs(arrow["points"][0][0] - 0.2) < 0.02 and abs(arrow["points"][1][1] - 0.4) < 0.02
            assert circle["kind"] == "circle" and abs(circle["points"][1][0] - 0.7) < 0.02
            assert text == {"kind": "text", "points": text["points"], "text": "看这里", "color": "#ff3b30"}
            await console.screenshot(path=str(artifact("web-console-drawing.png")))
            await phone.screenshot(path=str(artifact("web-join-drawing-from-console.png")))

            # a finger works as the mouse does (pointer events; the layer takes no scrolling)
            await console.click("#draw-bar [data-tool=arrow]")
            cdp = await console.context.new_cdp_session(console)
            await cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
            start, end = at(0.8, 0.8), at(0.9, 0.6)
            await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]})
            for i in range(1, 6):
                x, y = start[0] + (end[0] - start[0]) * i / 5, start[1] + (end[1] - start[1]) * i / 5
                await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
            await until(phone, "document.getElementById('drawing-overlay')?.dataset.count === '4'", timeout_s=10)
            await console.click("#btn-draw-undo")  # takes the finger's arrow back
            await until(phone, "document.getElementById('drawing-overlay')?.dataset.count === '3'", timeout_s=10)

            # back to live video: the marks stay until cleared, on both sides
            await console.click("#btn-freeze")
            assert await console.is_hidden("#frozen-frame") and await console.is_hidden("#draw-bar")
            assert await console.evaluate("() => document.getElementById('drawing-overlay').dataset.count") == "3"
            await phone.reload()  # a reloaded phone gets the marks shown now with its join
            await until(phone, "window.takan.state.joined && document.getElementById('drawing-overlay')?.dataset.count === '3'")
            await console.click("#btn-draw-clear")
            await until(phone, "document.getElementById('drawing-overlay').dataset.count === '0'", timeout_s=10)
            await until(console, "document.getElementById('drawing-overlay').dataset.count === '0'", timeout_s=10)
            assert await console.is_hidden("#btn-draw-clear")
            assert not phone.js_errors and not console.js_errors, (phone.js_errors, console.js_errors)
