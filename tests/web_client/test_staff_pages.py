"""The staff pages: /login (password + TOTP, forced password change), /admin (accounts,
TOTP enrolment, webhook deliveries) and /audit used with the login cookie instead of a key.

Real server (testkit.server) and real Chromium, driven through the DOM. Screenshots of each
state go to test-artifacts/ (staff-*.png).
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import qrcode
from qrcode.constants import ERROR_CORRECT_M

from approval.outbox import EVENTS, STATES, Attempt, rfc3339_at
from identity import totp
from identity.permissions import ROLES
from testkit.browser import artifact
from testkit.server import create_inspection, running_server
from takan.protocol import constants
from tests.web_client.test_pages import browser, browser_test, open_page, until
from tests.web_client.catalogues import keys

STATIC = Path(__file__).resolve().parents[2] / "web_client" / "static"

ADMIN_PASSWORD = "Correct-Horse-42-Battery!"
ADMIN_NEW_PASSWORD = "Blue-Kettle-93-Morning!"
AUDITOR_NEW_PASSWORD = "Quiet-River-58-Lantern#"


# ---- strings and routes (no browser) --------------------------------------------------------


def _table(lang: str) -> set[str]:
    return keys(lang)


def test_keys_built_from_server_values_are_in_both_tables() -> None:
    zh, en = _table("zh"), _table("en")
    wanted = {f"staffRole.{r}" for r in ROLES} | {f"staffRole.{r}.desc" for r in ROLES}
    wanted |= {f"hook.state.{s}" for s in STATES} | {f"hook.event.{e}" for e in EVENTS}
    assert sorted(wanted - zh) == [] and sorted(wanted - en) == []
    # the admin page's role list is the server's (served by /api/v1/protocol)
    admin_js = (STATIC / "js" / "admin.js").read_text(encoding="utf-8")
    assert "const ROLES = PROTOCOL.roles.staff;" in admin_js
    assert constants()["roles"]["staff"] == list(ROLES)


async def test_login_and_admin_pages_are_served(tmp_path) -> None:
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        for path, script in (("/login", "login.js"), ("/admin", "admin.js")):
            async with http.get(server.base_url + path) as r:
                assert r.status == 200
                assert r.headers["Cache-Control"] == "no-store"
                assert f'src="/static/js/{script}"' in await r.text()


# ---- helpers --------------------------------------------------------------------------------


def secret_of(uri: str) -> str:
    assert uri.startswith("otpauth://totp/"), uri
    return parse_qs(urlsplit(uri).query)["secret"][0]


class Authenticator:
    """The staff member's phone: the code of a secret's current step, never one twice.

    The server accepts one step either side of its own and refuses a step at or before the
    last one it accepted, so a second login within 30 s uses the next step's code.
    """

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    async def code(self, secret: str, accepted: bool = True) -> str:
        """The code to type; ``accepted=False`` for a login that fails before the code counts."""
        while True:
            now = totp.step_at(time.time())
            step = max(now, self.last.get(secret, -1) + 1)
            if step <= now + 1:
                break
            await asyncio.sleep(0.5)
        if accepted:
            self.last[secret] = step
        return totp.code_at(secret, step)


async def settle(page, expression: str, timeout_s: float = 20.0) -> None:
    """Like ``until``, but across the page's own navigations (login -> next page)."""
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


async def visible(page, element_id: str, timeout_s: float = 20.0) -> None:
    """Wait until the element is shown (laid out, or an open dialog)."""
    await settle(page, f"(() => {{ const e = document.getElementById('{element_id}'); return e && (e.open || !e.hidden && e.offsetParent !== null); }})()", timeout_s)


async def login(page, phone: Authenticator, user_id: str, password: str, secret: str, accepted: bool = True) -> None:
    await visible(page, "signin-form")
    await page.fill("#user-id", user_id)
    await page.fill("#password", password)
    await page.fill("#totp", await phone.code(secret, accepted))
    await page.click("#signin-submit")


