"""Checkpoints, signatures, notes, chat, location, the time limit and photo uploads."""

from __future__ import annotations

import base64
import datetime
import io
import json

import aiohttp
import pytest
from PIL import Image

from evidence.verify import verify_inspection
from testkit.media import wait_for
from testkit.server import create_inspection, running_server, logged_events
from testkit.sockets import Participant


def png_bytes(color=(0, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 120), color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1920, 1080), (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


SIGNATURE = {
    "strokes": [[{"x": 10, "y": 10, "t": 0}, {"x": 50, "y": 40, "t": 16}], [{"x": 60, "y": 10, "t": 200}]],
    "png": "data:image/png;base64," + base64.b64encode(png_bytes()).decode(),
    "width": 300,
    "height": 120,
}


@pytest.fixture
async def session(tmp_path):
    async with running_server(tmp_path / "data", session_limit_s="3") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http, site={"address": "德州市", "lat": 37.4355, "lon": 116.3594, "radius_m": 300})
        inspector = Participant(server.base_url, created["inspector_url"])
        applicant = Participant(server.base_url, created["applicant_url"])
        assert await inspector.connect() and await applicant.connect()
        assert (await inspector.call("join"))["ok"] and (await applicant.call("join"))["ok"]
        yield server, http, created, inspector, applicant
        await inspector.close()
        await applicant.close()


async def test_actions_are_logged_and_sealed(session) -> None:
    server, http, created, inspector, applicant = session
    assert (await inspector.call("prompt", {"checkpoint": "storefront"}))["ok"]
    assert await wait_for(lambda: any(e == "prompt" for e, _ in applicant.events), 5)
    assert (await inspector.call("note", {"text": "门头清晰", "checkpoint": "storefront"}))["ok"]
    assert (await applicant.call("chat", {"text": "可以了吗？"}))["ok"]
    near = await applicant.call("location", {"lat": 37.4360, "lon": 116.3594, "accuracy_m": 12})
    assert near["ok"] and near["within_radius"] is True and 40 < near["distance_m"] < 70
    far = await applicant.call("location", {"lat": 37.5, "lon": 116.3594})
    assert far["within_radius"] is False

    # the applicant's own photo, uploaded over HTTP with the link token
    form = aiohttp.FormData()
    form.add_field("file", jpeg_bytes(), filename="IMG_0001.JPG", content_type="image/jpeg")
    form.add_field("checkpoint", "storefront")
    form.add_field("taken_at", "2026-11-26T10:00:00+08:00")
    form.add_field("lat", "37.4356")
    form.add_field("lon", "116.3595")
    async with http.post(server.base_url + "/api/v1/session/photos", data=form, headers={"X-Takan-Token": applicant.token}) as r:
        photo = await r.json()
        assert r.status == 201, photo
    assert photo["key"] == "photos/storefront/1.jpg" and photo["kind"] == "photo"

    signed = await applicant.call("signature", SIGNATURE)
    assert signed["ok"] and len(signed["code"]) == 9 and signed["key"] == "signatures/applicant-1.png"
    assert (await inspector.call("signature", SIGNATURE))["ok"]
    assert await wait_for(lambda: sum(1 for e, _ in inspector.events if e == "signed") == 2, 5)

    # the timer (3 s limit here): warnings, then the limit blocks evidence until a reason is given
    assert await wait_for(lambda: any(e == "timer" and d["phase"] == "limit" for e, d in applicant.events), 6)
    phases = [d["phase"] for e, d in inspector.events if e == "timer"]
    assert phases[:3] == ["warning", "final_warning", "limit"]
    blocked = await applicant.call("signature", SIGNATURE)
    assert blocked["error"]["code"] == "overtime_reason_required"
    assert (await inspector.call("overtime", {"reason": "仓库面积大，需补拍"}))["ok"]
    assert (await applicant.call("signature", SIGNATURE))["ok"]

    assert (await inspector.call("end"))["ok"]
    await server.services.decisions.idle()
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}/objects/events.jsonl", headers=server.headers()) as r:
        events = [json.loads(line) for line in (await r.read()).splitlines()]
    types = [e["type"] for e in events]
    for expected in ("checkpoint.prompted", "note", "chat", "location.updated", "photo.uploaded", "signature.strokes",
                     "signature.signed", "timer.warning", "timer.final_warning", "timer.limit", "timer.overtime_reason", "session.ended"):
        assert expected in types, expected
    signature_event = next(e for e in events if e["type"] == "signature.signed")
    bound = signature_event["data"]["binds_log_head"]
    # the head the signer was shown: an event before its strokes (derived work such as the photo's
    # watermarked copy may land between reading the head and writing the strokes)
    strokes_at = max(i for i, e in enumerate(events) if e["type"] == "signature.strokes" and e["seq"] < signature_event["seq"])
    assert bound in {e["hash"] for e in events[:strokes_at]}
    async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
        record = await r.json()
    storefront = record["checkpoints"][0]
    assert storefront["captured"] is True and storefront["evidence"] == ["photos/storefront/1.jpg"]
    report = await verify_inspection(server.services.store, created["id"])
    assert report.ok, report.problems


