"""Audio first on the pages: both say plainly that the call is on audio, then that video is back."""

from __future__ import annotations

import aiohttp

from testkit.browser import artifact
from testkit.server import create_inspection, running_server
from tests.web_client.test_pages import JOINED, browser, browser_test, open_page, until
from tests.web_client.test_session_ui import phone


@browser_test
async def test_both_pages_say_when_the_call_is_on_audio(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            applicant = await phone(b, created["applicant_url"])
            await until(inspector, JOINED)
            await until(applicant, JOINED)
            tell = server.services.sessions.audience.to_room
            await tell(created["id"], "quality", {"id": "applicant", "role": "applicant", "link": "uplink", "audio_only": True})
            shown = "!document.getElementById('quality-notice')?.hidden"
            await until(inspector, shown)
            await until(applicant, shown)
            assert "已切换为语音" in await inspector.inner_text("#quality-notice")
            assert "网络较差，已切换为语音" in await applicant.inner_text("#quality-notice")
            await applicant.screenshot(path=str(artifact("web-quality-audio-only-phone.png")))
            await inspector.screenshot(path=str(artifact("web-quality-audio-only-console.png")))
            await tell(created["id"], "quality", {"id": "applicant", "role": "applicant", "link": "uplink", "audio_only": False})
            await until(inspector, "document.getElementById('quality-notice').textContent.includes('视频已恢复')")
            await until(applicant, "document.getElementById('quality-notice').dataset.tone === 'ok'")
            assert inspector.js_errors == [] and applicant.js_errors == []


@browser_test
async def test_a_photo_taken_offline_is_kept_and_sent_when_the_network_is_back(tmp_path) -> None:
    from evidence.verify import verify_inspection
    from tests.web_client.test_session_ui import jpeg

    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            applicant = await phone(b, created["applicant_url"])
            await until(inspector, JOINED)
            await until(applicant, JOINED)
            await applicant.context.set_offline(True)
            await applicant.set_input_files("#photo-input", str(jpeg(tmp_path / "offline.jpg")))
            await until(applicant, "document.getElementById('notice').textContent.includes('已保存在手机上')")
            held = await applicant.evaluate("""async () => {
                const { waiting } = await import('/static/js/photo_queue.js');
                return (await waiting(window.takan.session.token)).map((e) => e.uploadId); }""")
            assert len(held) == 1 and len(held[0]) == 32, held  # the id of the try that failed, kept with it
            events = await server.services.journal.events(created["id"])
            assert not any(e["type"] == "photo.uploaded" for e in events)
            await applicant.context.set_offline(False)
            await until(applicant, "document.getElementById('notice').textContent.includes('已补传')", 40)
            events = await server.services.journal.events(created["id"])
            uploaded = [e for e in events if e["type"] == "photo.uploaded"]
            assert len(uploaded) == 1, uploaded
            data = uploaded[0]["data"]
            assert data["held_on_device"] is True and data["taken_at"] and data["received_at"]
            assert data["upload_id"] == held[0]  # a retry of it would be answered, not stored again
            assert data["taken_at"] < data["received_at"]
            await server.services.sessions.end_inspection(created["id"], actor="inspector")
            await server.services.decisions.idle()  # the verdict is sealed in the background
            report = await verify_inspection(server.services.store, created["id"])
            assert report.ok, report.problems