async def change_password(page, phone: Authenticator, old: str, new: str, secret: str, screenshot: str = "") -> None:
    await visible(page, "change-form")
    await page.fill("#old-password", old)
    await page.fill("#new-password", new)
    await page.fill("#repeat-password", new)
    await page.click("#change-submit")
    await visible(page, "relogin-form")
    if screenshot:
        await page.screenshot(path=str(artifact(screenshot)))
    await page.fill("#relogin-totp", await phone.code(secret))
    await page.click("#relogin-submit")


async def row_text(page, user_id: str) -> str:
    return await page.inner_text(f"#accounts-body tr[data-user='{user_id}']")


async def confirm(page) -> None:
    await until(page, "document.getElementById('confirm-dialog')?.open")
    await page.click("#confirm-yes")
    await until(page, "!document.getElementById('confirm-dialog')")


async def me_status(page) -> int:
    return await page.evaluate("async () => (await fetch('/api/v1/auth/me', {credentials: 'same-origin'})).status")


def python_qr(text: str, version: int, mask: int) -> list[str]:
    qr = qrcode.QRCode(version=version, error_correction=ERROR_CORRECT_M, mask_pattern=mask, border=0)
    qr.add_data(text.encode(), optimize=0)
    qr.make(fit=False)
    return ["".join("1" if m else "0" for m in row) for row in qr.modules]


async def page_qr(page, text: str) -> dict:
    return await page.evaluate(
        """async (text) => {
          const { encode } = await import('/static/js/qr.js');
          const r = encode(text);
          return { version: r.version, mask: r.mask, rows: r.modules.map((row) => row.map((m) => (m ? '1' : '0')).join('')) };
        }""",
        text,
    )


# ---- browser tests --------------------------------------------------------------------------


@browser_test
async def test_next_is_only_ever_a_path_on_this_site(tmp_path) -> None:
    cases = {
        "/audit": "/audit",
        "/audit#/i/insp_1": "/audit#/i/insp_1",
        "/admin?x=1": "/admin?x=1",
        "//evil.example/x": None,
        "/\\evil.example": None,
        "https://evil.example/": None,
        "javascript:alert(1)": None,
        "/login?next=/admin": None,
        "": None,
    }
    async with running_server(tmp_path / "data") as server, browser() as b:
        page = await open_page(b, server.base_url + "/login")
        got = await page.evaluate(
            "async (cases) => { const { safeNext } = await import('/static/js/staff.js'); return Object.fromEntries(cases.map((c) => [c, safeNext(c)])); }",
            list(cases),
        )
        assert got == cases
        landing = await page.evaluate(
            "async () => { const { landingFor } = await import('/static/js/staff.js'); return [landingFor({roles: ['admin']}), landingFor({roles: ['auditor']}), landingFor({roles: ['inspector']})]; }"
        )
        assert landing == ["/admin", "/audit", "/workbench"]  # inspectors land on their workbench (issue 11)


@browser_test
async def test_the_page_qr_encoder_matches_the_python_one(tmp_path) -> None:
    texts = [
        "a",
        "otpauth://totp/Takan:audit.wang?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Takan&algorithm=SHA1&digits=6&period=30",
        "踏勘 Takan " * 12,
        "x" * 400,
        "q" * 2300,
    ]
    async with running_server(tmp_path / "data") as server, browser() as b:
        page = await open_page(b, server.base_url + "/login")
        for text in texts:
            got = await page_qr(page, text)
            fit = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
            fit.add_data(text.encode(), optimize=0)
            fit.make(fit=True)
            assert got["version"] == fit.version, text[:20]
            assert got["rows"] == python_qr(text, got["version"], got["mask"]), text[:20]


