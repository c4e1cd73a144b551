"""The session-action UI of the pages: checklist (prompt, capture still, photos), notes, chat,
location, signatures, the 8.2.3 timer and overtime dialog, and the auditor's page.

Real server (testkit.server) and real Chromium with fake camera; the pages are driven through
the DOM, and the server's evidence log is checked where the UI claims something was recorded.
Screenshots of each new UI state go to test-artifacts/ (web-ui-*.png).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from pathlib import Path

import aiohttp
from PIL import Image

from testkit.browser import artifact
from testkit.server import API_KEY, create_inspection, running_server
from tests.web_client.test_pages import JOINED, browser, browser_test, decoding, open_page, until, with_lang
from tests.web_client.catalogues import keys, page_scripts

STATIC = Path(__file__).resolve().parents[2] / "web_client" / "static"

CHECKPOINTS = [
    {"code": "storefront", "title": "门头招牌", "required": True},
    {"code": "kitchen", "title": "后厨操作间", "required": True},
    {"code": "license", "title": "营业执照悬挂", "required": False},
]
#: About 80 m from the test site (37.4355, 116.3594), inside its 300 m radius.
NEAR_SITE = {"latitude": 37.4360, "longitude": 116.3600, "accuracy": 12}


# ---- strings (no browser) ----------------------------------------------------------------


def _table(lang: str) -> set[str]:
    return keys(lang)


def test_every_key_the_new_ui_uses_is_in_both_tables() -> None:
    zh, en = _table("zh"), _table("en")
    assert zh == en
    used: set[str] = set()
    for js in page_scripts():
        used |= set(re.findall(r'\bt\("([\w.]+)"', js.read_text(encoding="utf-8")))
    for html in STATIC.glob("*.html"):
        used |= set(re.findall(r'data-i18n(?:-title|-aria|-placeholder)?="([\w.]+)"', html.read_text(encoding="utf-8")))
    # built at run time from protocol values
    used |= {f"act.{c}" for c in ("overtime_reason_required", "unavailable", "not_connected", "timeout", "forbidden")}
    used |= {f"timer.{p}" for p in ("warning", "final_warning", "limit")}
    used |= {f"status.{s}" for s in ("scheduled", "live", "ended", "judged", "reviewed", "cancelled", "interrupted")}
    used |= {f"track.{n}" for n in ("applicantVideo", "applicantAudio", "inspectorVideo", "inspectorAudio")}
    event_types = re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", (STATIC.parents[1] / "docs" / "evidence.md").read_text().split("Event types:")[1].split("\n\n")[0])
    assert "signature.signed" in event_types and "media.segment" in event_types
    used |= {f"ev.{e}" for e in event_types}
    assert sorted(used - zh) == []


# ---- helpers -----------------------------------------------------------------------------


def jpeg(path: Path, size: tuple[int, int] = (1600, 1200)) -> Path:
    image = Image.new("RGB", size, (196, 120, 52))
    for x in range(0, size[0], 100):
        for y in range(0, size[1], 100):
            if (x + y) // 100 % 2:
                image.paste((40, 80, 160), (x, y, x + 50, y + 50))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    path.write_bytes(buffer.getvalue())
    return path


async def phone(b, url: str, geolocation: bool = True, landscape: bool = False):
    """The applicant's page on a phone-sized context (location allowed unless told not to)."""
    viewport = {"width": 844, "height": 390} if landscape else {"width": 390, "height": 844}
    extra = {"permissions": ["geolocation"], "geolocation": NEAR_SITE} if geolocation else {}
    ctx = await b.new_context(viewport=viewport, is_mobile=True, has_touch=True, **extra)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    return page


async def draw_signature(page, strokes: int = 2) -> None:
    """Write something on the open signature pad with the mouse."""
    await until(page, "!document.getElementById('sigpad').hidden && document.getElementById('sigpad-canvas').width > 10")
    box = await page.locator("#sigpad-canvas").bounding_box()
    assert box and box["width"] > 100, box
    for s in range(strokes):
        x0 = box["x"] + box["width"] * (0.15 + 0.35 * s)
        y0 = box["y"] + box["height"] * 0.5
        await page.mouse.move(x0, y0)
        await page.mouse.down()
        for i in range(1, 16):
            await page.mouse.move(x0 + i * box["width"] * 0.018, y0 + (box["height"] * 0.12 if i % 4 < 2 else -box["height"] * 0.1))
        await page.mouse.up()


