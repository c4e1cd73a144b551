"""A licence photo during a live session is read in the background and compared."""

from __future__ import annotations

import json
import random

import aiohttp

from approval.rules.facts import facts_from
from testkit.licences import damage, jpeg, permit_fields, random_fields, render, render_food_permit, FONTS
from testkit.media import wait_for
from testkit.server import create_inspection, running_server, logged_events
from testkit.sockets import Participant, joined_pair


async def upload(server, http: aiohttp.ClientSession, applicant: Participant, image: bytes, checkpoint: str, filename: str) -> str:
    """The applicant's photo of ``checkpoint``, as the phone sends it; its evidence key."""
    form = aiohttp.FormData()
    form.add_field("file", image, filename=filename, content_type="image/jpeg")
    form.add_field("checkpoint", checkpoint)
    async with http.post(server.base_url + "/api/v1/session/photos", data=form, headers={"X-Takan-Token": applicant.token}) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["key"])


async def test_a_licence_photo_is_read_compared_and_logged(tmp_path) -> None:
    rng = random.Random(7)
    printed = random_fields(rng, "landscape")
    image = jpeg(damage(render(printed, "landscape", FONTS[0], rng), rng), 80)
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(
            server, http,
            applicant={"name": printed["name"], "kind": "legal_person", "id_type": "USCC", "id_number": printed["uscc"]},
            checkpoints=[{"code": "business_license_display", "title": "营业执照悬挂", "required": True},
                         {"code": "storefront", "title": "门头招牌", "required": True}],
        )
        async with joined_pair(server.base_url, created) as (inspector, applicant):
            key = await upload(server, http, applicant, image, "business_license_display", "licence.jpg")
            assert await wait_for(lambda: any(e == "recognized" for e, _ in inspector.events), 60)
            shown = next(d for e, d in inspector.events if e == "recognized")
            assert not any(e == "recognized" for e, _ in applicant.events)
            assert shown["kind"] == "business_licence" and shown["evidence_key"] == key
            assert shown["result"] == "matched" and shown["matches"] == {"name": True, "uscc": True}
            assert shown["fields"]["uscc"] == printed["uscc"] and shown["crop"]
            assert shown["crop_image"].startswith("data:image/jpeg;base64,")  # the page shows it; not in the record

            async with http.get(server.base_url + f"/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
                record = await r.json()
            [reading] = record["recognitions"]
            assert reading["evidence_key"] == key and reading["matches"] == {"name": True, "uscc": True} and reading["at"]
            assert reading["fields"]["name"] == printed["name"]
            events = await logged_events(server, created["id"])
            assert [e["data"]["evidence_key"] for e in events if e["type"] == "recognition.result"] == [key]
            facts = facts_from(record, events)
            assert facts["licence_read"] and facts["licence_name_matches"] and facts["licence_uscc_matches"]


async def test_a_permit_checkpoint_reads_the_permit_and_compares_its_holder(tmp_path) -> None:
    """A checkpoint titled 食品经营许可证 asks for the food permit: its fields are read (not
    as a licence, though it prints a credit code) and its holder compared."""
    rng = random.Random(5)
    printed = permit_fields(rng)
    image = jpeg(damage(render_food_permit(printed, FONTS[0], rng), rng, strength=0.6), 80)
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(
            server, http,
            applicant={"name": printed["name"], "kind": "legal_person", "id_type": "USCC", "id_number": printed["uscc"]},
            checkpoints=[{"code": "permit_display", "title": "食品经营许可证", "required": True}],
        )
        async with joined_pair(server.base_url, created) as (inspector, applicant):
            key = await upload(server, http, applicant, image, "permit_display", "permit.jpg")
            assert await wait_for(lambda: any(e == "recognized" for e, _ in inspector.events), 60)
            shown = next(d for e, d in inspector.events if e == "recognized")
            assert shown["kind"] == "food_permit" and shown["result"] == "matched", shown
            assert shown["fields"]["permit_no"] == printed["permit_no"] and shown["fields"]["name"] == printed["name"]
            events = await logged_events(server, created["id"])
            facts = facts_from(await _record(server, http, created["id"]), events)
            assert facts["permit_read"] and facts["permit_name_matches"] and "licence_read" not in facts


async def _record(server, http, inspection_id: str) -> dict:
    async with http.get(server.base_url + f"/api/v1/inspections/{inspection_id}", headers=server.headers()) as r:
        return await r.json()


async def test_a_licence_read_after_the_session_ended_keeps_its_time(tmp_path, monkeypatch) -> None:
    """A reading that finishes after the end (the end waits for it only so long) is sealed in
    with the ended session, and the record's recognitions[].at is its event's time, not null."""
    import session.service

    monkeypatch.setattr(session.service, "DERIVED_WAIT_S", 0.0)
    rng = random.Random(8)
    printed = random_fields(rng, "landscape")
    image = jpeg(damage(render(printed, "landscape", FONTS[0], rng), rng), 80)
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(
            server, http,
            applicant={"name": printed["name"], "kind": "legal_person", "id_type": "USCC", "id_number": printed["uscc"]},
            checkpoints=[{"code": "business_license_display", "title": "营业执照悬挂", "required": True}],
        )
        async with joined_pair(server.base_url, created) as (inspector, applicant):
            key = await upload(server, http, applicant, image, "business_license_display", "licence.jpg")
            assert (await inspector.call("end"))["ok"]
        await server.services.recognizer.idle()
        async with http.get(server.base_url + f"/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
            record = await r.json()
        [reading] = record["recognitions"]
        events = await logged_events(server, created["id"])
        [logged] = [e for e in events if e["type"] == "recognition.result"]
        assert reading["at"] == logged["at"], (reading, logged)
        assert events.index(logged) > next(i for i, e in enumerate(events) if e["type"] == "session.ended")
