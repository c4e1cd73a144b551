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


PROBLEM = "application/problem+json"


async def problem_of(response: aiohttp.ClientResponse, status: int) -> dict:
    """The problem body of ``response``, asserting its exact status and media type."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == PROBLEM, text
    body = json.loads(text)
    assert body["status"] == status and body["detail"], body
    return body


def with_lone_surrogate(path: tuple[str | int, ...], body: dict) -> bytes:
    """``body`` as JSON whose string at ``path`` ends with an unpaired ``\\ud83d`` escape."""
    marker = "\u2603SURROGATE\u2603"
    target: dict | list = body
    for step in path[:-1]:
        target = target[step]  # type: ignore[index]
    target[path[-1]] = str(target[path[-1]]) + marker  # type: ignore[index]
    text = json.dumps(body, ensure_ascii=False).replace(marker, "\\ud83d")
    return text.encode()


async def test_a_lone_surrogate_is_refused_before_anything_changes(tmp_path) -> None:
    """An unpaired surrogate escape in any string, or in a key, is a 400 problem naming where
    it is; cancel and review refuse it before the record changes (it used to change in
    memory but not in the store)."""
    headers = {"Content-Type": "application/json"}
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        url = server.base_url + "/api/v1/inspections"
        for path in (("item_name",), ("applicant", "name"), ("site", "address"), ("checkpoints", 0, "title"),
                     ("callback_url",)):
            data = with_lone_surrogate(path, inspection_body(case_no="DZ-2026-000901"))
            async with http.post(url, data=data, headers=server.headers(**headers)) as r:
                body = await problem_of(r, 400)
            assert "not valid Unicode" in body["detail"], body
        async with http.post(url, data=b'{"x\\ud83d": 1}', headers=server.headers(**headers)) as r:
            body = await problem_of(r, 400)
        assert "x\\ud83d" in body["detail"], body
        for action, field, data in (("cancel", "reason", b'{"reason": "x\\ud83d"}'),
                                    ("review", "comment", b'{"outcome": "pass", "comment": "x\\ud83d"}')):
            async with http.post(f"{url}/{created['id']}/{action}", data=data, headers=server.headers(**headers)) as r:
                body = await problem_of(r, 400)
            assert f"{field} holds an unpaired" in body["detail"], body
        assert server.services.book.get(created["id"]).status == "scheduled"


def test_the_problem_renderer_sends_text_that_is_not_valid_unicode() -> None:
    from web.problems import problem_response

    response = problem_response(422, "validation_failed", "bad \ud83d", errors=[{"field": "x\udc00", "message": "m"}])
    assert response.status == 422 and response.content_type == PROBLEM
    assert response.body is not None
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    assert body["detail"] == "bad \ud83d" and body["errors"][0]["field"] == "x\udc00"


async def test_numbers_times_credentials_and_encodings_out_of_range_are_problems(tmp_path) -> None:
    """Each of these was a 500: a 5,000-digit integer, a time whose link expiry overflows,
    a Bearer key that is not UTF-8, a "gzip" body that is not gzip."""
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        port = int(server.base_url.rsplit(":", 1)[1])
        url = server.base_url + "/api/v1/inspections"
        body = json.dumps(inspection_body()).replace('"radius_m": 300', '"radius_m": ' + "7" * 5000).encode()
        async with http.post(url, data=body, headers=server.headers(**{"Content-Type": "application/json"})) as r:
            assert "integer too long" in (await problem_of(r, 400))["detail"]
        async with http.post(url, json=inspection_body(scheduled_at="9999-12-31T23:59:59Z"), headers=server.headers()) as r:
            assert [e["field"] for e in (await problem_of(r, 422))["errors"]] == ["scheduled_at"]
        for path in ("/api/v1/inspections", "/healthz"):
            head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer caf".encode() + b"\xe9\r\n\r\n"
            status, answer = await raw_request(port, [head], 0)
            assert status == 401 and "not UTF-8" in json.loads(answer)["detail"], answer
        async with http.get(url, headers={"Authorization": "Bearer café"}) as r:
            await problem_of(r, 401)
        not_gzip = b'{"case_no": "x"}'
        async with http.post(url, data=not_gzip, headers=server.headers(**{
            "Content-Type": "application/json", "Content-Encoding": "gzip"})) as r:
            assert "could not be decoded" in (await problem_of(r, 400))["detail"]


async def test_every_json_route_checks_the_type_and_refuses_an_empty_body(tmp_path) -> None:
    """Review took text/plain and answered an empty body with 422; like the others now:
    415 for a body that is not JSON by its type, 400 for an empty one."""
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        base = f"{server.base_url}/api/v1/inspections"
        for path in ("", "/{id}/review", "/{id}/cancel", "/{id}/assign", "/{id}/reschedule", "/{id}/observers"):
            url = base + path.replace("{id}", created["id"])
            async with http.post(url, data=b'{"outcome": "pass"}', headers=server.headers(**{"Content-Type": "text/plain"})) as r:
                await problem_of(r, 415)
            async with http.post(url, data=b"", headers=server.headers(**{"Content-Type": "application/json"})) as r:
                await problem_of(r, 400)


async def test_the_parser_s_refusals_and_a_stalled_body_are_problems(tmp_path, monkeypatch) -> None:
    """What aiohttp's parser refuses before any handler runs was text/plain; a body that
    stops arriving was a 400 (the README says 408)."""
    import web.bodies

    monkeypatch.setattr(web.bodies, "BODY_PAUSE_S", 0.5)
    async with running_server(tmp_path / "d") as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        for head in (
            "GET /api/v1/inspections HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + "a" * 9000 + "\r\n\r\n",
            "POST /api/v1/inspections HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
            post_head("/api/v1/inspections", 2, "Content-Encoding: br\r\n").decode() + "{}",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(head.encode())
                answer = await asyncio.wait_for(reader.read(), 5)
            finally:
                writer.close()
            status_line, _, rest = answer.partition(b"\r\n")
            headers, _, body = rest.partition(b"\r\n\r\n")
            assert status_line.split(b" ")[1] == b"400", answer
            assert b"content-type: application/problem+json" in headers.lower(), answer
            problem = json.loads(body)
            assert problem["status"] == 400 and problem["detail"].startswith("the request could not be read"), problem
        status, answer = await raw_request(port, [post_head("/api/v1/inspections", 100) + b'{"case_no"'], 1.0)
        assert status == 408, answer
        problem = json.loads(answer)
        assert problem["status"] == 408 and problem["type"].endswith("/request_timeout"), problem
