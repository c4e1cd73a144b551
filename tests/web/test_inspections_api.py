"""The REST contract against a real server over HTTP."""

from __future__ import annotations

import base64
import datetime
from urllib.parse import urlencode

import aiohttp
import pytest

from approval.inspections import FINISHED_KEPT, Inspection, parse_rfc3339
from storage.local import LocalObjectStore
from testkit.records import START, store_records
from testkit.server import create_inspection, inspection_body, running_server

PROBLEM = "application/problem+json"


@pytest.fixture
async def server(tmp_path):
    async with running_server(tmp_path / "data") as srv:
        yield srv


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def problem(response: aiohttp.ClientResponse, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body = await response.json(content_type=None)
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


async def test_healthz(server, http) -> None:
    async with http.get(server.base_url + "/healthz") as r:
        assert r.status == 200
        assert (await r.json())["status"] == "ok"


async def test_create_get_and_qr(server, http) -> None:
    created = await create_inspection(server, http)
    assert created["status"] == "scheduled" and created["case_no"] == "DZ-2026-000123"
    assert created["applicant_url"].startswith(server.base_url + "/join#")
    assert created["inspector_url"].startswith(server.base_url + "/console#")
    png = base64.b64decode(created["applicant_qr_png"].split(",", 1)[1])
    assert png.startswith(b"\x89PNG")
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
        record = await r.json()
    assert r.status == 200
    assert record["status"] == "scheduled" and record["checkpoints"][0]["captured"] is False
    assert record["verdict"] is None and record["duration_s"] is None
    # the seeded key holds the personal-data permission; a query-only key sees masked values
    assert record["applicant"]["id_number"] == "91350100M000100Y43"
    issued = await server.services.keys.issue("query-only", ("query",))
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers={"Authorization": f"Bearer {issued.token}"}) as r:
        masked = await r.json()
    assert masked["applicant"]["id_number"] != "91350100M000100Y43" and "*" in masked["applicant"]["contact_phone"]


async def test_template_supplies_checkpoints(server, http) -> None:
    body = inspection_body()
    del body["checkpoints"]
    async with http.post(server.base_url + "/api/v1/inspections", json=body, headers=server.headers()) as r:
        created = await r.json()
    assert r.status == 201
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
        record = await r.json()
    assert len(record["checkpoints"]) >= 5


@pytest.mark.parametrize(
    "headers,status",
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "Basic abc"}, 401)],
)
async def test_auth(server, http, headers, status) -> None:
    async with http.post(server.base_url + "/api/v1/inspections", json=inspection_body(), headers=headers) as r:
        await problem(r, status)
    async with http.get(server.base_url + "/api/v1/inspections/x", headers=headers) as r:
        await problem(r, status)


@pytest.mark.parametrize(
    "change,field",
    [
        ({"applicant": {**inspection_body()["applicant"], "id_number": "91371400MA3C1234XY"}}, "applicant.id_number"),
        ({"applicant": {**inspection_body()["applicant"], "kind": "natural_person", "id_type": "RESIDENT_ID", "id_number": "110105194912310021"}}, "applicant.id_number"),
        ({"applicant": {**inspection_body()["applicant"], "kind": "robot"}}, "applicant.kind"),
        ({"site": {"address": "x", "lat": 95, "lon": 1}}, "site.lat"),
        ({"case_no": ""}, "case_no"),
        ({"case_no": 12}, "case_no"),
        ({"callback_url": "ftp://x"}, "callback_url"),
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"checkpoints": [{"code": "a", "title": "A"}, {"code": "a", "title": "B"}]}, "checkpoints[1].code"),
        ({"surprise": 1}, "surprise"),
        ({"item_code": "food-business-license", "checkpoints": []}, "checkpoints"),
    ],
)
async def test_validation_errors(server, http, change, field) -> None:
    async with http.post(server.base_url + "/api/v1/inspections", json=inspection_body(**change), headers=server.headers()) as r:
        body = await problem(r, 422)
    assert field in [e["field"] for e in body["errors"]], body


async def test_missing_fields_listed_together(server, http) -> None:
    async with http.post(server.base_url + "/api/v1/inspections", json={}, headers=server.headers()) as r:
        body = await problem(r, 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"case_no", "item_code", "item_name", "applicant", "site"} <= fields


@pytest.mark.parametrize(
    "data,ctype,status",
    [
        (b"{not json", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"[]", "application/json", 422),
        (b"null", "application/json", 422),
        (b"case_no=1", "application/x-www-form-urlencoded", 415),
        (b"{}" + b" " * 300_000, "application/json", 413),
    ],
)
async def test_bad_bodies(server, http, data, ctype, status) -> None:
    async with http.post(
        server.base_url + "/api/v1/inspections", data=data, headers=server.headers(**{"Content-Type": ctype})
    ) as r:
        await problem(r, status)


async def test_second_open_inspection_for_case_is_409(server, http) -> None:
    first = await create_inspection(server, http)
    async with http.post(server.base_url + "/api/v1/inspections", json=inspection_body(), headers=server.headers()) as r:
        body = await problem(r, 409)
    assert first["id"] in body["detail"]
    # once cancelled, the case may be inspected again
    async with http.post(f"{server.base_url}/api/v1/inspections/{first['id']}/cancel", json={"reason": "申请人改约"}, headers=server.headers()) as r:
        assert r.status == 200 and (await r.json())["status"] == "cancelled"
    await create_inspection(server, http)


