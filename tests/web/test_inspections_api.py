"""The REST contract against a real server over HTTP."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
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
        assert r.headers["WWW-Authenticate"] == "Bearer"
    async with http.get(server.base_url + "/api/v1/inspections/x", headers=headers) as r:
        await problem(r, status)
        assert r.headers["WWW-Authenticate"] == "Bearer"


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
        ({"callback_url": "http://127.0.0.1:99999/hook"}, "callback_url"),  # was 201, webhooks then dropped
        ({"callback_url": "http://127.0.0.1:0/hook"}, "callback_url"),
        ({"callback_url": "http://[::1/hook"}, "callback_url"),  # was a 500
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"scheduled_at": "2026-12-09T09:30:00+08"}, "scheduled_at"),  # not RFC 3339: each was accepted
        ({"scheduled_at": "2026-12-09T09:30+08:00"}, "scheduled_at"),
        ({"scheduled_at": "2026-12-09 09:30:00+08:00"}, "scheduled_at"),
        ({"scheduled_at": "2026-12-31T23:59:60Z"}, "scheduled_at"),  # a leap second, refused by name
        ({"scheduled_at": "9999-12-31T23:59:59Z"}, "scheduled_at"),  # was a 500 (the links' expiry overflowed)
        ({"applicant": {**inspection_body()["applicant"], "id_type": "PASSPORT", "id_number": "E12345678"}}, "applicant.id_type"),
        ({"applicant": {**inspection_body()["applicant"], "kind": "other_org", "id_type": "PASSPORT", "id_number": "E12345678"}}, "applicant.id_type"),
        ({"applicant": {**inspection_body()["applicant"], "kind": "natural_person"}}, "applicant.id_type"),  # a USCC
        ({"inspector_user_id": ""}, "inspector_user_id"),  # was taken as unassigned
        ({"inspector_user_id": "  "}, "inspector_user_id"),
        ({"checkpoints": [{"code": "a", "title": "A"}, {"code": "a", "title": "B"}]}, "checkpoints[1].code"),
        ({"surprise": 1}, "surprise"),
        ({"item_code": "food-business-license", "checkpoints": []}, "checkpoints"),
    ],
)
async def test_validation_errors(server, http, change, field) -> None:
    async with http.post(server.base_url + "/api/v1/inspections", json=inspection_body(**change), headers=server.headers()) as r:
        body = await problem(r, 422)
    assert field in [e["field"] for e in body["errors"]], body


@pytest.mark.parametrize("when", ["2026-12-09t09:30:00z", "2026-12-09T09:30:00.5-00:00", "2026-12-09T09:30:00Z"])
async def test_rfc3339_times_are_accepted_as_written(server, http, when) -> None:
    """Lower-case t and z are RFC 3339 (they were refused); -00:00 is UTC."""
    created = await create_inspection(server, http, scheduled_at=when)
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
        assert (await r.json())["scheduled_at"].startswith("2026-12-09T09:30:00")


async def test_inspector_user_id_null_leaves_it_unassigned(server, http) -> None:
    created = await create_inspection(server, http, inspector_user_id=None)
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
        assert (await r.json())["inspector_user_id"] is None


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


async def test_idempotency_compares_the_json_not_its_bytes(tmp_path, http) -> None:
    """The same body re-indented or with its members reordered is a replay (it was a 422),
    across a restart too; a record stored before, with only the raw bytes' digest, still
    replays the same bytes."""
    body = inspection_body()
    compact = json.dumps(body, ensure_ascii=False).encode()
    reordered = json.dumps(dict(reversed(list(body.items()))), ensure_ascii=False, indent=4).encode()
    async with running_server(tmp_path / "d") as srv:
        headers = srv.headers(**{"Idempotency-Key": "req-canon", "Content-Type": "application/json"})
        url = srv.base_url + "/api/v1/inspections"
        async with http.post(url, data=compact, headers=headers) as r:
            assert r.status == 201, await r.text()
            first = await r.json()
        async with http.post(url, data=reordered, headers=headers) as r:
            assert r.status == 201 and r.headers["Idempotent-Replayed"] == "true", await r.text()
            assert (await r.json())["id"] == first["id"]
        # a record in the format kept before: the raw body's digest only
        store = srv.services.store
        [canon_key] = await store.list("records/idempotency/")
        old_key = canon_key.rsplit("/", 1)[0] + "/" + hashlib.sha256(b"req-old").hexdigest() + ".json"
        await store.put(old_key, json.dumps({"body_sha256": hashlib.sha256(compact).hexdigest(),
                                             "response": first}).encode(), "application/json")
    async with running_server(tmp_path / "d") as srv:
        url = srv.base_url + "/api/v1/inspections"
        headers = srv.headers(**{"Idempotency-Key": "req-canon", "Content-Type": "application/json"})
        async with http.post(url, data=reordered, headers=headers) as r:
            assert r.status == 201 and (await r.json())["id"] == first["id"], await r.text()
        headers["Idempotency-Key"] = "req-old"
        async with http.post(url, data=compact, headers=headers) as r:
            assert r.status == 201 and (await r.json())["id"] == first["id"], await r.text()
        async with http.post(url, data=reordered, headers=headers) as r:
            await problem(r, 422)  # an old record knows only its bytes


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
        assert set(r.headers["Allow"].split(",")) >= {"GET", "POST"}, r.headers


async def test_created_has_a_location_and_one_record_takes_no_parameters(server, http) -> None:
    url = server.base_url + "/api/v1/inspections"
    headers = server.headers(**{"Idempotency-Key": "req-location"})
    async with http.post(url, json=inspection_body(), headers=headers) as r:
        created = await r.json()
        assert r.status == 201 and r.headers["Location"] == f"/api/v1/inspections/{created['id']}"
    async with http.post(url, json=inspection_body(), headers=headers) as r:  # the replay too
        assert r.status == 201 and r.headers["Location"] == f"/api/v1/inspections/{created['id']}"
    async with http.get(server.base_url + r.headers["Location"], headers=server.headers()) as got:
        assert got.status == 200
    async with http.get(f"{url}/{created['id']}?fields=status", headers=server.headers()) as r:
        body = await problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["fields"]


async def test_records_survive_restart(tmp_path, http) -> None:
    async with running_server(tmp_path / "d") as srv:
        created = await create_inspection(srv, http)
    async with running_server(tmp_path / "d") as srv:
        async with http.get(f"{srv.base_url}/api/v1/inspections/{created['id']}", headers=srv.headers()) as r:
            assert r.status == 200
        async with http.post(srv.base_url + "/api/v1/inspections", json=inspection_body(), headers=srv.headers()) as r:
            await problem(r, 409)
