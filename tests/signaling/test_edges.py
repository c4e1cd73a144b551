"""The Socket.IO edges (issue 9): caps, hostile frames, and a carrier's NAT reconnecting."""

from __future__ import annotations

import asyncio
import base64
import io
import time

import aiohttp
from PIL import Image

from testkit.server import create_inspection, running_server
from testkit.sockets import Participant, raw_socket, joined_pair


def png(size: tuple[int, int] = (300, 120)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (255, 255, 255)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def signature(image: str) -> dict:
    return {"strokes": [[{"x": 1, "y": 1, "t": 0}, {"x": 9, "y": 9, "t": 5}]], "png": image, "width": 300, "height": 120}


async def test_signatures_are_capped_and_decoded(tmp_path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with joined_pair(server.base_url, created) as (inspector, applicant):
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
        async with raw_socket(http, server.base_url, created["applicant_url"]) as ws:
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


async def test_hostile_payloads_get_clear_refusals_and_leave_no_bad_evidence(tmp_path) -> None:
    """From an outside fuzzing audit: lifecycle event names, lone surrogates, binary
    attachments, control characters, NaN in signature strokes and loose booleans."""
    import json

    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with raw_socket(http, server.base_url, created["inspector_url"]) as ws:
            acks: dict[int, object] = {}

            async def call(n: int, frame: str, *binary: bytes) -> dict:
                await ws.send_str(frame)
                for part in binary:
                    await ws.send_bytes(part)
                while n not in acks:
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    if msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("43"):
                        ack_id, _, body = msg.data[2:].partition("[")
                        acks[int(ack_id)] = json.loads("[" + body)[0]
                    elif msg.data == "2":
                        await ws.send_str("3")
                return acks[n]  # type: ignore[return-value]

            assert (await call(1, '421["join",{}]'))["ok"]
            # a client event named like the server's own lifecycle handlers: refused, nothing run
            for n, name in ((2, "disconnect"), (3, "connect")):
                ack = await call(n, f'42{n}["{name}",{{"token":"x"}}]')
                assert ack["error"]["code"] == "bad_request" and "not an event a client may send" in ack["error"]["message"], ack
            # half a surrogate pair, anywhere: bad_request, not internal
            for n, frame in ((4, '424["chat",{"text":"x\\ud83d"}]'), (5, '425["join",{"device":"a\\ud800"}]')):
                ack = await call(n, frame)
                assert ack["error"]["code"] == "bad_request" and "not valid Unicode" in ack["error"]["message"], ack
            # a binary attachment where text belongs
            ack = await call(6, '451-6["note",{"text":{"_placeholder":true,"num":0}}]', b"\x00\x01")
            assert ack["error"]["code"] == "bad_request" and "binary" in ack["error"]["message"], ack
            # control and bidi characters in text that goes into the evidence
            for n, text in ((7, "a\\u202eevil"), (8, "a\\u0000b"), (9, "a\\u2028b")):
                ack = await call(n, '42%d["note",{"text":"%s"}]' % (n, text))
                assert ack["error"]["code"] == "bad_request" and "control character" in ack["error"]["message"], ack
            assert (await call(10, '4210["note",{"text":"line one\\nline two\\tand a tab"}]'))["ok"]
            # NaN in a signature's strokes, and a nonsense size
            stroke = '"strokes":[[{"x":NaN,"y":1,"t":0}]]'
            ack = await call(11, '4211["signature",{%s,"png":"%s","width":300,"height":120}]' % (stroke, png()))
            assert ack["error"]["code"] == "bad_request" and "finite" in ack["error"]["message"], ack
            ack = await call(12, '4212["signature",{"strokes":[[{"x":1,"y":1,"t":0}]],"png":"%s","width":-5,"height":1e30}]' % png())
            assert ack["error"]["code"] == "bad_request" and "width" in ack["error"]["message"], ack
            ack = await call(13, '4213["join",{"takeover":"no"}]')
            assert ack["error"]["code"] == "bad_request" and "takeover" in ack["error"]["message"], ack
            assert (await call(14, '4214["ping",{}]'))["ok"]  # still connected, still itself
        events = await server.services.journal.events(created["id"])
        types = [e["type"] for e in events]
        assert "participant.away" not in types and "signature.signed" not in types, types
        assert [e["data"]["text"] for e in events if e["type"] == "note"] == ["line one\nline two\tand a tab"]