async def test_idempotency_key(server, http) -> None:
    headers = server.headers(**{"Idempotency-Key": "req-1"})
    url = server.base_url + "/api/v1/inspections"
    async with http.post(url, json=inspection_body(), headers=headers) as r:
        first = await r.json()
        assert r.status == 201
    async with http.post(url, json=inspection_body(), headers=headers) as r:
        again = await r.json()
        assert r.status == 201
    assert again["id"] == first["id"]
    async with http.post(url, json=inspection_body(case_no="OTHER-1"), headers=headers) as r:
        await problem(r, 422)


async def test_cancel_rules(server, http) -> None:
    created = await create_inspection(server, http)
    url = f"{server.base_url}/api/v1/inspections/{created['id']}/cancel"
    async with http.post(url, json={}, headers=server.headers()) as r:
        await problem(r, 422)
    async with http.post(url, json={"reason": "x", "extra": 1}, headers=server.headers()) as r:
        await problem(r, 422)
    async with http.post(url, json={"reason": "applicant asked"}, headers=server.headers()) as r:
        body = await r.json()
    assert body["status"] == "cancelled" and body["cancel_reason"] == "applicant asked"
    async with http.post(f"{server.base_url}/api/v1/inspections/nope/cancel", json={"reason": "x"}, headers=server.headers()) as r:
        await problem(r, 404)


async def test_list_filters_and_cursor(server, http) -> None:
    ids = [(await create_inspection(server, http, case_no=f"C-{i}"))["id"] for i in range(5)]
    seen = []
    url = server.base_url + "/api/v1/inspections?limit=2"
    while url:
        async with http.get(url, headers=server.headers()) as r:
            page = await r.json()
        seen += [item["id"] for item in page["items"]]
        url = page["next_cursor"] and f"{server.base_url}/api/v1/inspections?limit=2&cursor={page['next_cursor']}"
    assert seen == ids
    async with http.get(server.base_url + "/api/v1/inspections?case_no=C-3", headers=server.headers()) as r:
        assert [i["case_no"] for i in (await r.json())["items"]] == ["C-3"]
    for query in ("status=bogus", "limit=0", "cursor=zzz", "from=yesterday", "nope=1"):
        async with http.get(f"{server.base_url}/api/v1/inspections?{query}", headers=server.headers()) as r:
            await problem(r, 422)


def expected_listing(stored: list[Inspection], query: dict[str, str]) -> list[str]:
    """What the listing returns, by CONTRACT.md: every record that matches, oldest first."""
    records = [r for r in stored if r.case_no == query.get("case_no", r.case_no)]
    if "status" in query:
        records = [r for r in records if r.status in query["status"].split(",")]
    since = datetime.datetime.fromisoformat(query.get("from", "0001-01-01T00:00:00+00:00"))
    until = datetime.datetime.fromisoformat(query.get("to", "9999-01-01T00:00:00+00:00"))
    return [r.id for r in records if since <= (parse_rfc3339(r.created_at) or since) < until]


async def test_listing_over_more_records_than_the_book_keeps(tmp_path, http) -> None:
    """Filters, cursor pages and the end of the list over 600 stored records (most of which
    the book does not hold), as the listing of every record did."""
    store = LocalObjectStore(tmp_path / "d" / "objects")
    await store.start()
    stored = await store_records(store, 600)
    await store.close()
    minute = datetime.timedelta(minutes=1)
    queries = [
        {},
        {"limit": "200"},
        {"limit": "50"},  # 600 = 12 full pages: the last one has no next_cursor
        {"status": "judged,cancelled", "limit": "37"},
        {"status": "scheduled"},
        {"from": (START + 100 * minute).isoformat(), "to": (START + 420 * minute).astimezone(datetime.timezone(datetime.timedelta(hours=8))).isoformat()},
        {"status": "reviewed", "from": (START + 333 * minute).isoformat().replace("+00:00", "Z"), "limit": "7"},
        {"case_no": stored[123].case_no},
        {"case_no": "DZ-none"},
    ]
    async with running_server(tmp_path / "d") as srv:
        for query in queries:
            seen, pages, cursor = [], 0, None
            while pages == 0 or cursor:
                params = {**query, **({"cursor": cursor} if cursor else {})}
                async with http.get(f"{srv.base_url}/api/v1/inspections?{urlencode(params)}", headers=srv.headers()) as r:
                    page = await r.json()
                    assert r.status == 200, page
                seen += [item["id"] for item in page["items"]]
                cursor, pages = page["next_cursor"], pages + 1
            expected = expected_listing(stored, query)
            assert seen == expected, query
            assert pages == max(1, -(-len(expected) // int(query.get("limit", "50")))), query
        in_play = sum(1 for r in stored if r.status == "scheduled")
        assert srv.services.book.held <= in_play + FINISHED_KEPT


async def test_unknown_routes_are_problems(server, http) -> None:
    async with http.get(server.base_url + "/api/v1/nothing", headers=server.headers()) as r:
        await problem(r, 404)
    async with http.delete(server.base_url + "/api/v1/inspections", headers=server.headers()) as r:
        await problem(r, 405)


async def test_records_survive_restart(tmp_path, http) -> None:
    async with running_server(tmp_path / "d") as srv:
        created = await create_inspection(srv, http)
    async with running_server(tmp_path / "d") as srv:
        async with http.get(f"{srv.base_url}/api/v1/inspections/{created['id']}", headers=srv.headers()) as r:
            assert r.status == 200
        async with http.post(srv.base_url + "/api/v1/inspections", json=inspection_body(), headers=srv.headers()) as r:
            await problem(r, 409)