@browser_test
async def test_admin_creates_an_auditor_who_then_audits_without_a_key(tmp_path) -> None:
    phone = Authenticator()
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        services = server.services
        _, admin_uri = await services.accounts.create("admin.li", "李管理", ["admin"], ADMIN_PASSWORD, must_change_password=True)
        admin_secret = secret_of(admin_uri)
        inspection = await create_inspection(server, http, case_no="DZ-2026-000555")
        # one webhook delivery that failed for good (the sender is stopped so that it stays so)
        await services.webhooks.close()
        delivery = await services.outbox.enqueue(
            "inspection.judged", {"id": inspection["id"], "case_no": "DZ-2026-000555"}, "http://127.0.0.1:9/hooks/takan", None, "key_test"
        )
        await services.outbox.record_attempt(
            delivery.delivery_id, Attempt(at=rfc3339_at(time.time()), duration_ms=2, error="connection refused"), None
        )

        async with browser() as b:
            page = await open_page(b, server.base_url + "/admin")
            # not logged in: the admin page sends to the login page, which comes back afterwards
            await visible(page, "signin-form")
            assert urlsplit(page.url).path == "/login" and "next=%2Fadmin" in page.url
            await page.screenshot(path=str(artifact("staff-login.png")))

            # a wrong password: one clear message, nothing else
            await login(page, phone, "admin.li", "Wrong-Password-11!", admin_secret, accepted=False)
            await visible(page, "signin-error")
            assert "用户名、密码或验证码错误" in await page.inner_text("#signin-error")
            assert await page.input_value("#password") == ""
            await page.screenshot(path=str(artifact("staff-login-wrong.png")))

            # the right one: the password must be changed first
            await login(page, phone, "admin.li", ADMIN_PASSWORD, admin_secret)
            await visible(page, "change-form")
            await page.fill("#old-password", ADMIN_PASSWORD)
            await page.fill("#new-password", "short1")
            await page.fill("#repeat-password", "short2")
            await page.click("#change-submit")
            await visible(page, "change-error")
            assert "不一致" in await page.inner_text("#change-error")
            await page.fill("#new-password", "admin.li-aaaa")
            await page.fill("#repeat-password", "admin.li-aaaa")
            await page.click("#change-submit")
            await until(page, "document.querySelectorAll('#change-error li').length >= 3")
            rules = await page.inner_text("#change-error")
            assert "至少需要 12 个字符" not in rules  # 13 characters: long enough
            assert "用户名或姓名" in rules and "连续" in rules and "(" not in rules  # Chinese half only
            await page.screenshot(path=str(artifact("staff-change-password.png")))
            await change_password(page, phone, ADMIN_PASSWORD, ADMIN_NEW_PASSWORD, admin_secret, "staff-relogin.png")

            # back on the admin page
            await page.wait_for_url(re.compile(r"/admin$"))
            await until(page, "document.querySelector(\"#accounts-body tr[data-user='admin.li']\")")
            assert "李管理（admin.li）" in await page.inner_text("#staff-who")
            assert "管理员" in await row_text(page, "admin.li")

            # create an auditor; admin and auditor together is refused with a clear reason
            await page.click("#btn-new-account")
            await until(page, "document.getElementById('create-dialog').open")
            generated = await page.input_value("#c-password")
            assert re.fullmatch(r"([A-Z][a-z]\d[a-z]-){3}[A-Z][a-z]\d[a-z]", generated), generated
            await page.fill("#c-user-id", "audit.wang")
            await page.fill("#c-real-name", "王审计")
            await page.fill("#c-phone", "13912345678")
            await page.check("#c-role-auditor")
            await page.check("#c-role-admin")
            await page.click("#create-submit")
            await visible(page, "create-error")
            assert "管理员和审计员" in await page.inner_text("#create-error")
            await page.uncheck("#c-role-admin")
            await page.screenshot(path=str(artifact("staff-admin-create.png")))
            await page.click("#create-submit")
            await until(page, "document.getElementById('totp-dialog').open")
            uri = await page.input_value("#totp-uri")
            auditor_secret = secret_of(uri)
            assert "audit.wang" in uri
            assert (await page.input_value("#totp-secret")).replace(" ", "") == auditor_secret
            # the QR code on screen is the URI's (same modules as the Python encoder's)
            drawn = await page.evaluate("() => { const s = document.querySelector('#totp-qr svg'); return s && {version: +s.dataset.version, mask: +s.dataset.mask}; }")
            assert drawn is not None
            ours = await page_qr(page, uri)
            assert (ours["version"], ours["mask"]) == (drawn["version"], drawn["mask"])
            assert ours["rows"] == python_qr(uri, drawn["version"], drawn["mask"])
            await page.click("#copy-uri")
            await until(page, "document.getElementById('copy-state').textContent !== ''")
            await page.screenshot(path=str(artifact("staff-admin-totp.png")))
            await page.keyboard.press("Escape")  # does not close it: it is shown once
            assert await page.evaluate("() => document.getElementById('totp-dialog').open")
            await page.click("#totp-done")
            await until(page, "!document.getElementById('totp-dialog').open && document.getElementById('totp-uri').value === ''")
            await until(page, "document.querySelector(\"#accounts-body tr[data-user='audit.wang']\")")
            row = await row_text(page, "audit.wang")
            assert "审计员" in row and "待修改密码" in row and "从未登录" in row
            assert "139" in row and "5678" in row  # an admin may see personal data unmasked

            # roles: add reviewer
            await page.click("#accounts-body tr[data-user='audit.wang'] [data-action='roles']")
            await until(page, "document.getElementById('roles-dialog').open")
            assert await page.is_checked("#r-role-auditor")
            await page.check("#r-role-reviewer")
            await page.click("#roles-submit")
            await until(page, "document.querySelector(\"#accounts-body tr[data-user='audit.wang']\")?.innerText.includes('审核员')")
            assert (await services.accounts.get("audit.wang")).roles == {"auditor", "reviewer"}

            # disable (asks first), and the auditor's login says so
            await page.click("#accounts-body tr[data-user='audit.wang'] [data-action='disable']")
            await until(page, "document.getElementById('confirm-dialog')?.open")
            await page.screenshot(path=str(artifact("staff-admin-confirm-disable.png")))
            await page.click("#confirm-yes")
            await until(page, "document.querySelector(\"#accounts-body tr[data-user='audit.wang']\")?.dataset.enabled === 'false'")
            other = await open_page(b, server.base_url + "/login?next=/audit")
            await login(other, phone, "audit.wang", generated, auditor_secret, accepted=False)  # refused; the code stays unused
            await visible(other, "signin-error")
            assert "已停用" in await other.inner_text("#signin-error")
            await page.click("#accounts-body tr[data-user='audit.wang'] [data-action='enable']")
            await until(page, "document.querySelector(\"#accounts-body tr[data-user='audit.wang']\")?.dataset.enabled === 'true'")

            # locked after five failures: the login page names the time, the admin unlocks
            for _ in range(5):
                async with http.post(
                    server.base_url + "/api/v1/auth/login", json={"user_id": "audit.wang", "password": "Nope-Nope-Nope-1", "totp": "000000"}
                ) as r:
                    assert r.status in (401, 429)
            await login(other, phone, "audit.wang", generated, auditor_secret, accepted=False)
            await until(other, "document.getElementById('signin-error').innerText.includes('锁定至')")
            assert re.search(r"锁定至 \d{4}-\d\d-\d\d \d\d:\d\d", await other.inner_text("#signin-error"))
            await other.screenshot(path=str(artifact("staff-login-locked.png")))
            await page.click("#accounts-refresh")
            await until(page, "document.querySelector(\"#accounts-body tr[data-user='audit.wang'] [data-action='unlock']\")")
            assert "锁定至" in await row_text(page, "audit.wang")
            await page.screenshot(path=str(artifact("staff-admin-accounts.png")))
            await page.click("#accounts-body tr[data-user='audit.wang'] [data-action='unlock']")
            await until(page, "!document.querySelector(\"#accounts-body tr[data-user='audit.wang'] [data-action='unlock']\")")

            # reset the password with a new authenticator key (the lost phone)
            await page.click("#accounts-body tr[data-user='audit.wang'] [data-action='reset']")
            await until(page, "document.getElementById('reset-dialog').open")
            reset_password = await page.input_value("#p-password")
            await page.check("#p-new-totp")
            await page.click("#reset-submit")
            await until(page, "document.getElementById('totp-dialog').open")
            new_uri = await page.input_value("#totp-uri")
            assert secret_of(new_uri) != auditor_secret
            auditor_secret = secret_of(new_uri)
            assert "新的身份验证器密钥" in await page.inner_text("#totp-title")
            await page.click("#totp-done")

            # webhook deliveries: the failed one, re-sent after a confirmation
            await page.click("#tab-webhooks")
            await until(page, f"document.querySelector(\"#hooks-body tr[data-id='{delivery.delivery_id}']\")")
            hook_row = page.locator(f"#hooks-body tr[data-id='{delivery.delivery_id}']")
            assert "失败" in await hook_row.inner_text() and "DZ-2026-000555" in await hook_row.inner_text()
            assert "connection refused" in await hook_row.inner_text()
            assert await page.inner_text("#hook-stats [data-state='failed'] strong") == "1"
            await page.screenshot(path=str(artifact("staff-admin-webhooks.png")))
            await hook_row.locator("[data-action='resend']").click()
            await confirm(page)
            await until(page, f"document.querySelector(\"#hooks-body tr[data-id='{delivery.delivery_id}']\")?.dataset.state === 'pending'")
            assert services.outbox.get(delivery.delivery_id).resends == 1

            # English
            await page.click(".topbar .lang-toggle")
            assert await page.inner_text("#tab-accounts") == "Accounts"
            await page.click("#tab-accounts")
            await until(page, "document.querySelector(\"#accounts-body tr[data-user='audit.wang']\")?.innerText.includes('Auditor')")
            await page.screenshot(path=str(artifact("staff-admin-accounts-en.png")))
            await page.click(".topbar .lang-toggle")

            # log out: the cookie no longer works
            await page.click("#btn-staff-logout")
            await page.wait_for_url(re.compile(r"/login"))
            assert await me_status(page) == 401

            # the auditor opens /audit: staff login or API key
            await page.goto(server.base_url + "/audit")
            await visible(page, "view-login")
            assert await page.is_visible("#api-key") and await page.is_visible("#staff-login")
            await page.screenshot(path=str(artifact("staff-audit-choice.png")))
            await page.click("#staff-login")
            await login(page, phone, "audit.wang", reset_password, auditor_secret)
            await change_password(page, phone, reset_password, AUDITOR_NEW_PASSWORD, auditor_secret)
            await page.wait_for_url(re.compile(r"/audit$"))
            await until(page, "document.querySelectorAll('#list-body tr').length === 1")
            assert "DZ-2026-000555" in await page.inner_text("#list-body")
            assert await page.evaluate("() => sessionStorage.getItem('takan.auditKey')") is None
            assert await page.is_hidden("#key-state") and await page.is_hidden("#btn-logout")
            assert "王审计（audit.wang）" in await page.inner_text("#staff-who")
            await page.screenshot(path=str(artifact("staff-audit-list.png")))
            # the detail loads with the cookie too
            await page.click(f"#list-body tr[data-id='{inspection['id']}']")
            await until(page, "document.getElementById('verify').dataset.state === 'open'")
            assert await page.is_hidden("#detail-error")

            # an auditor is no admin
            await page.goto(server.base_url + "/admin")
            await visible(page, "view-denied")
            assert "audit.wang" in await page.inner_text("#denied-text")
            assert await page.is_hidden("#view-accounts")

            # log out everywhere, from the audit page
            await page.goto(server.base_url + "/audit")
            await until(page, "document.querySelectorAll('#list-body tr').length === 1")
            await page.click("#btn-staff-logout-all")
            await confirm(page)
            await visible(page, "view-login")
            assert await me_status(page) == 401
            assert page.js_errors == [], page.js_errors
            assert other.js_errors == [], other.js_errors