async def events_of(server, http, inspection_id: str) -> list[dict]:
    async with http.get(
        f"{server.base_url}/api/v1/inspections/{inspection_id}/objects/events.jsonl", headers=server.headers()
    ) as r:
        assert r.status == 200, await r.text()
        return [json.loads(line) for line in (await r.text()).splitlines() if line.strip()]


async def wait_event(server, http, inspection_id: str, type_: str, timeout_s: float = 20.0, **data) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ev in await events_of(server, http, inspection_id):
            if ev["type"] == type_ and all(ev["data"].get(k) == v for k, v in data.items()):
                return ev
        await asyncio.sleep(0.3)
    raise AssertionError(f"no {type_} {data} in the log after {timeout_s}s")


async def text(page, selector: str) -> str:
    return await page.inner_text(selector)


async def settled(page) -> None:
    """Wait for one-off CSS animations to finish (so that screenshots show the final state)."""
    await until(page, "document.getAnimations().every(a => a.effect.getTiming().iterations === Infinity || a.playState !== 'running')")


# ---- browser tests -----------------------------------------------------------------------


@browser_test
async def test_checklist_photos_notes_chat_and_location(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http, checkpoints=CHECKPOINTS)
        iid = created["id"]
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            applicant = await phone(b, created["applicant_url"])
            observer = await open_page(b, with_lang(created["observer_url"], "en"))
            for page in (inspector, applicant, observer):
                await until(page, JOINED)
            await decoding(inspector)

            # the checklist: one row per checkpoint, required ones marked, nothing captured yet
            rows = inspector.locator("#checklist .chk")
            assert await rows.count() == 3
            assert await inspector.get_attribute("[data-code=kitchen]", "data-required") == "true"
            assert await inspector.get_attribute("[data-code=license]", "data-required") == "false"
            assert "必查" in await text(inspector, "[data-code=storefront] .chk-tag")
            assert await inspector.inner_text("#chk-count") == "0/2"
            # the observer sees the list but none of the inspector's actions
            await until(observer, "document.querySelectorAll('#checklist .chk').length === 3")
            assert not await observer.is_visible("[data-code=storefront] .chk-capture")
            assert not await observer.is_visible("#btn-sign-request")
            assert "Required" in await text(observer, "[data-code=storefront] .chk-tag")

            # location: asked once after joining (permission granted here), shown with the distance
            await until(inspector, "document.getElementById('loc-chip').dataset.state === 'within'")
            assert "在现场范围内" in await text(inspector, "#loc-chip")
            assert re.search(r"距现场 \d+ m", await text(inspector, "#loc-chip"))
            await until(applicant, "document.getElementById('geo-chip').dataset.state === 'shared'")
            assert "已确认在现场" in await text(applicant, "#geo-chip")
            location = await wait_event(server, http, iid, "location.updated")
            assert location["data"]["within_radius"] is True and location["data"]["accuracy_m"] == 12

            # Prompt: the phone shows it prominently and preselects it in the picker
            await inspector.click("[data-code=kitchen] .chk-prompt")
            await until(applicant, "document.getElementById('task').dataset.prompted === 'true'")
            assert await text(applicant, "#task-title") == "后厨操作间"
            assert await applicant.input_value("#photo-checkpoint") == "kitchen"
            await until(inspector, "!document.querySelector('[data-code=kitchen] .chk-status').hidden")
            await settled(applicant)
            await applicant.screenshot(path=str(artifact("web-ui-join-prompt.png")))

            # Capture still: spinner while waiting, then a local preview marked as such
            await inspector.click("[data-code=storefront] .chk-capture")
            await until(inspector, "document.querySelector('[data-code=storefront]').dataset.state === 'captured'", 40)
            assert await inspector.get_attribute("[data-code=storefront]", "data-busy") == "false"
            still = inspector.locator("[data-code=storefront] .thumb-still")
            assert await still.count() == 1
            assert (await still.get_attribute("data-key")) == "stills/storefront/1.jpg"
            assert (await inspector.get_attribute("[data-code=storefront] .thumb-still img", "src")).startswith("data:image/jpeg")
            assert await text(inspector, "[data-code=storefront] .thumb-badge") == "预览"
            assert "1280×720" in await still.get_attribute("title")
            await wait_event(server, http, iid, "still.captured", checkpoint="storefront")
            await until(applicant, "document.getElementById('notice').textContent.includes('门头招牌')")

            # the applicant's photo: the file input, uploaded with the link token and the location
            photo = jpeg(tmp_path / "kitchen.jpg")
            await applicant.set_input_files("#photo-input", str(photo))
            await until(applicant, "document.getElementById('photo-status').dataset.tone === 'done'", 30)
            assert "后厨操作间" in await text(applicant, "#photo-status-text")
            await applicant.screenshot(path=str(artifact("web-ui-join-photo-uploaded.png")))
            await until(inspector, "document.querySelectorAll('[data-code=kitchen] .thumb-photo').length === 1")
            assert "KB" in await text(inspector, "[data-code=kitchen] .thumb-photo-size")
            assert await inspector.inner_text("#chk-count") == "2/2"
            uploaded = await wait_event(server, http, iid, "photo.uploaded", checkpoint="kitchen")
            assert uploaded["data"]["size"] == photo.stat().st_size
            assert uploaded["data"]["lat"] == NEAR_SITE["latitude"] and "taken_at" in uploaded["data"]
            await until(inspector, "!document.getElementById('stage-toast').hidden")
            await inspector.screenshot(path=str(artifact("web-ui-console-checklist.png")))

            # a file that is not a picture: refused with a clear message, and a retry button
            bogus = tmp_path / "notes.jpg"
            bogus.write_bytes(b"not an image at all")
            await applicant.select_option("#photo-checkpoint", "license")
            await applicant.set_input_files("#photo-input", str(bogus))
            await until(applicant, "document.getElementById('photo-status').dataset.tone === 'failed'", 30)
            assert "不是照片" in await text(applicant, "#photo-status-text")
            assert await applicant.is_visible("#photo-retry")

            # chat both ways; the console counts unread messages while the chat is not shown
            await applicant.click("#btn-chat")
            await applicant.fill("#chat-input", "您好，我在门口")
            await applicant.click("#chat-send")
            await until(inspector, "document.getElementById('chat-unread').textContent === '1'")
            assert await inspector.is_visible("#chat-unread")
            assert "您好，我在门口" in await text(inspector, "#stage-toast")
            await inspector.click("#tab-talk")
            assert await inspector.is_hidden("#chat-unread")
            await inspector.fill("#chat-input", "请拍一下后厨")
            await inspector.press("#chat-input", "Enter")
            await until(applicant, "document.querySelectorAll('#chat-list .chat-msg').length === 2")
            assert await applicant.get_attribute("#chat-list .chat-msg:last-child", "data-from") == "inspector"
            await until(observer, "document.querySelectorAll('#chat-list .chat-msg').length === 2")
            assert not await observer.is_visible("#chat-form")  # observers read the chat only
            await applicant.screenshot(path=str(artifact("web-ui-join-chat.png")))
            await wait_event(server, http, iid, "chat", text="请拍一下后厨")

            # a note about a checkpoint
            await inspector.select_option("#note-checkpoint", "storefront")
            await inspector.fill("#note-text", "门头招牌清晰，与营业执照一致")
            await inspector.click("#note-save")
            await until(inspector, "document.querySelectorAll('#notes-list li .note-text').length === 1")
            assert "已保存" in await text(inspector, "#note-status")
            assert "门头招牌" in await text(inspector, "#notes-list")
            note = await wait_event(server, http, iid, "note")
            assert note["data"] == {"text": "门头招牌清晰，与营业执照一致", "checkpoint": "storefront"}
            await inspector.screenshot(path=str(artifact("web-ui-console-notes-chat.png")))

            await inspector.click("#tab-info")
            assert "37.43600" in await text(inspector, "#loc-coords")
            await inspector.screenshot(path=str(artifact("web-ui-console-info.png")))

            # English: the new parts switch too
            await inspector.click(".topbar .lang-toggle")
            await inspector.click("#tab-checklist")
            assert await text(inspector, "[data-code=storefront] .chk-capture") == "Capture still"
            assert await text(inspector, "#btn-sign-request") == "Request signature"
            assert "On site" in await text(inspector, "#loc-chip")
            await inspector.screenshot(path=str(artifact("web-ui-console-en.png")))

            for page in (inspector, applicant, observer):
                assert page.js_errors == [], page.js_errors


