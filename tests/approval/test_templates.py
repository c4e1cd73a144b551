"""Checklist templates: data files, versioned, overridable by an admin directory."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from approval.templates import BUILTIN_DIR, TemplateError, Templates

SHIPPED = ("food-business-license", "hotel-special-industry-license", "pharmacy-retail-license")


def test_shipped_templates() -> None:
    templates = Templates()
    assert [t.item_code for t in templates.all()] == list(SHIPPED)
    for template in templates.all():
        assert template.time_limit_min == 30 and template.site_radius_m in (200, 300)
        assert sum(c.required for c in template.checkpoints) >= 6
        assert re.fullmatch(rf"{template.item_code}@2026\.1\+[0-9a-f]{{12}}", template.tag)
        for code, (zh, en) in template.hints.items():
            assert code in {c.code for c in template.checkpoints} and zh and en


def test_an_edited_template_is_a_new_version(tmp_path: Path) -> None:
    path = tmp_path / "pharmacy-retail-license.json"
    shutil.copyfile(BUILTIN_DIR / path.name, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["site_radius_m"] = 150
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    admin = Templates(tmp_path).find("pharmacy-retail-license")
    builtin = Templates().find("pharmacy-retail-license")
    assert admin is not None and builtin is not None
    assert admin.site_radius_m == 150 and admin.version == builtin.version
    assert admin.tag != builtin.tag


def test_a_bad_template_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"item_code": "x",\n "checkpoints": [}', encoding="utf-8")
    with pytest.raises(TemplateError, match=re.escape(f"{tmp_path / 'x.json'}:2: not valid JSON")):
        Templates(tmp_path)
