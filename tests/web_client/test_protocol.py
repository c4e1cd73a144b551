"""The pages take the protocol's constants from the server (static/js/protocol.js), not literals."""

from __future__ import annotations

import re

import aiohttp

from takan.protocol import constants
from testkit.server import create_inspection, running_server
from tests.web_client.catalogues import STATIC, page_scripts
from tests.web_client.test_pages import browser, browser_test, open_page, until


def _list_literal(names: list[str]) -> re.Pattern[str]:
    return re.compile(r"\[\s*" + r"\s*,\s*".join(f'"{re.escape(n)}"' for n in names) + r"\s*\]")


def test_no_page_repeats_a_served_list_or_limit() -> None:
    served = constants()
    lists = [served["roles"]["staff"], served["prudent_lists"], served["webhooks"]["states"], served["open_statuses"]]
    for js in page_scripts():
        source = js.read_text(encoding="utf-8")
        for names in lists:
            assert not _list_literal(names).search(source), f"{js.name} repeats {names}; use PROTOCOL"
        assert not re.search(r"\binspector:\s*\"applicant\",\s*applicant:\s*\"inspector\"", source), f"{js.name} repeats source_role"
        assert "15 * 1024 * 1024" not in source and "MAX_TEXT = " not in source, js.name
    for html in STATIC.glob("*.html"):
        text = html.read_text(encoding="utf-8")
        for el in re.findall(r'<textarea[^>]*id="(?:note-text|overtime-reason|rating-comment)"[^>]*>', text):
            assert "maxlength" not in el and "data-max-chars" in el, el


@browser_test
async def test_pages_load_the_constants_once_and_apply_the_limits(tmp_path) -> None:
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http, browser() as b:
        created = await create_inspection(server, http)
        limits = constants()["limits"]
        for url, fields in (
            (created["inspector_url"], {"note-text": "text", "overtime-reason": "text"}),
            (created["applicant_url"], {"rating-comment": "rating_comment"}),
        ):
            page = await open_page(b, "about:blank", mobile="join" in url)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url) if "/api/v1/protocol" in r.url else None)
            await page.goto(url)
            await until(page, "window.takan && window.takan.state.joined")
            served = await page.evaluate("async () => (await import('/static/js/protocol.js')).PROTOCOL")
            assert served == constants()
            for element_id, limit in fields.items():
                assert await page.evaluate(f"() => document.getElementById('{element_id}').maxLength") == limits[f"{limit}_chars"]
            assert len(requests) == 1, requests
            assert page.js_errors == []
            await page.context.close()


@browser_test
async def test_a_page_without_the_constants_says_so(tmp_path) -> None:
    async with running_server(tmp_path / "data") as server, browser() as b:
        page = await open_page(b, "about:blank")
        await page.route("**/api/v1/protocol", lambda route: route.fulfill(status=503, body="down"))
        await page.goto(server.base_url + "/audit")
        await until(page, "document.querySelector('.protocol-error')", timeout_s=15)
        assert "reload" in await page.inner_text(".protocol-error")
