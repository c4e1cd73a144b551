"""The inspector's page shows what the server read from a licence photo, within seconds."""

from __future__ import annotations

import random

import aiohttp

from testkit.licences import FONTS, damage, jpeg, random_fields, render
from testkit.browser import artifact
from testkit.sockets import Participant
from testkit.server import create_inspection, running_server
from tests.web_client.test_pages import JOINED, browser, browser_test, open_page, until

CHECKPOINTS = [{"code": "business_license_display", "title": "营业执照悬挂", "required": True}]


@browser_test
async def test_licence_reading_is_shown_to_the_inspector(tmp_path) -> None:
    rng = random.Random(11)
    printed = random_fields(rng, "portrait")
    image = jpeg(damage(render(printed, "portrait", FONTS[1], rng), rng), 80)
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(
            server, http, checkpoints=CHECKPOINTS,
            applicant={"name": printed["name"], "kind": "legal_person", "id_type": "USCC", "id_number": "91350100M000100Y43"},
        )
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            await inspector.wait_for_timeout(1500)
            assert not inspector.js_errors, inspector.js_errors
            await until(inspector, JOINED)
            applicant = Participant(server.base_url, created["applicant_url"])
            assert await applicant.connect() and (await applicant.call("join"))["ok"]
            token = applicant.token
            form = aiohttp.FormData()
            form.add_field("file", image, filename="licence.jpg", content_type="image/jpeg")
            form.add_field("checkpoint", "business_license_display")
            async with http.post(server.base_url + "/api/v1/session/photos", data=form, headers={"X-Takan-Token": token}) as r:
                assert r.status == 201, await r.text()
            await until(inspector, "document.querySelector('#recognitions .recognition') !== null", timeout_s=90)
            card = inspector.locator("#recognitions .recognition").first
            assert await card.get_attribute("data-result") == "differs"  # the name matches, the USCC does not
            text = await card.inner_text()
            assert "营业执照" in text and printed["name"] in text and printed["uscc"] in text
            # the crop of the photo that was read, beside the verdict
            await until(inspector, "document.querySelector('#recognitions .recognition-crop')?.naturalWidth > 100")
            assert await card.locator(".recognition-result").inner_text() == "与申请不一致"
            assert await card.locator("dd[data-match=false]").count() == 1
            await inspector.screenshot(path=str(artifact("web-console-recognition.png")))
            await applicant.close()
