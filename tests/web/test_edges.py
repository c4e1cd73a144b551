"""The edges, probed as a hostile or merely unlucky client would (issue 9).

Bodies written in pieces, bodies over the cap without a declared length, nested JSON on
every JSON route, slow and idle connections, and a big CSV used whole or not at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import aiohttp

from testkit.server import API_KEY, create_inspection, inspection_body, running_server
from web.routes import LINK, PUBLIC, ROUTE_TABLE


async def raw_request(port: int, pieces: list[bytes], pause_s: float) -> tuple[int, bytes]:
    """Send a request in ``pieces`` with pauses; return (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(pause_s)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
        )
        body = await reader.readexactly(length)
        return status, body
    finally:
        writer.close()


def post_head(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    ).encode()


async def test_a_body_written_in_pieces_is_read_whole(tmp_path) -> None:
    async with running_server(tmp_path / "d") as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        for n, pause in enumerate((0.02, 0.1, 0.2)):
            body = json.dumps(inspection_body(case_no=f"DZ-2026-00070{n}"), ensure_ascii=False).encode()
            third = len(body) // 3
            pieces = [post_head("/api/v1/inspections", len(body)) + body[:third], body[third : 2 * third], body[2 * third :]]
            status, answer = await raw_request(port, pieces, pause)
            assert status == 201, answer


async def test_the_node_question_reads_the_whole_token(tmp_path) -> None:
    """POST /api/v1/session/node with its text/plain token in two pieces (a page on a slow
    link): the token is read whole, not cut where the first piece ended."""
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        token = created["applicant_url"].split("#", 1)[1].encode()
        port = int(server.base_url.rsplit(":", 1)[1])
        head = (f"POST /api/v1/session/node HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(token)}\r\n\r\n").encode()
        status, answer = await raw_request(port, [head + token[:10], token[10:]], 0.1)
        assert status == 200, answer
        assert json.loads(answer)["node_url"]
        async with http.post(server.base_url + "/api/v1/session/node", data=b"x" * 5000) as r:
            assert r.status == 413 and "link token" in (await r.json(content_type=None))["detail"]


async def test_a_chunked_body_over_the_cap_is_413(tmp_path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:

        async def chunks():
            for _ in range(50):
                yield b" " * (1024 * 1024)

        async with http.post(
            server.base_url + "/api/v1/inspections", data=chunks(),
            headers=server.headers(**{"Content-Type": "application/json", "Idempotency-Key": "big"}),
        ) as r:
            assert r.status == 413, await r.text()
            assert r.content_type == "application/problem+json"
        async with http.get(server.base_url + "/healthz") as r:
            assert r.status == 200


async def test_a_big_csv_is_used_whole(tmp_path) -> None:
    rows = "\n".join(f"C{1000 + n % 9000},restricted,条目{n}" for n in range(40_000))
    data = f"industry_code,category,entry\n{rows}\n".encode()
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        async with http.post(
            server.base_url + "/api/v1/warning-lists/industry_catalogue", data=data,
            headers=server.headers(**{"Content-Type": "text/csv", "X-Filename": "big.csv"}),
        ) as r:
            body = await r.json()
        if r.status == 201:
            assert body["rows"] == 40_000 and body["sha256"] == hashlib.sha256(data).hexdigest(), body
        else:
            assert r.status in (413, 422) and body["detail"], body  # a clear refusal, nothing in force


async def test_nested_json_is_400_on_every_json_route(tmp_path) -> None:
    nested = b"[" * 1000 + b"]" * 1000
    deep_object = ("{\"a\":" * 100 + "1" + "}" * 100).encode()
    async with running_server(tmp_path / "d", api_rate_per_minute="100000") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        table = server.runner.app[ROUTE_TABLE].policies
        posts = sorted(t for (m, t), policy in table.items() if m in ("POST", "PUT") and policy not in (PUBLIC, LINK))
        assert "/api/v1/inspections" in posts
        for template in posts:
            path = template.replace("{id}", created["id"]).replace("{user_id}", "nobody").replace("{kind}", "dishonest")
            for body in (nested, deep_object):
                async with http.post(
                    server.base_url + path, data=body, headers=server.headers(**{"Content-Type": "application/json"})
                ) as r:
                    text = await r.text()
                    assert r.status < 500, (template, r.status, text)
                    if "warning-lists" not in template:  # a CSV route: the body is not JSON to it
                        assert r.status in (400, 403, 404), (template, r.status, text)
        # the login route is public and takes JSON too
        async with http.post(server.base_url + "/api/v1/auth/login", data=nested,
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400, await r.text()


async def test_slow_and_idle_connections_are_closed(tmp_path) -> None:
    options = {"header_timeout_s": 1.0, "keepalive_timeout_s": 1.0}
    async with running_server(tmp_path / "d", runner_options=options) as server, aiohttp.ClientSession() as http:
        port = int(server.base_url.rsplit(":", 1)[1])
        conns = []
        for n in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if n % 2:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # a head that never ends
            conns.append((reader, writer))
        started = time.monotonic()
        async with http.get(server.base_url + "/healthz") as r:
            assert r.status == 200
        assert time.monotonic() - started < 1.0
        for reader, writer in conns:
            if writer.transport.get_extra_info("socket") is not None:
                writer.write(b"x")  # keep trickling
        closed = 0
        for reader, _ in conns:
            try:
                data = await asyncio.wait_for(reader.read(), 5)
                closed += data == b"" or data.startswith(b"HTTP/")
            except asyncio.TimeoutError:
                pass
        assert closed == len(conns), f"{len(conns) - closed} of {len(conns)} slow connections still open after 5 s"
        # a keep-alive connection that has been answered closes once idle
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 5) is not None  # rest of the body, then EOF
        for _, w in conns:
            w.close()
        writer.close()


async def test_an_interrupted_inspection_keeps_its_case(tmp_path) -> None:
    data = tmp_path / "d"
    async with running_server(data) as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http, case_no="DZ-2026-000777")
        await server.services.book.transition(created["id"], "live")
    async with running_server(data) as server, aiohttp.ClientSession() as http:
        await server.services.sessions.recovery.idle()
        assert server.services.book.get(created["id"]).status == "interrupted"
        async with http.post(
            server.base_url + "/api/v1/inspections", json=inspection_body(case_no="DZ-2026-000777"), headers=server.headers()
        ) as r:
            assert r.status == 409, await r.text()
