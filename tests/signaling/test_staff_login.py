"""The inspector link needs the assigned inspector's staff login (issue 11, parts 1 and 4)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from testkit.server import create_inspection, running_server
from testkit.sockets import Participant

STRONG = "Correct-Horse-42-Battery!"


@pytest.fixture
async def server(tmp_path):
    async with running_server(tmp_path / "data", inspector_login="required") as srv:
        srv.services.sessions.inspector_gate.recheck_s = 0.0  # every action checks the login
        yield srv


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def login(server, user_id: str, name: str, roles: list[str]) -> str:
    accounts = server.services.accounts
    account = await accounts.find(user_id)
    if account is None:
        account, _ = await accounts.create(user_id, name, roles, STRONG, must_change_password=False)
    return await server.services.staff_sessions.open(account)


async def test_the_assigned_inspector_runs_it_and_the_evidence_names_them(server, http) -> None:
    token = await login(server, "zhang.san", "张三", ["inspector"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    inspector = Participant(server.base_url, created["inspector_url"])
    applicant = Participant(server.base_url, created["applicant_url"])
    try:
        assert await inspector.connect(staff_session=token), inspector.refused
        assert await applicant.connect()
        assert (await inspector.call("join"))["ok"]
        assert (await applicant.call("join"))["ok"]
        assert (await inspector.call("note", {"text": "门头招牌清晰"}))["ok"]
        assert (await inspector.call("end"))["ok"]
    finally:
        await inspector.close()
        await applicant.close()
    events = await server.services.journal.events(created["id"])
    mine = [e for e in events if e["actor"] == "inspector"]
    assert {"participant.joined", "note", "session.ended"} <= {e["type"] for e in mine}, [e["type"] for e in mine]
    for event in mine:
        assert event["data"].get("staff") == {"user_id": "zhang.san", "name": "张三"}, event
    assert not [e for e in events if e["actor"] == "applicant" and "staff" in e["data"]]
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}/manifest", headers=server.headers()) as r:
        manifest = json.loads(await r.read())
    assert '"inspector":{"name":"张三","user_id":"zhang.san"}' in json.dumps(manifest, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


async def test_no_login_is_refused_and_says_whose_it_is(server, http) -> None:
    await login(server, "zhang.san", "张三", ["inspector"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    inspector = Participant(server.base_url, created["inspector_url"])
    try:
        assert not await inspector.connect()
        assert inspector.refusal_code == "login_required"
        data = inspector.refused.get("data") or inspector.refused
        assert data["inspector_name"] == "张三" and data["inspector_user_id"] == "zhang.san"
    finally:
        await inspector.close()
    # the applicant's link needs no login
    applicant = Participant(server.base_url, created["applicant_url"])
    try:
        assert await applicant.connect()
    finally:
        await applicant.close()


async def test_another_inspector_is_refused(server, http) -> None:
    await login(server, "zhang.san", "张三", ["inspector"])
    other = await login(server, "li.si", "李四", ["inspector"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    inspector = Participant(server.base_url, created["inspector_url"])
    try:
        assert not await inspector.connect(staff_session=other)
        assert inspector.refusal_code == "not_your_inspection"
        assert "张三" in (inspector.refused.get("data") or inspector.refused)["message"]
    finally:
        await inspector.close()
    assert server.services.book.get(created["id"]).inspector_user_id == "zhang.san"


async def test_a_disabled_account_is_refused(server, http) -> None:
    token = await login(server, "zhang.san", "张三", ["inspector"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    await server.services.accounts.disable("zhang.san")
    inspector = Participant(server.base_url, created["inspector_url"])
    try:
        assert not await inspector.connect(staff_session=token)
        assert inspector.refusal_code == "account_disabled"
    finally:
        await inspector.close()


async def test_a_login_that_expires_mid_inspection_asks_again_and_loses_nothing(server, http) -> None:
    token = await login(server, "zhang.san", "张三", ["inspector"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    inspector = Participant(server.base_url, created["inspector_url"])
    applicant = Participant(server.base_url, created["applicant_url"])
    try:
        assert await inspector.connect(staff_session=token) and await applicant.connect()
        assert (await inspector.call("join"))["ok"] and (await applicant.call("join"))["ok"]
        assert (await inspector.call("note", {"text": "第一条"}))["ok"]
        await server.services.staff_sessions.close_session(token)  # the login ends (timeout, logout elsewhere)
        refused = await inspector.call("note", {"text": "第二条"})
        assert refused["ok"] is False and refused["error"]["code"] == "login_required", refused
        # the connection and the session go on; the applicant is not affected
        assert inspector.sio.connected
        assert server.services.book.get(created["id"]).status == "live"
        assert (await applicant.call("chat", {"text": "还在吗"}))["ok"]
        # logged in again, the page reconnects on the same device and carries on
        fresh = await login(server, "zhang.san", "张三", ["inspector"])
        again = Participant(server.base_url, created["inspector_url"])
        try:
            assert await again.connect(staff_session=fresh), again.refused
            joined = await again.call("join", {"takeover": True})
            assert joined["ok"], joined
            assert (await again.call("note", {"text": "第二条"}))["ok"]
            assert (await again.call("end"))["ok"]
        finally:
            await again.close()
    finally:
        await inspector.close()
        await applicant.close()
    notes = [e["data"]["text"] for e in await server.services.journal.events(created["id"]) if e["type"] == "note"]
    assert notes == ["第一条", "第二条"]


async def test_unassigned_is_claimed_and_a_supervisor_takes_over(server, http) -> None:
    zhang = await login(server, "zhang.san", "张三", ["inspector"])
    boss = await login(server, "zhao.liu", "赵六", ["supervisor"])
    auditor = await login(server, "audit.wang", "王审计", ["auditor"])
    created = await create_inspection(server, http)
    first = Participant(server.base_url, created["inspector_url"])
    try:
        assert not await first.connect(staff_session=auditor)
        assert first.refusal_code == "not_an_inspector"
    finally:
        await first.close()
    claimer = Participant(server.base_url, created["inspector_url"])
    try:
        assert await claimer.connect(staff_session=zhang), claimer.refused
    finally:
        await claimer.close()
    assert server.services.book.get(created["id"]).inspector_name == "张三"
    supervisor = Participant(server.base_url, created["inspector_url"])
    try:
        assert await supervisor.connect(staff_session=boss), supervisor.refused
    finally:
        await supervisor.close()
    record = server.services.book.get(created["id"])
    assert (record.inspector_user_id, record.inspector_name) == ("zhao.liu", "赵六")
    events = await server.services.journal.events(created["id"])
    kinds = {e["type"]: e["data"] for e in events}
    assert kinds["inspector.claimed"]["staff"] == {"user_id": "zhang.san", "name": "张三"}
    assert kinds["inspector.taken_over"]["staff"] == {"user_id": "zhao.liu", "name": "赵六"}
    assert kinds["inspector.taken_over"]["previous"]["inspector_user_id"] == "zhang.san"


async def test_the_exported_record_names_the_inspector(server, http) -> None:
    from archive.record import RecordContent, render_record

    token = await login(server, "zhang.san", "张三", ["inspector"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    inspector = Participant(server.base_url, created["inspector_url"])
    try:
        assert await inspector.connect(staff_session=token)
        assert (await inspector.call("join"))["ok"]
        assert (await inspector.call("note", {"text": "现场整洁"}))["ok"]
    finally:
        await inspector.close()
    await server.services.sessions.end_inspection(created["id"], actor="system")
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}/manifest", headers=server.headers()) as r:
        raw = await r.read()
    events = await server.services.journal.events(created["id"])
    html = render_record(RecordContent(manifest=json.loads(raw), manifest_sha256="00" * 32, events=events))
    assert "张三（zhang.san）" in html
    assert html.count("踏勘人员（张三（zhang.san））") >= 2  # the join and the note in the timeline


async def test_invited_observers_have_their_own_links_and_are_named(server, http) -> None:
    zhang = await login(server, "zhang.san", "张三", ["inspector"])
    await login(server, "zhao.liu", "赵六", ["supervisor"])
    created = await create_inspection(server, http, inspector_user_id="zhang.san")
    url = f"{server.base_url}/api/v1/inspections/{created['id']}/observers"
    headers = {"Authorization": f"Session {zhang}"}
    async with http.post(url, json={"name": "王专家", "ttl_hours": 1}, headers=headers) as r:
        guest = await r.json()
    assert r.status == 201, guest
    async with http.post(url, json={"user_id": "zhao.liu"}, headers=headers) as r:
        boss = await r.json()
    assert r.status == 201 and boss["name"] == "赵六" and boss["kind"] == "staff"
    async with http.post(url, json={}, headers=headers) as r:
        assert r.status == 422
    for link, name in ((guest["observer_url"], "王专家"), (boss["observer_url"], "赵六")):
        observer = Participant(server.base_url, link)
        try:
            assert await observer.connect(), observer.refused
            assert (await observer.call("join"))["ok"]
        finally:
            await observer.close()
    events = await server.services.journal.events(created["id"])
    joined = [e["data"].get("observer") for e in events if e["type"] == "participant.joined" and e["actor"] == "observer"]
    assert joined == [{"name": "王专家", "kind": "guest", "user_id": None}, {"name": "赵六", "kind": "staff", "user_id": "zhao.liu"}]
    assert [e["data"]["name"] for e in events if e["type"] == "observer.invited"] == ["王专家", "赵六"]
    assert server.services.book.get(created["id"]).evidence_summary()["observers"][0]["name"] == "王专家"
