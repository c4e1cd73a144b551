"""The calendar admin API on a real server, and a publicity due date in 2027 end to end.

The 2027 arrangement used here is TEST DATA - not the official arrangement
(tests/approval/data/calendar-2027.TEST-DATA.yaml).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.approval.test_calendar import TEST_2027, TEST_SOURCE, arrangement_2027
from testkit.server import RunningServer, create_inspection, running_server

UTC = datetime.timezone.utc
STRONG = "Correct-Horse-42-Battery!"
DECISION = {
    "document_name": "食品经营许可证",
    "document_no": "JY13714020012345",
    "authority": "德州市德城区行政审批服务局",
    "licence_category": "普通",
    "licence_content": "预包装食品销售",
    "decision_date": "2026-12-31",
}


async def approved_inspection(server: RunningServer, http: aiohttp.ClientSession) -> str:
    """An inspection created through the API, then judged "pass" directly (no live session here)."""
    created = await create_inspection(server, http)
    verdict = {"outcome": "pass", "reasons": [], "decided_at": "2026-12-31T02:00:00.000Z"}
    await server.services.book.transition(created["id"], "ended")
    await server.services.book.transition(created["id"], "judged", verdict=verdict)
    return str(created["id"])


async def put_year(server: RunningServer, http: aiohttp.ClientSession, body: Any, year: int = 2027, **headers: str) -> tuple[int, Any]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body, ensure_ascii=False)
    kind = headers.pop("content_type", "application/json")
    async with http.put(
        f"{server.base_url}/api/v1/calendar/{year}", data=data, headers={"Content-Type": kind, **(headers or server.headers())}
    ) as response:
        return response.status, await response.json(content_type=None)


async def test_a_publicity_due_date_in_2027_once_the_year_is_imported(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        # the decision is taken on 31 December 2026; "today" is 5 January 2027 for publicity
        server.services.publicity._clock = lambda: datetime.datetime(2027, 1, 5, 2, tzinfo=UTC)
        inspection_id = await approved_inspection(server, http)
        url = f"{server.base_url}/api/v1/inspections/{inspection_id}/publicity"
        async with http.post(url, json=DECISION, headers=server.headers()) as response:
            refused = await response.json(content_type=None)
        assert response.status == 422, refused
        assert refused["errors"][0]["field"] == "decision.decision_date"
        assert "no data for 2027" in refused["detail"] and "takan calendar import" in refused["detail"]

        status, imported = await put_year(server, http, TEST_2027.read_bytes(), content_type="application/yaml")
        assert status == 201, imported
        assert (imported["year"], imported["version"], imported["replaced_version"]) == (2027, 1, None)
        assert imported["notice"] == TEST_SOURCE and imported["imported_by"].startswith("api:")

        async with http.post(url, json=DECISION, headers=server.headers()) as response:
            created = await response.json(content_type=None)
        assert response.status == 201, created
        assert created["due_on"] == "2027-01-12"  # Jan 1-3 off (test data), then 4, 5, 6, 7, 8, 11, 12


async def test_another_node_sees_the_import(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d") as first, running_server(tmp_path / "d") as second, aiohttp.ClientSession() as http:
        second.services.publicity._clock = lambda: datetime.datetime(2027, 1, 5, 2, tzinfo=UTC)
        inspection_id = await approved_inspection(second, http)
        status, _ = await put_year(first, http, arrangement_2027())
        assert status == 201
        async with http.post(
            f"{second.base_url}/api/v1/inspections/{inspection_id}/publicity", json=DECISION, headers=second.headers()
        ) as response:
            created = await response.json(content_type=None)
        assert response.status == 201 and created["due_on"] == "2027-01-12", created
        async with http.get(f"{second.base_url}/api/v1/calendar/2027", headers=second.headers()) as response:
            assert (await response.json())["source"] == TEST_SOURCE


async def test_import_replace_and_read(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        async with http.get(f"{server.base_url}/api/v1/calendar/2027", headers=server.headers()) as response:
            missing = await response.json(content_type=None)
        assert response.status == 404 and "takan calendar import" in missing["detail"]

        assert (await put_year(server, http, arrangement_2027()))[0] == 201
        corrected = arrangement_2027(notes="TEST DATA - a corrected version")
        status, replaced = await put_year(server, http, corrected)
        assert status == 200 and (replaced["version"], replaced["replaced_version"]) == (2, 1)

        async with http.get(f"{server.base_url}/api/v1/calendar/2027", headers=server.headers()) as response:
            year = await response.json()
        assert response.status == 200
        assert (year["from"], year["version"], year["arrangement"]["notes"]) == ("imported", 2, "TEST DATA - a corrected version")
        assert [v["version"] for v in year["versions"]] == [1, 2]

        async with http.get(f"{server.base_url}/api/v1/calendar/2026", headers=server.headers()) as response:
            package_year = await response.json()
        assert package_year["from"] == "package" and package_year["source"].startswith("chinese-calendar")
        assert {"name": "National Day", "from": "2026-10-01", "to": "2026-10-07"} in package_year["arrangement"]["holidays"]

        async with http.get(f"{server.base_url}/api/v1/calendar", headers=server.headers()) as response:
            listing = await response.json()
        by_year = {entry["year"]: entry for entry in listing["years"]}
        assert by_year[2027]["from"] == "imported" and by_year[2027]["version"] == 2
        assert by_year[2026]["from"] == "package" and listing["package"]["last_year"] >= 2026


async def test_bad_uploads_are_explained(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        status, problem = await put_year(server, http, arrangement_2027(), year=2028)
        assert status == 422 and problem["errors"][0]["field"] == "year"
        assert "is 2027, but the arrangement is being loaded for 2028" in problem["errors"][0]["message"]

        bad = TEST_2027.read_text(encoding="utf-8").replace("{date: 2027-02-20,", "{date: 2027-02-06,")
        status, problem = await put_year(server, http, bad, content_type="application/yaml")
        assert status == 422
        assert problem["errors"] == [
            {"field": "makeup_working_days[1].date", "message": "line 16: 2027-02-06 is a holiday (holidays[1] (春节 (test))); a day cannot be both off and worked"}
        ]
        status, problem = await put_year(server, http, "year: 2027", content_type="text/csv")
        assert status == 415
        status, problem = await put_year(server, http, arrangement_2027(), year="next")  # type: ignore[arg-type]
        assert status == 404
        async with http.get(f"{server.base_url}/api/v1/calendar", headers=server.headers()) as response:
            assert all(entry["year"] != 2027 for entry in (await response.json())["years"])  # nothing was stored


async def test_only_admins_load_or_read_the_calendar(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        services = server.services
        query_key = await services.keys.issue("only-query", ("query",))
        admin_key = await services.keys.issue("only-admin", ("admin",))
        approver, _ = await services.accounts.create("user.approver", "测试审批", ["approver"], STRONG, must_change_password=False)
        admin, _ = await services.accounts.create("user.admin", "测试管理", ["admin"], STRONG, must_change_password=False)
        approver_session = {"Authorization": f"Session {await services.staff_sessions.open(approver)}"}
        admin_session = {"Authorization": f"Session {await services.staff_sessions.open(admin)}"}

        assert (await put_year(server, http, arrangement_2027(), **{"X-None": "1"}))[0] == 401
        assert (await put_year(server, http, arrangement_2027(), Authorization=f"Bearer {query_key.token}"))[0] == 403
        assert (await put_year(server, http, arrangement_2027(), **approver_session))[0] == 403
        for path in ("/api/v1/calendar", "/api/v1/calendar/2026"):
            async with http.get(server.base_url + path) as response:
                assert response.status == 401
            async with http.get(server.base_url + path, headers=approver_session) as response:
                assert response.status == 403
            async with http.get(server.base_url + path, headers=admin_session) as response:
                assert response.status == 200

        status, imported = await put_year(server, http, arrangement_2027(), **admin_session)
        assert status == 201 and imported["imported_by"] == "staff:user.admin"
        status, imported = await put_year(server, http, arrangement_2027(), Authorization=f"Bearer {admin_key.token}")
        assert status == 200 and imported["imported_by"] == f"api:{admin_key.key.id}"


async def test_healthz_warns_from_november_until_next_year_is_loaded(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        calendar = server.services.calendar
        assert calendar is not None

        async def health() -> dict[str, Any]:
            async with http.get(server.base_url + "/healthz") as response:
                assert response.status == 200
                body: dict[str, Any] = await response.json()
                assert body["status"] == "ok" and body["node"]
                return body

        calendar.clock = lambda: datetime.datetime(2026, 10, 31, 12, tzinfo=UTC)  # 31 October in China
        assert "calendar" not in await health()
        calendar.clock = lambda: datetime.datetime(2026, 10, 31, 16, 30, tzinfo=UTC)  # 1 November 00:30 in China
        warning = (await health())["calendar"]["warning"]
        assert "no data for 2027" in warning and "takan calendar import" in warning
        async with http.get(server.base_url + "/api/v1/calendar", headers=server.headers()) as response:
            assert (await response.json())["warning"] == warning
        assert (await put_year(server, http, arrangement_2027()))[0] == 201
        assert "calendar" not in await health()
