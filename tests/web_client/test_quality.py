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
