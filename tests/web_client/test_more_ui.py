"""More page features: the second-device takeover, the applicant's one-time code, the 8.1.8
prudent warnings on the console, the clause 10 rating after the end, and the auditor's review.

Real server (testkit.server) and real Chromium with fake camera; screenshots of each new UI
state go to test-artifacts/ (web-more-*.png).
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from identity import totp
from testkit.browser import artifact
from testkit.server import API_KEY, create_inspection, running_server
from testkit.sockets import Participant
from tests.web_client.test_pages import (
    JOINED,
    browser,
    browser_test,
    decoding,
    open_page,
    until,
)
from tests.web_client.test_session_ui import events_of, phone, settled, text

DATA = Path(__file__).resolve().parents[1] / "approval" / "data"
APPLICANT_USCC = "91350100M000100Y43"  # the applicant of testkit.server.inspection_body
REVIEWER_PASSWORD = "Amber-Lantern-61-Harbour!"

#: Counts getUserMedia calls (the camera must not start before the join succeeds).
COUNT_GUM = """
window.__gum = 0;
const realGum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (c) => { window.__gum++; return realGum(c); };
"""


async def phone_with(b, url: str, init_script: str):
    ctx = await b.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await ctx.add_init_script(init_script)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    return page


async def overlay_view(page) -> str:
    return await page.evaluate("() => document.getElementById('overlay').hidden ? '' : document.getElementById('overlay').dataset.view")


async def count_events(server, http, iid: str, type_: str) -> int:
    return sum(1 for ev in await events_of(server, http, iid) if ev["type"] == type_)


async def server_answers_in_use(server, http) -> bool:
    """Does this server know `join {device, takeover}` and answer `in_use`? (a Socket.IO probe)"""
    probe = await create_inspection(server, http, case_no="DZ-2026-PROBE1")
    first, second = Participant(server.base_url, probe["applicant_url"]), Participant(server.base_url, probe["applicant_url"])
    try:
        if not (await first.connect() and await second.connect()):
            return False
        if not (await first.call("join", {"device": "probe-device-a"})).get("ok"):
            return False
        ack = await second.call("join", {"device": "probe-device-b"})
        return (ack.get("error") or {}).get("code") == "in_use"
    finally:
        await first.close()
        await second.close()


# ---- 1. the same link on a second device -----------------------------------------------------


@browser_test
async def test_takeover_dialog_and_continue_here(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        if not await server_answers_in_use(server, http):
            pytest.skip("the server does not answer `in_use` to a second device's join yet (signaling/sockets.py)")
        created = await create_inspection(server, http)
        iid = created["id"]
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            first = await phone(b, created["applicant_url"], geolocation=False)
            await until(inspector, JOINED)
            await until(first, JOINED)
            device = await first.evaluate("() => window.takan.session.device")
            assert len(device) == 32 and device == await first.evaluate("() => sessionStorage.getItem('takan.device')")

            # a second phone opens the same link: it asks, and nothing starts meanwhile
            second = await phone_with(b, created["applicant_url"], COUNT_GUM)
            await until(second, "document.getElementById('overlay').dataset.view === 'inuse' && !document.getElementById('overlay').hidden")
            assert await second.evaluate("() => window.__gum") == 0
            assert await second.evaluate("() => window.takan.session.pc") is None
            body = await text(second, "#overlay")
            assert "此链接已在另一台设备上打开" in body and "另一台设备将被断开" in body
            assert await text(second, "#overlay [data-action='inuse.continue']") == "在此设备继续"
            assert await text(second, "#overlay [data-action='inuse.cancel']") == "取消"
            assert await first.evaluate("() => window.takan.session.final") is None  # not displaced by asking
            await settled(second)
            await second.screenshot(path=str(artifact("web-more-takeover-dialog.png")))
            # the dialog follows the language
            await second.click("#overlay .overlay-lang")
            assert "This link is open on another device" in await text(second, "#overlay")
            assert await text(second, "#overlay [data-action='inuse.continue']") == "Continue here"
            await second.screenshot(path=str(artifact("web-more-takeover-dialog-en.png")))
            await second.click("#overlay .overlay-lang")

            # Continue: the session moves to the second phone; the first one says why it stopped
            await second.click("#overlay [data-action='inuse.continue']")
            await until(second, JOINED)
            await until(first, "window.takan.session.final === 'kicked'")
            assert await overlay_view(first) == "final-kicked"
            assert await overlay_view(second) == ""
            assert await second.evaluate("() => window.__gum") >= 1
            await decoding(inspector)
            await settled(first)
            await first.screenshot(path=str(artifact("web-more-takeover-displaced.png")))
            assert await count_events(server, http, iid, "participant.takeover") == 1

            # a reload of the same tab is the same device: no question
            await second.reload()
            await until(second, JOINED)
            assert await overlay_view(second) == ""
            assert await count_events(server, http, iid, "participant.takeover") == 1

            # a third phone asks and is told no: it disconnects and says where the session is
            third = await phone(b, created["applicant_url"], geolocation=False)
            await until(third, "document.getElementById('overlay').dataset.view === 'inuse'")
            await third.click("#overlay [data-action='inuse.cancel']")
            await until(third, "document.getElementById('overlay').dataset.view === 'inuse-declined'")
            await until(third, "!window.takan.session.socket.connected")
            assert "另一台设备上继续" in await text(third, "#overlay")
            await asyncio.sleep(1)
            assert await second.evaluate("() => window.takan.session.final") is None
            assert await second.evaluate("() => window.takan.state.joined") is True
            await settled(third)
            await third.screenshot(path=str(artifact("web-more-takeover-declined.png")))

            # the displaced first phone: "Continue on this page" takes over at once (already confirmed)
            async with first.expect_navigation():
                await first.click("#overlay [data-action='btn.here']")
            await until(first, JOINED)
            assert await overlay_view(first) == ""
            await until(second, "window.takan.session.final === 'kicked'")
            assert await count_events(server, http, iid, "participant.takeover") == 2

            # the third phone changes its mind
            await third.click("#overlay [data-action='inuse.continue']")
            await until(third, JOINED)
            await until(first, "window.takan.session.final === 'kicked'")
            await decoding(inspector)
            for page in (inspector, first, second, third):
                assert page.js_errors == [], page.js_errors


# ---- 2. the applicant's one-time code --------------------------------------------------------


@browser_test
async def test_applicant_one_time_code(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true", applicant_otp="true") as server, aiohttp.ClientSession() as http:
        sender = getattr(server.services, "otp_sender", None)
        if sender is None or not hasattr(sender, "sent"):
            pytest.skip("the server has no applicant one-time code sender (services.otp_sender.sent) yet")
        created = await create_inspection(server, http)
        iid = created["id"]
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            await until(inspector, JOINED)
            applicant = await phone_with(b, created["applicant_url"], COUNT_GUM)
            await until(applicant, "!document.getElementById('otp').hidden")
            code_input = applicant.locator("#otp-code")
            assert await code_input.get_attribute("inputmode") == "numeric"
            assert await code_input.get_attribute("autocomplete") == "one-time-code"
            assert "138****0000" in await text(applicant, "#otp-sent")
            assert await applicant.evaluate("() => document.activeElement.id") == "otp-code"
            # no camera before the code is verified and the join succeeds
            assert await applicant.evaluate("() => window.__gum") == 0
            assert await applicant.evaluate("() => window.takan.state.joined") is False
            assert await applicant.is_hidden("#overlay")
            (_, phone_number, code) = sender.sent[-1]
            assert phone_number == "13800000000" and len(code) == 6
            await settled(applicant)
            await applicant.screenshot(path=str(artifact("web-more-otp.png")))

            # too short: said, not sent; a wrong code: the tries left
            await code_input.fill("12")
            await applicant.click("#otp-submit")
            assert "6 位" in await text(applicant, "#otp-msg")
            wrong = "000000" if code != "000000" else "111111"
            await code_input.fill(wrong)  # six digits submit by themselves
            await until(applicant, "document.getElementById('otp-msg').textContent.includes('还可尝试 4 次')")
            assert await applicant.get_attribute("#otp-msg", "data-tone") == "bad"
            assert await applicant.evaluate("() => window.__gum") == 0
            await applicant.screenshot(path=str(artifact("web-more-otp-wrong.png")))

            # "send again" right away: the server's rate limit, in words
            await applicant.click("#otp-resend")
            await until(applicant, "document.getElementById('otp-msg').textContent.includes('秒后再重新发送')")
            await applicant.screenshot(path=str(artifact("web-more-otp-resend-limited.png")))
            assert len(sender.sent) == 1

            # the right code: joined, then the camera starts
            await code_input.fill(code)
            await until(applicant, JOINED)
            assert await applicant.is_hidden("#otp")
            assert await applicant.evaluate("() => window.__gum") >= 1
            await until(applicant, "window.takan.state.status === 'live'")
            assert await count_events(server, http, iid, "participant.verified") == 1

            # a reload of the same tab was verified already
            await applicant.reload()
            await until(applicant, JOINED)
            assert await applicant.is_hidden("#otp")
            assert len(sender.sent) == 1
            assert inspector.js_errors == [] and applicant.js_errors == []


# ---- 3. prudent warnings on the console ------------------------------------------------------


def dishonest_csv() -> bytes:
    """The sample list of tests/approval/data plus an entry for the test applicant."""
    rows = list(csv.reader(io.StringIO((DATA / "dishonest.csv").read_text(encoding="utf-8-sig"))))
    header, sample = rows[0], rows[1]
    ours = list(sample)
    ours[0] = str(len(rows))
    ours[1] = "德州某某餐饮有限公司"
    ours[2] = APPLICANT_USCC
    ours[3] = "拒不履行法院生效判决（测试）"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, sample, ours])
    return out.getvalue().encode("utf-8")


@browser_test
async def test_prudent_warnings_panel_and_banner(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.base_url}/api/v1/warning-lists/dishonest",
            data=dishonest_csv(),
            headers=server.headers(**{"Content-Type": "text/csv", "X-Filename": "dishonest-test.csv"}),
        ) as r:
            assert r.status == 201, await r.text()
        created = await create_inspection(server, http)
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            applicant = await phone(b, created["applicant_url"], geolocation=False)
            observer = await open_page(b, created["observer_url"])
            for page in (inspector, applicant, observer):
                await until(page, JOINED)
            warnings = await inspector.evaluate("() => window.takan.session.warnings")
            assert [w["kind"] for w in warnings] == ["dishonest"], warnings

            # the panel on top of the side, whatever tab is open
            await until(inspector, "!document.getElementById('prudent').hidden")
            panel = await text(inspector, "#prudent")
            assert "审慎预警" in panel and "失信主体名单" in panel
            assert "拒不履行法院生效判决（测试）" in panel and APPLICANT_USCC in panel
            assert await inspector.inner_text("#prudent-count") == "1"
            box = await inspector.locator("#prudent").bounding_box()
            tabs = await inspector.locator(".tabs").bounding_box()
            assert box["y"] < tabs["y"], (box, tabs)
            await inspector.click("#tab-info")
            assert await inspector.is_visible("#prudent")
            await inspector.click("#tab-checklist")

            # the banner, once: dismissed, it stays away after a reload; the panel stays
            assert await inspector.is_visible("#prudent-banner")
            assert "失信主体名单" in await text(inspector, "#prudent-banner")
            await settled(inspector)
            await inspector.screenshot(path=str(artifact("web-more-console-prudent.png")))
            await inspector.click("#prudent-banner-close")
            assert await inspector.is_hidden("#prudent-banner")
            await inspector.reload()
            await until(inspector, JOINED)
            await until(inspector, "!document.getElementById('prudent').hidden")
            assert await inspector.is_hidden("#prudent-banner")

            # English
            await inspector.click(".topbar .lang-toggle")
            assert "Dishonest entities list" in await text(inspector, "#prudent")
            assert "Prudent warnings" in await text(inspector, "#prudent")
            await inspector.screenshot(path=str(artifact("web-more-console-prudent-en.png")))

            # only the inspector is told
            assert await observer.is_hidden("#prudent") and await observer.is_hidden("#prudent-banner")
            assert await applicant.evaluate("() => window.takan.session.warnings.length") == 0
            for page in (inspector, applicant, observer):
                assert page.js_errors == [], page.js_errors


# ---- 4. the applicant rates the service after the end ----------------------------------------


@browser_test
async def test_rating_card_after_the_end(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        iid = created["id"]
        async with browser() as b:
            inspector = await open_page(b, created["inspector_url"])
            applicant = await phone(b, created["applicant_url"], geolocation=False)
            await until(inspector, JOINED)
            await until(applicant, JOINED)
            assert await applicant.is_hidden("#rating")

            await inspector.click("#btn-end")
            await inspector.click("#end-confirm")
            await until(applicant, "document.getElementById('overlay').dataset.view === 'final-ended'")
            await until(applicant, "!document.getElementById('rating').hidden")
            assert "服务评价" in await text(applicant, "#rating")
            assert await applicant.is_disabled("#rating-submit")  # a score first
            assert await applicant.locator("#rating .star").count() == 5
            await applicant.click("#rating .star[data-score='4']")
            assert await text(applicant, "#rating-label") == "满意"
            assert await applicant.get_attribute("#rating .star[data-score='4']", "aria-checked") == "true"
            assert await applicant.locator("#rating .star.on").count() == 4
            await applicant.fill("#rating-comment", "检查员讲解清楚，效率很高")
            await settled(applicant)
            await applicant.screenshot(path=str(artifact("web-more-rating.png")))
            await applicant.click("#rating-submit")
            await until(applicant, "!document.getElementById('rating-done').hidden")
            assert "感谢您的评价" in await text(applicant, "#rating-done")
            assert await applicant.is_hidden("#rating-submit")
            await applicant.screenshot(path=str(artifact("web-more-rating-thanks.png")))
            stored = await server.services.evaluations.get(iid)
            assert stored is not None and stored.score == 4 and stored.comment == "检查员讲解清楚，效率很高"

            # the link opened again later: "inspection ended" with the card, already rated
            await applicant.reload()
            await until(applicant, "document.getElementById('overlay').dataset.view === 'error-inspection_ended'")
            await until(applicant, "!document.getElementById('rating-done').hidden")
            assert "已评价" in await text(applicant, "#rating-done")
            # another phone (nothing remembered): the server's 409 says the same
            other = await phone(b, created["applicant_url"], geolocation=False)
            await until(other, "!document.getElementById('rating').hidden")
            await other.click("#rating .star[data-score='2']")
            await other.click("#rating-submit")
            await until(other, "!document.getElementById('rating-done').hidden")
            assert "已评价" in await text(other, "#rating-done")
            await other.click("#overlay .overlay-lang")
            assert "Already rated" in await text(other, "#rating-done")
            await other.screenshot(path=str(artifact("web-more-rating-already-en.png")))
            assert (await server.services.evaluations.get(iid)).score == 4
            for page in (inspector, applicant, other):
                assert page.js_errors == [], page.js_errors


# ---- 5. the auditor reviews a judged inspection ----------------------------------------------


async def judged_inspection(server, http, case_no: str = "DZ-2026-000123") -> dict:
    """An inspection that went live (two participants over Socket.IO), ended and was judged."""
    created = await create_inspection(server, http, case_no=case_no)
    inspector = Participant(server.base_url, created["inspector_url"])
    applicant = Participant(server.base_url, created["applicant_url"])
    try:
        for p in (inspector, applicant):
            assert await p.connect()
        assert (await inspector.call("join", {}))["ok"]
        assert (await applicant.call("join", {}))["ok"]
        ended = await inspector.call("end", {})
        assert ended["ok"], ended
    finally:
        await applicant.close()
        await inspector.close()
    deadline = time.monotonic() + 30
    while server.services.book.get(created["id"]).status != "judged":
        assert time.monotonic() < deadline, server.services.book.get(created["id"]).status
        await server.services.decisions.idle()
        await asyncio.sleep(0.1)
    return created


async def audit_page(b, server, key: str, iid: str, lang: str = "zh"):
    page = await open_page(b, f"{server.base_url}/audit?lang={lang}")
    await until(page, "!document.getElementById('view-login').hidden")
    await page.fill("#api-key", key)
    await page.click("#login-submit")
    await until(page, "!document.getElementById('view-list').hidden")
    await page.evaluate(f"() => {{ location.hash = '#/i/{iid}'; }}")
    await until(page, "!document.getElementById('review').hidden")
    return page


@browser_test
async def test_review_panel_on_a_judged_inspection(tmp_path) -> None:
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        created = await judged_inspection(server, http)
        iid = created["id"]
        verdict = server.services.book.get(iid).verdict
        assert verdict["reasons"], verdict
        query_only = await server.services.keys.issue("auditor-no-review", ("query",))
        async with browser() as b:
            page = await audit_page(b, server, API_KEY, iid)
            # the verdict and every reason, in Chinese; the form for a judged inspection
            outcome = {"pass": "通过", "fail": "不通过", "manual_review": "转人工复核"}[verdict["outcome"]]
            assert await text(page, "#review-outcome") == outcome
            assert await page.get_attribute("#review-outcome", "data-outcome") == verdict["outcome"]
            assert await page.locator("#review-reasons .reason").count() == len(verdict["reasons"])
            reasons = await text(page, "#review-reasons")
            for reason in verdict["reasons"]:
                assert reason["message"] in reasons and reason["rule"] in reasons
            assert await page.is_visible("#review-form")
            assert await page.is_hidden("#review-result")
            # nothing chosen: said, not sent
            await page.click("#review-submit")
            assert "请选择" in await text(page, "#review-error")
            await page.set_viewport_size({"width": 1366, "height": 1900})  # the whole card, no sticky-header overlap
            await page.screenshot(path=str(artifact("web-more-audit-review.png")))

            # English shows the English messages
            await page.click(".topbar .lang-toggle")
            reasons_en = await text(page, "#review-reasons")
            assert verdict["reasons"][0]["message_en"] in reasons_en
            assert "Verdict and review" in await text(page, "#review")
            assert await text(page, "#review-error") == "Choose pass or fail"
            await page.screenshot(path=str(artifact("web-more-audit-review-en.png")))
            await page.click(".topbar .lang-toggle")

            # a key without the review permission: the server's 403, shown
            other = await audit_page(b, server, query_only.token, iid)
            await other.check("#review-form input[value='fail']")
            await other.click("#review-submit")
            await until(other, "!document.getElementById('review-error').hidden && document.getElementById('review-error').textContent.includes('没有复核权限')")
            assert server.services.book.get(iid).status == "judged"
            await other.set_viewport_size({"width": 1366, "height": 1900})
            await other.screenshot(path=str(artifact("web-more-audit-review-forbidden.png")))

            # the review: pass, with a comment; the page shows the result and the new status
            await page.check("#review-form input[value='pass']")
            await page.fill("#review-comment", "现场影像齐全，人工复核通过")
            await page.click("#review-submit")
            await until(page, "!document.getElementById('review-result').hidden")
            assert "已复核：通过" in await text(page, "#review-result")
            assert "现场影像齐全，人工复核通过" in await text(page, "#review-result")
            assert await page.is_hidden("#review-form")
            assert await page.get_attribute("#d-status", "data-status") == "reviewed"
            await until(page, "document.querySelector('#timeline .ev[data-type=review]')")
            assert "人工复核" in await text(page, "#timeline .ev[data-type=review]")
            assert "规则判定" in await text(page, "#timeline .ev[data-type=verdict]")
            record = server.services.book.get(iid)
            assert record.status == "reviewed" and record.verdict["review"]["outcome"] == "pass"
            assert record.verdict["review"]["comment"] == "现场影像齐全，人工复核通过"
            await page.screenshot(path=str(artifact("web-more-audit-reviewed.png")))

            # opened again: the review is shown, no form
            await page.reload()
            await until(page, "!document.getElementById('review-result').hidden")
            assert await page.is_hidden("#review-form")

            # a logged-in reviewer (the staff cookie, no key) reviews another one: fail
            second = await judged_inspection(server, http, case_no="DZ-2026-000124")
            _, uri = await server.services.accounts.create("review.zhao", "赵复核", ["reviewer"], REVIEWER_PASSWORD, must_change_password=False)
            secret = parse_qs(urlsplit(uri).query)["secret"][0]
            staff = await open_page(b, f"{server.base_url}/audit")
            status = await staff.evaluate(
                """async (body) => (await fetch('/api/v1/auth/login', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                                     body: JSON.stringify(body)})).status""",
                {"user_id": "review.zhao", "password": REVIEWER_PASSWORD, "totp": totp.code_at(secret, totp.step_at(time.time()))},
            )
            assert status == 200
            await staff.goto(f"{server.base_url}/audit#/i/{second['id']}")
            await staff.reload()  # the page learns of the login when it loads
            await until(staff, "!document.getElementById('review').hidden")
            assert await staff.evaluate("() => sessionStorage.getItem('takan.auditKey')") is None
            await staff.check("#review-form input[value='fail']")
            await staff.fill("#review-comment", "冷藏设施未见温度显示")
            await staff.click("#review-submit")
            await until(staff, "!document.getElementById('review-result').hidden")
            assert "已复核：不通过" in await text(staff, "#review-result")
            reviewed = server.services.book.get(second["id"]).verdict["review"]
            assert reviewed["outcome"] == "fail" and "review.zhao" in reviewed["reviewer"]
            await staff.locator("#review-result").screenshot(path=str(artifact("web-more-audit-reviewed-staff.png")))
            for p in (page, other, staff):
                assert p.js_errors == [], p.js_errors
