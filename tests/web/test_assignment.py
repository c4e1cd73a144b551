"""Inspector assignment (CONTRACT.md "Additions (2026-12)"): on create, by assign, claims."""

from __future__ import annotations

import aiohttp
import pytest

from testkit.server import create_inspection, inspection_body, running_server

STRONG = "Correct-Horse-42-Battery!"


@pytest.fixture
async def server(tmp_path):
    async with running_server(tmp_path / "data") as srv:
        yield srv


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def staff(server, user_id: str, name: str, roles: list[str]) -> dict[str, str]:
    account, _ = await server.services.accounts.create(user_id, name, roles, STRONG, must_change_password=False)
    return {"Authorization": f"Session {await server.services.staff_sessions.open(account)}"}


async def test_create_names_the_inspector_and_the_record_and_webhook_carry_it(server, http) -> None:
    await staff(server, "zhang.san", "张三", ["inspector"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    record = server.services.book.get(created["id"])
    assert (record.inspector_user_id, record.inspector_name) == ("zhang.san", "张三")
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
        shown = await r.json()
    assert shown["inspector_user_id"] == "zhang.san" and shown["inspector_name"] == "张三"
    assert shown["end_reason"] is None
    from approval.notifications import webhook_view

    view = webhook_view(record)
    assert view["inspector_user_id"] == "zhang.san" and view["inspector_name"] == "张三" and view["end_reason"] is None


async def test_unassigned_is_null(server, http) -> None:
    created = await create_inspection(server, http)
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
        shown = await r.json()
    assert shown["inspector_user_id"] is None and shown["inspector_name"] is None


@pytest.mark.parametrize("case", ["unknown", "disabled", "not_an_inspector"])
async def test_unknown_disabled_or_wrong_role_is_422(server, http, case) -> None:
    await staff(server, "zhang.san", "张三", ["inspector"])
    await staff(server, "audit.wang", "王审计", ["auditor"])
    if case == "disabled":
        await server.services.accounts.disable("zhang.san")
    user_id = {"unknown": "nobody.here", "disabled": "zhang.san", "not_an_inspector": "audit.wang"}[case]
    async with http.post(
        server.base_url + "/api/v1/inspections", json=inspection_body(inspector_user_id=user_id), headers=server.headers()
    ) as r:
        body = await r.json(content_type=None)
    assert r.status == 422, body
    assert body["errors"][0]["field"] == "inspector_user_id"


async def test_assign_reassign_and_not_after_the_end(server, http) -> None:
    await staff(server, "zhang.san", "张三", ["inspector"])
    await staff(server, "li.si", "李四", ["inspector"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    url = f"{server.base_url}/api/v1/inspections/{created['id']}/assign"
    async with http.post(url, json={"inspector_user_id": "li.si"}, headers=server.headers()) as r:
        shown = await r.json()
    assert r.status == 200, shown
    assert shown["inspector_user_id"] == "li.si" and shown["inspector_name"] == "李四"
    events = await server.services.journal.events(created["id"])
    assigned = [e for e in events if e["type"] == "inspector.assigned"]
    assert assigned[-1]["data"] == {"user_id": "li.si", "name": "李四", "previous_user_id": "zhang.san"}
    async with http.post(url, json={"inspector_user_id": "nobody.x"}, headers=server.headers()) as r:
        assert r.status == 422
    async with http.post(url, json={"inspector": "li.si"}, headers=server.headers()) as r:
        assert r.status == 422
    async with http.post(f"{server.base_url}/api/v1/inspections/{created['id']}/cancel", json={"reason": "申请撤回"}, headers=server.headers()) as r:
        assert r.status == 200
    async with http.post(url, json={"inspector_user_id": "zhang.san"}, headers=server.headers()) as r:
        assert r.status == 409, await r.text()


async def test_inspectors_claim_unassigned_and_only_supervisors_reassign(server, http) -> None:
    zhang = await staff(server, "zhang.san", "张三", ["inspector"])
    li = await staff(server, "li.si", "李四", ["inspector"])
    boss = await staff(server, "zhao.liu", "赵六", ["supervisor"])
    created = await create_inspection(server, http)
    url = f"{server.base_url}/api/v1/inspections/{created['id']}/assign"
    async with http.post(url, json={"inspector_user_id": "li.si"}, headers=zhang) as r:
        assert r.status in (403, 404), await r.text()  # an inspector assigns nobody but themselves
    async with http.post(url, json={"inspector_user_id": "zhang.san"}, headers=zhang) as r:
        assert r.status == 200, await r.text()  # a claim
    async with http.post(url, json={"inspector_user_id": "li.si"}, headers=li) as r:
        assert r.status == 404  # taken: not li's to see
    async with http.post(url, json={"inspector_user_id": "li.si"}, headers=boss) as r:
        shown = await r.json()
    assert r.status == 200 and shown["inspector_name"] == "李四"
    assert server.services.book.get(created["id"]).inspector_user_id == "li.si"


async def test_reschedule_moves_the_time_and_the_links_and_is_logged(server, http) -> None:
    zhang = await staff(server, "zhang.san", "张三", ["inspector"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    url = f"{server.base_url}/api/v1/inspections/{created['id']}/reschedule"
    async with http.post(url, json={"scheduled_at": "2030-01-02T09:30:00+08:00"}, headers=zhang) as r:
        shown = await r.json()
    assert r.status == 200, shown
    assert shown["scheduled_at"] == "2030-01-02T01:30:00.000Z" and shown["expires_at"].startswith("2030-01-05")
    events = await server.services.journal.events(created["id"])
    assert events[-1]["type"] == "inspection.rescheduled" and events[-1]["actor"] == "staff:zhang.san"
    async with http.post(url, json={"scheduled_at": "tomorrow"}, headers=zhang) as r:
        assert r.status == 422
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}/links", headers=zhang) as r:
        links = await r.json()
    assert r.status == 200 and links["inspector_url"].startswith(server.base_url + "/console#")
    li = await staff(server, "li.si", "李四", ["inspector"])
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}/links", headers=li) as r:
        assert r.status == 404
    async with http.post(url, json={"scheduled_at": "2030-01-02T09:30:00+08:00"}, headers=li) as r:
        assert r.status == 404
