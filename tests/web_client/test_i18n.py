"""The string catalogues (static/i18n/<lang>.json) and how static/js/i18n.js uses them."""

from __future__ import annotations

import glob
import json
import re
import tomllib
from pathlib import Path

import pytest

from testkit.server import running_server
from tests.web_client.catalogues import LANGS, STATIC, catalogue
from tests.web_client.test_pages import browser, browser_test, open_page, until

PLACEHOLDER = re.compile(r"\{(\w+)\}")


# ---- the catalogues (no browser) ---------------------------------------------------------


def test_both_catalogues_have_the_same_keys() -> None:
    zh, en = catalogue("zh"), catalogue("en")
    assert len(zh) > 500, "static/i18n/zh.json looks truncated"
    assert sorted(set(zh) - set(en)) == [], "missing in en.json"
    assert sorted(set(en) - set(zh)) == [], "missing in zh.json"


@pytest.mark.parametrize("lang", LANGS)
def test_every_entry_is_a_non_empty_string_without_duplicates(lang: str) -> None:
    path = STATIC / "i18n" / f"{lang}.json"
    pairs = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=lambda p: p)
    names = [k for k, _ in pairs]
    assert sorted({k for k in names if names.count(k) > 1}) == [], f"keys given twice in {path.name}"
    bad = [k for k, v in pairs if not isinstance(v, str) or not v.strip()]
    assert bad == [], f"{path.name}: not a non-empty string"
    assert all(re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+", k) for k in names)


def test_translations_use_the_same_placeholders() -> None:
    zh, en = catalogue("zh"), catalogue("en")
    differ = {k: (zh[k], en[k]) for k in zh if set(PLACEHOLDER.findall(zh[k])) != set(PLACEHOLDER.findall(en[k]))}
    assert differ == {}


def test_the_catalogues_are_package_data() -> None:
    """pyproject.toml ships web_client's static files; its globs must reach static/i18n/*.json."""
    pyproject = tomllib.loads((STATIC.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["web_client"]
    root = STATIC.parent
    shipped = {Path(p) for pattern in patterns for p in glob.glob(str(root / pattern), recursive=True)}
    for lang in LANGS:
        assert STATIC / "i18n" / f"{lang}.json" in shipped


# ---- in the browser ----------------------------------------------------------------------


@browser_test
async def test_a_missing_key_or_catalogue_falls_back(tmp_path) -> None:
    """A key missing in English shows the Chinese text; an unreachable catalogue shows the other."""
    en = catalogue("en")
    del en["login.title"]
    async with running_server(tmp_path / "data") as server, browser() as b:
        page = await open_page(b, "about:blank")
        await page.route("**/static/i18n/en.json", lambda route: route.fulfill(json=en))
        warnings: list[str] = []
        page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)
        await page.goto(f"{server.base_url}/login?lang=en")
        await until(page, "document.documentElement.lang === 'en'")
        assert await page.evaluate("async () => (await import('/static/js/i18n.js')).t('login.title')") == catalogue("zh")["login.title"]
        assert await page.evaluate("async () => (await import('/static/js/i18n.js')).t('no.such.key')") == "no.such.key"
        assert await page.evaluate("async () => (await import('/static/js/i18n.js')).t('app.name')") == en["app.name"]
        assert any("login.title" in w for w in warnings), warnings
        assert await page.evaluate("async () => { const { has } = await import('/static/js/i18n.js'); return [has('login.title'), has('no.such.key')]; }") == [True, False]

        await page.route("**/static/i18n/zh.json", lambda route: route.fulfill(status=404, body="gone"))
        await page.goto(f"{server.base_url}/login?lang=zh")
        await until(page, "document.documentElement.lang === 'zh-CN'")
        assert await page.evaluate("async () => (await import('/static/js/i18n.js')).t('app.name')") == en["app.name"]
        assert page.js_errors == []