@browser_test
async def test_signatures_on_both_pages(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http, checkpoints=CHECKPOINTS)
        iid = created["id"]
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            applicant = await phone(b, created["applicant_url"], geolocation=False)
            await until(inspector, JOINED)
            await until(applicant, JOINED)
            await until(applicant, "window.takan.state.status === 'live'")

            # "Request signature" opens the pad on the phone, full screen
            assert await inspector.get_attribute("#sig-applicant", "data-state") == "none"
            await inspector.click("#btn-sign-request")
            await until(inspector, "document.getElementById('sig-applicant').dataset.state === 'requested'")
            await until(applicant, "!document.getElementById('sigpad').hidden")
            assert await text(applicant, "#sigpad-title") == "检查员请您签名确认本次检查"
            card = await applicant.locator(".sigpad-card").bounding_box()
            assert card["width"] == 390 and card["height"] == 844, card
            await wait_event(server, http, iid, "signature.requested", role="applicant")

            # empty pad: nothing is sent
            await applicant.click("#sigpad-submit")
            assert "请先" in await text(applicant, "#sigpad-error")
            # strokes, undo, clear
            await draw_signature(applicant, strokes=2)
            assert await applicant.evaluate("() => window.takan.ui.sheet.pad.strokes.length") == 2
            await applicant.click("#sigpad-undo")
            assert await applicant.evaluate("() => window.takan.ui.sheet.pad.strokes.length") == 1
            await applicant.click("#sigpad-clear")
            assert await applicant.evaluate("() => window.takan.ui.sheet.pad.strokes.length") == 0
            await draw_signature(applicant, strokes=2)
            strokes = await applicant.evaluate("() => window.takan.ui.sheet.pad.payload().strokes")
            assert len(strokes) == 2 and len(strokes[0]) > 5
            assert all({"x", "y", "t"} == set(p) for s in strokes for p in s)
            times = [p["t"] for s in strokes for p in s]
            assert times == sorted(times) and times[0] >= 0
            await applicant.screenshot(path=str(artifact("web-ui-join-signature-pad.png")))
            await applicant.click("#sigpad-submit")
            await until(applicant, "document.getElementById('sigpad').dataset.state === 'signed'")
            code = await text(applicant, "#sigpad-code")
            assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}", code), code
            assert "哈希" in await text(applicant, "#sigpad-result")
            await applicant.screenshot(path=str(artifact("web-ui-join-signed.png")))

            # the console shows the applicant's code; the log binds the same code
            await until(inspector, "document.getElementById('sig-applicant').dataset.state === 'signed'")
            assert await text(inspector, "#sig-applicant-code .sig-code") == code
            signed = await wait_event(server, http, iid, "signature.signed", role="applicant")
            assert signed["data"]["code"] == code
            assert signed["data"]["binds_log_head"].upper().startswith(code.replace("-", ""))
            doc_path = tmp_path / "data" / "objects" / "inspections" / iid / "signatures" / "applicant-1.json"
            doc = json.loads(doc_path.read_text())
            assert doc["strokes"] == strokes and doc["code"] == code
            await applicant.click("#sigpad-done")
            assert await applicant.is_hidden("#sigpad")
            assert code in await text(applicant, "#btn-sign")

            # the inspector's own pad: a modal on the desktop
            await inspector.click("#btn-sign-own")
            await draw_signature(inspector, strokes=1)
            await inspector.screenshot(path=str(artifact("web-ui-console-signature-pad.png")))
            await inspector.click("#sigpad-submit")
            await until(inspector, "document.getElementById('sigpad').dataset.state === 'signed'")
            own = await text(inspector, "#sigpad-code")
            assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}", own) and own != code
            await inspector.screenshot(path=str(artifact("web-ui-console-signed.png")))
            await inspector.click("#sigpad-done")
            assert await inspector.get_attribute("#sig-inspector", "data-state") == "signed"
            assert (await inspector.get_attribute("#sig-inspector-img", "src")).startswith("data:image/png")
            assert await inspector.is_visible("#sig-explain")
            await wait_event(server, http, iid, "signature.signed", role="inspector")

            # the applicant can sign again from the button; landscape keeps the pad usable
            await applicant.set_viewport_size({"width": 844, "height": 390})
            await applicant.click("#btn-sign")
            await until(applicant, "document.getElementById('sigpad').dataset.state === 'empty'")
            await draw_signature(applicant, strokes=1)
            paper = await applicant.locator("#sigpad-paper").bounding_box()
            assert paper["width"] > 500 and paper["height"] > 250, paper
            await applicant.screenshot(path=str(artifact("web-ui-join-signature-landscape.png")))
            await applicant.click("#sigpad-cancel")
            assert await applicant.is_hidden("#sigpad")
            assert inspector.js_errors == [] and applicant.js_errors == []


