"""The inspector's workbench in Chromium (issue 11, "How shown"): log in with password and
TOTP, find the assigned inspection, send the link, run the session with the applicant's
page, end it; the evidence names the inspector. And the console's refusal without a login."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp

from identity import totp
from testkit.browser import artifact
from testkit.server import create_inspection, running_server
from tests.web_client.test_pages import JOINED, browser, browser_test, open_page, until

STRONG = "Correct-Horse-42-Battery!"


async def settle(page, expression: str, timeout_s: float = 25.0) -> None:
    """``until`` across the page's own navigations (login -> workbench -> console)."""
    from playwright.async_api import Error

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await page.evaluate(f"async () => !!({expression})"):
                return
        except Error as exc:
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
        await asyncio.sleep(0.2)
    raise AssertionError(f"not true after {timeout_s}s on {page.url}: {expression}")


async def inspector_account(server, user_id: str = "zhang.san", name: str = "张三") -> str:
    _, uri = await server.services.accounts.create(user_id, name, ["inspector"], STRONG, must_change_password=False)
    return parse_qs(urlsplit(uri).query)["secret"][0]


async def log_in(page, user_id: str, secret: str) -> None:
    await settle(page, "document.getElementById('signin-form') && !document.getElementById('signin-form').hidden")
    await page.fill("#user-id", user_id)
    await page.fill("#password", STRONG)
    await page.fill("#totp", totp.code_at(secret, totp.step_at(time.time())))
    await page.click("#signin-submit")


@browser_test
async def test_an_inspector_logs_in_sends_the_link_runs_and_ends_the_session(tmp_path) -> None:
    async with running_server(tmp_path / "data", ice_loopback="true", inspector_login="required") as server, aiohttp.ClientSession() as http:
        secret = await inspector_account(server)
        created = await create_inspection(server, http, inspector_user_id="zhang.san")
        async with browser() as b:
            desk = await open_page(b, server.base_url + "/workbench")
            await log_in(desk, "zhang.san", secret)  # /workbench sent us to /login?next=/workbench
            await settle(desk, "location.pathname === '/workbench' && document.querySelector('#wb-body tr')")
            row = await desk.inner_text(f"#wb-body tr[data-id='{created['id']}']")
            assert "DZ-2026-000123" in row and "待开始" in row and "德州市德城区某路1号" in row
            assert "13800000000" not in row  # the phone is masked
            await desk.screenshot(path=str(artifact("workbench-list.png")))

            # send the applicant's link: the dialog has the link and its QR code, and the SMS goes
            await desk.click(f"#wb-body tr[data-id='{created['id']}'] [data-action='wb.sendLink']")
            await settle(desk, "document.getElementById('wb-link-dialog').open")
            applicant_url = await desk.input_value("#wb-link")
            assert applicant_url.startswith(server.base_url + "/join#")
            await desk.click("#wb-sms")
            await settle(desk, "document.getElementById('wb-link-status').dataset.result === 'sent'")
            assert server.services.text_sender.sent[-1][1] == "13800000000"
            await desk.click("#wb-link-dialog button[type=submit]")

            # start: the console opens with this login, the applicant joins from a phone
            await desk.click(f"#wb-body tr[data-id='{created['id']}'] [data-action='wb.start']")
            await settle(desk, "location.pathname === '/console' && window.takan")
            phone = await open_page(b, applicant_url, mobile=True)
            await until(desk, JOINED, 40)
            await until(phone, JOINED, 40)
            await until(desk, "window.takan.state.status === 'live'")
            await desk.screenshot(path=str(artifact("workbench-console-live.png")))
            await desk.click("#btn-end")
            await settle(desk, "document.getElementById('end-dialog').open")
            await desk.click("#end-confirm")
            for _ in range(100):
                if server.services.book.get(created["id"]).status in ("ended", "judged"):
                    break
                await asyncio.sleep(0.2)
            assert server.services.book.get(created["id"]).end_reason == "ended"
            for page in (desk, phone):
                assert page.js_errors == [], page.js_errors

        events = await server.services.journal.events(created["id"])
        mine = [e for e in events if e["actor"] == "inspector"]
        assert {"participant.joined", "session.ended"} <= {e["type"] for e in mine}
        assert all(e["data"].get("staff") == {"user_id": "zhang.san", "name": "张三"} for e in mine), mine
        async with http.get(f"{server.base_url}/api/v1/inspections/{created['id']}/manifest", headers=server.headers()) as r:
            manifest = json.dumps(json.loads(await r.read()), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        assert '"inspector":{"name":"张三","user_id":"zhang.san"}' in manifest


@browser_test
async def test_the_console_without_a_login_says_whose_it_is_and_offers_the_login(tmp_path) -> None:
    async with running_server(tmp_path / "data", inspector_login="required") as server, aiohttp.ClientSession() as http:
        await inspector_account(server)
        created = await create_inspection(server, http, inspector_user_id="zhang.san")
        async with browser() as b:
            page = await open_page(b, created["inspector_url"])
            await settle(page, "document.body.innerText.includes('请先登录')")
            text = await page.inner_text("body")
            assert "张三" in text and "zhang.san" in text  # whose inspection it is
            assert await page.is_visible("text=登录")
            await page.screenshot(path=str(artifact("workbench-console-login-required.png")))