@pytest.mark.parametrize(
    "role,event,payload,code",
    [
        ("applicant", "prompt", {"checkpoint": "storefront"}, "forbidden"),
        ("inspector", "prompt", {"checkpoint": "nope"}, "bad_request"),
        ("inspector", "prompt", {"checkpoint": 3}, "bad_request"),
        ("inspector", "location", {"lat": 1, "lon": 2}, "forbidden"),
        ("applicant", "location", {"lat": 91, "lon": 2}, "bad_request"),
        ("applicant", "location", {"lat": "x", "lon": 2}, "bad_request"),
        ("applicant", "chat", {"text": ""}, "bad_request"),
        ("applicant", "chat", {"text": "x" * 3000}, "too_large"),
        ("applicant", "signature", {**SIGNATURE, "png": "data:image/png;base64,!!!"}, "bad_request"),
        ("applicant", "signature", {**SIGNATURE, "png": "data:image/png;base64," + base64.b64encode(b"GIF89a").decode()}, "bad_request"),
        ("applicant", "signature", {**SIGNATURE, "strokes": []}, "bad_request"),
        ("applicant", "signature", {**SIGNATURE, "strokes": [[{"x": "a", "y": 1, "t": 1}]]}, "bad_request"),
        ("applicant", "overtime", {"reason": "x"}, "forbidden"),
        ("applicant", "capture", {"checkpoint": "storefront"}, "forbidden"),
    ],
)
async def test_bad_actions(session, role, event, payload, code) -> None:
    _, _, _, inspector, applicant = session
    who = applicant if role == "applicant" else inspector
    ack = await who.call(event, payload)
    assert ack["ok"] is False and ack["error"]["code"] == code, ack


@pytest.mark.parametrize(
    "headers,content,status",
    [
        ({}, b"\xff\xd8\xff\xe0rest", 401),
        ({"X-Takan-Token": "forged"}, b"\xff\xd8\xff\xe0rest", 401),
        ("inspector", b"\xff\xd8\xff\xe0rest", 403),
        ("applicant", b"<svg onload=alert(1)>", 415),
        ("applicant", b"", 400),
    ],
)
async def test_bad_uploads(session, headers, content, status) -> None:
    server, http, _, inspector, applicant = session
    if headers == "inspector":
        headers = {"X-Takan-Token": inspector.token}
    elif headers == "applicant":
        headers = {"X-Takan-Token": applicant.token}
    form = aiohttp.FormData()
    form.add_field("file", content, filename="../../etc/passwd", content_type="image/jpeg")
    form.add_field("checkpoint", "storefront")
    async with http.post(server.base_url + "/api/v1/session/photos", data=form, headers=headers) as r:
        assert r.status == status, await r.text()
        assert r.content_type == "application/problem+json"