@browser_test
async def test_timer_warnings_overtime_and_reload(tmp_path) -> None:
    # A 30 s limit: warning at 25 s, final warning at 29 s, the limit at 30 s.
    async with running_server(tmp_path / "data", ice_loopback="true", session_limit_s=30) as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http, checkpoints=CHECKPOINTS)
        iid = created["id"]
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            applicant = await phone(b, created["applicant_url"], geolocation=False)
            await until(inspector, JOINED)
            await until(applicant, JOINED)
            await until(inspector, "window.takan.state.status === 'live'")
            # no banner yet; the elapsed time counts from the server's started_at
            assert await inspector.is_hidden("#timer-banner")
            started = await inspector.evaluate("() => window.takan.session.startedAt")
            assert started and started.startswith("20")

            await until(inspector, "document.getElementById('timer-banner').dataset.phase === 'warning'", 60)
            await until(applicant, "document.getElementById('timer-banner').dataset.phase === 'warning'", 10)
            assert "30 秒" in await text(inspector, "#timer-banner")
            assert await applicant.is_visible("#timer-banner")
            await inspector.screenshot(path=str(artifact("web-ui-console-timer-warning.png")))
            await applicant.screenshot(path=str(artifact("web-ui-join-timer-warning.png")))
            await applicant.click("#timer-banner-close")
            # closed, unless the final warning (4 s later) came in meanwhile on a slow machine
            assert await applicant.evaluate(
                "() => { const b = document.getElementById('timer-banner'); return b.hidden || b.dataset.phase !== 'warning'; }"
            )

            await until(inspector, "document.getElementById('timer-banner').dataset.phase === 'final_warning'", 20)
            await until(applicant, "!document.getElementById('timer-banner').hidden", 10)  # a new phase shows again

            # the limit: the console asks for a reason; evidence actions are refused meanwhile
            await until(inspector, "document.getElementById('overtime-dialog').open", 20)
            await until(applicant, "document.getElementById('timer-banner').dataset.phase === 'limit'", 10)
            assert "检查员正在说明原因" in await text(applicant, "#timer-banner")
            await inspector.screenshot(path=str(artifact("web-ui-console-overtime-dialog.png")))
            await applicant.screenshot(path=str(artifact("web-ui-join-over-limit.png")))
            await inspector.keyboard.press("Escape")
            assert await inspector.evaluate("() => document.getElementById('overtime-dialog').open")

            await applicant.set_input_files("#photo-input", str(jpeg(tmp_path / "p.jpg")))
            await until(applicant, "document.getElementById('photo-status').dataset.tone === 'failed'", 30)
            assert "超过检查时限" in await text(applicant, "#photo-status-text")

            # after a reload the console learns the limit from the refusal itself
            await inspector.reload()
            await until(inspector, JOINED)
            elapsed = await inspector.inner_text("#elapsed-value")
            assert elapsed >= "00:29", elapsed  # not reset by the reload
            assert not await inspector.evaluate("() => document.getElementById('overtime-dialog').open")
            await inspector.click("[data-code=storefront] .chk-capture")
            await until(inspector, "document.getElementById('overtime-dialog').open", 30)
            assert await inspector.get_attribute("[data-code=storefront] .chk-error", "data-code") == "overtime_reason_required"
            assert "超时原因" in await text(inspector, "[data-code=storefront] .chk-error")

            # an empty reason is not sent; a reason closes the dialog on both pages
            await inspector.click("#overtime-submit")
            assert await inspector.is_visible("#overtime-error")
            await inspector.fill("#overtime-reason", "现场面积较大，仓库尚需查看")
            await inspector.click("#overtime-submit")
            await until(inspector, "!document.getElementById('overtime-dialog').open")
            await until(inspector, "!document.getElementById('overtime-chip').hidden")
            await until(applicant, "!document.getElementById('overtime-chip').hidden")
            assert await inspector.is_hidden("#timer-banner") and await applicant.is_hidden("#timer-banner")
            assert await inspector.is_hidden("[data-code=storefront] .chk-error")
            reason = await wait_event(server, http, iid, "timer.overtime_reason")
            assert reason["data"]["reason"] == "现场面积较大，仓库尚需查看"
            await inspector.screenshot(path=str(artifact("web-ui-console-overtime-given.png")))

            # evidence works again: the photo's retry goes through
            await applicant.click("#photo-retry")
            await until(applicant, "document.getElementById('photo-status').dataset.tone === 'done'", 30)
            for phase in ("warning", "final_warning", "limit"):
                await wait_event(server, http, iid, f"timer.{phase}")
            assert inspector.js_errors == [] and applicant.js_errors == []


