"""The Socket.IO edges (issue 9): caps, hostile frames, and a carrier's NAT reconnecting."""

from __future__ import annotations

import asyncio
import base64
import io
import time

import aiohttp
from PIL import Image

from testkit.server import create_inspection, running_server
from testkit.sockets import Participant


def png(size: tuple[int, int] = (300, 120)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (255, 255, 255)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def signature(image: str) -> dict:
    return {"strokes": [[{"x": 1, "y": 1, "t": 0}, {"x": 9, "y": 9, "t": 5}]], "png": image, "width": 300, "height": 120}


async def test_signatures_are_capped_and_decoded(tmp_path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        inspector = Participant(server.base_url, created["inspector_url"])
        applicant = Participant(server.base_url, created["applicant_url"])
        try:
            assert await inspector.connect() and await applicant.connect()
            assert (await inspector.call("join"))["ok"] and (await applicant.call("join"))["ok"]
            # PNG magic followed by garbage: refused by decoding, not by its first bytes
            fake = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 5000).decode()
            ack = await applicant.call("signature", signature(fake))
            assert ack["ok"] is False and ack["error"]["code"] == "unsupported_media_type", ack
            # oversized: refused
            big = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\1" * (600 * 1024)).decode()
            ack = await applicant.call("signature", signature(big))
            assert ack["ok"] is False and ack["error"]["code"] == "too_large", ack
            # over-count: five per participant, then a clear refusal
            results = [await applicant.call("signature", signature(png())) for _ in range(7)]
            assert [r["ok"] for r in results] == [True] * 5 + [False] * 2, results
            assert results[-1]["error"]["code"] == "quota_exceeded" and "5" in results[-1]["error"]["message"]
            # the inspector's own quota is untouched
            assert (await inspector.call("signature", signature(png())))["ok"]
            events = await server.services.journal.events(created["id"])
            assert sum(e["type"] == "signature.signed" for e in events) == 6
        finally:
            await inspector.close()
            await applicant.close()


async def test_hostile_frames_are_refused_and_counted(tmp_path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        inspector = Participant(server.base_url, created["inspector_url"])
        try:
            assert await inspector.connect() and (await inspector.call("join"))["ok"]
            nested: object = "x"
            for _ in range(200):  # deeper than 32, shallow enough for the client to encode
                nested = [nested]
            ack = await inspector.call("note", {"text": "a", "checkpoint": nested})
            assert ack["ok"] is False and ack["error"]["code"] in ("bad_request", "too_large"), ack
        finally:
            await inspector.close()
        # raw frames over the websocket: undecodable ones cost the sender, and it is closed
        ws_url = server.base_url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        token = created["applicant_url"].split("#", 1)[1]
        async with http.ws_connect(ws_url) as ws:
            await ws.receive()  # engine.io open
            await ws.send_str('40{"token":"%s"}' % token)
            await ws.receive()  # socket.io connect
            for _ in range(40):
                if ws.closed:
                    break
                await ws.send_str("42" + "[" * 2000 + "]" * 2000)
                await asyncio.sleep(0.01)
            # the server closes the connection: an engine.io close packet ("1"), then the socket
            deadline = time.monotonic() + 5
            closed = ws.closed
            while not closed and time.monotonic() < deadline:
                msg = await asyncio.wait_for(ws.receive(), 5)
                closed = msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) or msg.data == "1"
            assert closed, "a connection sending undecodable frames was not closed"
        async with http.get(server.base_url + "/healthz") as r:
            assert r.status == 200


async def test_a_carriers_nat_reconnecting_at_once(tmp_path) -> None:
    """200 participants behind one address reconnect within a minute (after a restart)."""
    async with running_server(tmp_path / "d", api_rate_per_minute="100000") as server, aiohttp.ClientSession() as http:
        links = []
        for n in range(100):
            created = await create_inspection(server, http, case_no=f"DZ-2026-1{n:05d}")
            links += [created["inspector_url"], created["applicant_url"]]
        participants = [Participant(server.base_url, link) for link in links]
        started = time.monotonic()
        try:
            connected = await asyncio.gather(*(p.connect() for p in participants))
            refused = [p.refused for p, ok in zip(participants, connected) if not ok]
            assert all(connected), f"{len(refused)} refused, e.g. {refused[:3]}"
            assert time.monotonic() - started < 60
        finally:
            await asyncio.gather(*(p.close() for p in participants))