async def test_a_photo_gets_a_watermarked_display_copy_linked_to_the_original(session) -> None:
    import hashlib

    server, http, created, inspector, applicant = session
    assert (await applicant.call("location", {"lat": 37.4360, "lon": 116.3594, "accuracy_m": 12}))["ok"]
    assert (await applicant.call("location", {"lat": 37.4357, "lon": 116.3594, "accuracy_m": 9}))["ok"]  # the latest is stamped
    original = jpeg_bytes()
    form = aiohttp.FormData()
    form.add_field("file", original, filename="IMG.JPG", content_type="image/jpeg")
    form.add_field("checkpoint", "storefront")
    async with http.post(server.base_url + "/api/v1/session/photos", data=form, headers={"X-Takan-Token": applicant.token}) as r:
        assert r.status == 201
        key = (await r.json())["key"]
    await server.services.watermarker.idle()
    root = server.runner.app[__import__("takan.app", fromlist=["CONFIG"]).CONFIG].data_dir / "objects" / "inspections" / created["id"]
    events = await logged_events(server, created["id"])
    [marked] = [e for e in events if e["type"] == "still.watermarked"]
    assert marked["data"]["original_key"] == key and marked["data"]["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert (root / key).read_bytes() == original  # the original stays exactly as captured
    copy = Image.open(io.BytesIO((root / marked["data"]["key"]).read_bytes()))
    assert copy.size == (1920, 1080) and marked["data"]["key"].startswith("display/photos/storefront/")
    assert any("DZ-2026-000123" in line for line in marked["data"]["lines"])
    assert any(line.startswith("位置：37.4357, 116.3594") for line in marked["data"]["lines"]), marked["data"]["lines"]
    [uploaded] = [e for e in events if e["type"] == "photo.uploaded"]
    shown_at = datetime.datetime.fromisoformat(uploaded["at"].replace("Z", "+00:00")).astimezone(datetime.timezone(datetime.timedelta(hours=8)))
    assert f"时间：{shown_at.strftime('%Y-%m-%d %H:%M:%S')}（北京时间）" in marked["data"]["lines"]  # the capture's own time


async def test_a_signature_after_a_restart_does_not_overwrite_the_first(tmp_path) -> None:
    """The room's count of signatures starts again with a new process; the key comes from
    the log and the store (evidence/journal.py unused_keys), so the first stays as signed.
    A blob stored but not logged when the process stopped is logged at the restart."""
    from testkit.server import free_port

    port = free_port()
    async with aiohttp.ClientSession() as http:
        async with running_server(tmp_path / "data", port=port) as server:
            created = await create_inspection(server, http)
            applicant = Participant(server.base_url, created["applicant_url"])
            inspector = Participant(server.base_url, created["inspector_url"])
            assert await inspector.connect() and await applicant.connect()
            assert (await inspector.call("join"))["ok"] and (await applicant.call("join"))["ok"]
            first = await applicant.call("signature", SIGNATURE)
            assert first["key"] == "signatures/applicant-1.png"
            await applicant.close()
            await inspector.close()
        # a segment the process stored just before it died, its event not journaled yet
        stray = tmp_path / "data" / "objects" / "inspections" / created["id"] / "media" / "applicant-video" / "000001.webm"
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(b"footage stored, then the process died")
        async with running_server(tmp_path / "data", port=port) as server:
            applicant = Participant(server.base_url, created["applicant_url"])
            inspector = Participant(server.base_url, created["inspector_url"])
            assert await inspector.connect() and await applicant.connect()
            joined = await inspector.call("join")
            assert joined["ok"] and (await applicant.call("join"))["ok"]
            assert joined["signatures"] == ["applicant"]  # the pages are shown the signature made before
            again = await applicant.call("signature", SIGNATURE | {"png": "data:image/png;base64," + base64.b64encode(png_bytes((200, 0, 0))).decode()})
            assert again["ok"] and again["key"] == "signatures/applicant-2.png", again
            assert (await inspector.call("end"))["ok"]
            await server.services.decisions.idle()  # judged and sealed
            await applicant.close()
            await inspector.close()
            events = await logged_events(server, created["id"])
            signed = [e["data"]["key"] for e in events if e["type"] == "signature.signed"]
            assert signed == ["signatures/applicant-1.png", "signatures/applicant-2.png"]
            # logged at the restart (session/recovery.py), so the seal covers it and no segment reuses its key
            assert [e["data"]["key"] for e in events if e["type"] == "evidence.recovered"] == ["media/applicant-video/000001.webm"]
            report = await verify_inspection(server.services.store, created["id"])
            assert report.ok, report.problems


async def test_a_photo_sent_again_with_its_upload_id_is_stored_once(session) -> None:
    """The phone's retry after an answer lost on a weak link (same upload_id) is answered as
    the first try and not stored again; a new upload_id is a new photo."""
    server, http, created, inspector, applicant = session

    async def upload(upload_id: str) -> tuple[int, dict]:
        form = aiohttp.FormData()
        form.add_field("file", jpeg_bytes(), filename="IMG_0002.JPG", content_type="image/jpeg")
        form.add_field("checkpoint", "storefront")
        form.add_field("upload_id", upload_id)
        async with http.post(server.base_url + "/api/v1/session/photos", data=form, headers={"X-Takan-Token": applicant.token}) as r:
            return r.status, await r.json()

    import asyncio

    (s1, first), (s2, again) = await asyncio.gather(upload("a1b2c3d4e5f6a7b8"), upload("a1b2c3d4e5f6a7b8"))
    assert (s1, s2) == (201, 201) and first == again and first["key"] == "photos/storefront/1.jpg"
    status, other = await upload("ffffeeeeddddcccc")
    assert status == 201 and other["key"] == "photos/storefront/2.jpg"
    status, refused = await upload("bad id!")
    assert status == 400 and "upload_id" in refused["detail"]
    events = await logged_events(server, created["id"])
    assert [e["data"]["upload_id"] for e in events if e["type"] == "photo.uploaded"] == ["a1b2c3d4e5f6a7b8", "ffffeeeeddddcccc"]