@browser_test
async def test_audit_page_key_search_filters_and_unsealed(tmp_path) -> None:
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        first = await create_inspection(server, http, case_no="DZ-2026-000777")
        await create_inspection(server, http, case_no="DZ-2026-000888")
        async with browser() as b:
            page = await open_page(b, server.base_url + "/audit")
            await until(page, "!document.getElementById('view-login').hidden")
            await page.screenshot(path=str(artifact("web-ui-audit-login.png")))

            # a wrong key is refused and forgotten
            await page.fill("#api-key", "wrong-key-0000000000000")
            await page.click("#login-submit")
            await until(page, "!document.getElementById('login-error').hidden")
            assert await page.evaluate("() => sessionStorage.getItem('takan.auditKey')") is None

            await page.fill("#api-key", API_KEY)
            await page.click("#login-submit")
            await until(page, "document.querySelectorAll('#list-body tr').length === 2")
            assert await page.evaluate("() => sessionStorage.getItem('takan.auditKey')") == API_KEY
            assert await page.evaluate("() => localStorage.getItem('takan.auditKey')") is None

            # filters: case number, status, dates
            await page.fill("#f-case", "DZ-2026-000777")
            await page.click("#f-search")
            await until(page, "document.querySelectorAll('#list-body tr').length === 1")
            assert (await text(page, "#list-body")).startswith("DZ-2026-000777")
            await page.fill("#f-case", "")
            await page.select_option("#f-status", "ended")
            await page.click("#f-search")
            await until(page, "!document.getElementById('list-empty').hidden")
            await page.select_option("#f-status", "scheduled")
            await page.fill("#f-from", "2000-01-01")
            await page.fill("#f-to", "2100-01-01")
            await page.click("#f-search")
            await until(page, "document.querySelectorAll('#list-body tr').length === 2")
            await page.fill("#f-to", "2000-01-02")
            await page.click("#f-search")
            await until(page, "!document.getElementById('list-empty').hidden")
            await page.click("#f-reset")
            await until(page, "document.querySelectorAll('#list-body tr').length === 2")
            await page.screenshot(path=str(artifact("web-ui-audit-list.png")))

            # a scheduled inspection has no seal yet: the page says so (not as a failure)
            await page.click(f"#list-body tr[data-id='{first['id']}']")
            await until(page, "document.getElementById('verify').dataset.state === 'open'")
            assert "尚未封存" in await text(page, "#verify-title")
            assert await page.is_disabled("#dl-manifest")
            assert await page.is_hidden("#detail-error")
            await page.screenshot(path=str(artifact("web-ui-audit-unsealed.png")))

            # English, then back to the list; sign out forgets the key
            await page.click(".topbar .lang-toggle")
            assert await text(page, "#verify-title") == "Not sealed yet"
            await page.click("#back-link")
            await until(page, "!document.getElementById('view-list').hidden")
            await page.click("#btn-logout")
            await until(page, "!document.getElementById('view-login').hidden")
            assert await page.evaluate("() => sessionStorage.getItem('takan.auditKey')") is None
            assert page.js_errors == [], page.js_errors


