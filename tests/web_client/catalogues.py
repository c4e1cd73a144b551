"""The pages' string catalogues (web_client/static/i18n/<lang>.json) and their sources, for the tests."""

from __future__ import annotations

import json
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "web_client" / "static"
LANGS = ("zh", "en")


def catalogue(lang: str) -> dict[str, str]:
    return json.loads((STATIC / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def keys(lang: str) -> set[str]:
    return set(catalogue(lang))


def page_scripts() -> list[Path]:
    """Every ES module of the pages (js/ and its subfolders), except the i18n module itself."""
    return sorted(p for p in (STATIC / "js").rglob("*.js") if p.name != "i18n.js")