@browser_test
async def test_audit_page_says_whether_the_timestamp_is_trusted(tmp_path) -> None:
    """Verified against the configured TSA CA, or covering the manifest from a TSA nobody vouched for, or failed."""
    from testkit.tsa import TsaServer, make_tsa_ca

    ca = make_tsa_ca(tmp_path / "tsa")
    tsa = TsaServer(ca)
    await tsa.start()
    try:
        async with running_server(tmp_path / "data", tsa_urls=tsa.url, tsa_ca_file=ca / "ca.crt") as server, aiohttp.ClientSession() as http:
            created = await create_inspection(server, http, case_no="DZ-2026-000999")
            await server.services.sessions.sealer.seal(created["id"])
            stamper = server.services.journal.timestamper
            assert stamper is not None and await stamper.idle(30), stamper.last_error
            async with browser() as b:
                page = await open_page(b, server.base_url + "/audit")
                await page.fill("#api-key", API_KEY)
                await page.click("#login-submit")
                await until(page, "document.querySelectorAll('#list-body tr').length === 1")
                await page.click(f"#list-body tr[data-id='{created['id']}']")
                await until(page, "document.getElementById('verify').dataset.state === 'ok'")
                assert "已按配置的时间戳机构 CA 验证（CN=Takan Test Root CA）" in await text(page, "#verify-detail")
                # the token's genTime as a local date and time, not ASN.1's 20261203131719Z
                assert re.search(r"可信时间戳 \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}，", await text(page, "#verify-detail"))
                await page.click(".topbar .lang-toggle")
                assert "verified against the configured TSA CA (CN=Takan Test Root CA)" in await text(page, "#verify-detail")
                await page.click(".topbar .lang-toggle")

                # the same report as a server without a TSA CA gives it, then a failed token
                async def report_as(route, changes: dict) -> None:
                    response = await route.fetch()
                    await route.fulfill(response=response, json={**await response.json(), **changes})

                await page.route("**/verification", lambda route: report_as(route, {"timestamp_trust": "untrusted", "timestamp_ca": None}))
                await page.click("#back-link")
                await page.click(f"#list-body tr[data-id='{created['id']}']")
                await until(page, "document.getElementById('verify').dataset.state === 'ok' && document.getElementById('verify-detail').textContent.includes('未经信任验证')")
                assert "未配置时间戳机构的 CA 证书" in await text(page, "#verify-detail")
                await page.unroute("**/verification")
                failed = {"ok": False, "timestamp": None, "timestamp_trust": "failed", "first_problem": "manifest.tsr: the TSA certificate CN=Takan Test TSA does not chain to a CA",
                          "problems": [{"where": "manifest.tsr", "message": "the TSA certificate CN=Takan Test TSA does not chain to a CA"}]}
                await page.route("**/verification", lambda route: report_as(route, failed))
                await page.click("#back-link")
                await page.click(f"#list-body tr[data-id='{created['id']}']")
                await until(page, "document.getElementById('verify').dataset.state === 'bad'")
                assert (await text(page, "#verify-detail")).startswith("可信时间戳未通过验证 · 第一个问题：manifest.tsr")
                assert page.js_errors == [], page.js_errors
    finally:
        await tsa.stop()
