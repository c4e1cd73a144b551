"""Permit fields (recognition/permit.py): the label rows without the model, then a
generated 食品经营许可证 read by the real OCR engine."""

from __future__ import annotations

import random

from recognition.compare import compare_licence, verdict
from recognition.engine import Line, OcrEngine
from recognition.licence import looks_like_licence
from recognition.permit import looks_like_permit, parse_permit, read_number
from testkit.licences import FONTS, damage, jpeg, permit_fields, render_food_permit


def _row(y: int, *texts: str) -> list[Line]:
    return [Line(text, 0.9, (100 + 420 * i, y, 400 + 420 * i, y + 30)) for i, text in enumerate(texts)]


LINES = [
    *_row(70, "食品经营许可证"),
    *_row(190, "经营者名称", "德州某某餐饮有限公司"),
    *_row(256, "社会信用代码（身份证号码）", "91350100M000100Y43"),
    *_row(322, "法定代表人（负责人）", "张某"),
    *_row(388, "住 所", "山东省德州市德城区某路1号"),
    *_row(454, "经营场所", "山东省德州市德城区某路1号一层"),
    *_row(520, "主体业态", "餐饮服务经营者"),
    *_row(586, "许可证编号", "JY13714O2OO12345"),  # OCR read two zeros as O
    *_row(652, "日常监督管理机构", "德城区市场监督管理局"),
    *_row(718, "有效期至", "2030年05月31日"),
]
APPLICANT = {"name": "德州某某餐饮有限公司", "id_type": "USCC", "id_number": "91350100M000100Y43"}


def test_fields_of_a_food_permit() -> None:
    assert looks_like_permit(LINES, "food_permit")
    fields = parse_permit(LINES, "food_permit")
    assert fields == {
        "name": "德州某某餐饮有限公司",
        "permit_no": "JY13714020012345",
        "uscc": "91350100M000100Y43",
        "address": "山东省德州市德城区某路1号一层",  # the premises, not the 住所
        "valid_from": None,
        "valid_to": "2030-05-31",
        "permit_no_raw": None,
    }
    matches = compare_licence(fields, APPLICANT)
    assert matches == {"name": True, "uscc": True} and verdict(matches) == "matched"
    assert verdict(compare_licence(fields, {**APPLICANT, "name": "德州另一家餐饮有限公司"})) == "differs"


def test_a_period_from_to_and_a_permit_of_no_known_number_form() -> None:
    lines = [*_row(100, "药品经营许可证"), *_row(160, "企业名称", "某某大药房有限公司"),
             *_row(220, "证书编号", "鲁AA5340123"), *_row(280, "有效期限", "2024年01月02日至2029年01月01日")]
    fields = parse_permit(lines, "drug_permit")
    assert fields["name"] == "某某大药房有限公司" and fields["permit_no"] == "AA5340123"
    assert (fields["valid_from"], fields["valid_to"]) == ("2024-01-02", "2029-01-01")
    assert fields["uscc"] is None and fields["address"] is None


def test_a_number_of_the_wrong_form_is_unreadable_not_guessed() -> None:
    assert read_number("JY1371402001234", "food_permit") == (None, "JY1371402001234")  # 13 digits
    assert read_number("JX13714020012345", "food_permit") == (None, "JX13714020012345")
    assert read_number("", "food_permit") == (None, None)


def test_a_business_licence_is_not_a_food_permit() -> None:
    licence = [*_row(90, "营业执照"), *_row(240, "统一社会信用代码", "91350100M000100Y43"), *_row(330, "名 称", "德州某某餐饮有限公司")]
    assert not looks_like_permit(licence, "food_permit")
    assert looks_like_licence(LINES)  # a permit prints a credit code: the recognizer asks looks_like_permit first


def test_a_generated_food_permit_is_read_by_the_engine() -> None:
    rng = random.Random(5)
    printed = permit_fields(rng)
    image = jpeg(damage(render_food_permit(printed, FONTS[0], rng), rng, strength=0.6), 80)
    lines = OcrEngine().read(image)
    assert looks_like_permit(lines, "food_permit")
    fields = parse_permit(lines, "food_permit")
    assert fields["name"] == printed["name"]
    assert fields["permit_no"] == printed["permit_no"]
    assert fields["uscc"] == printed["uscc"]
    assert fields["address"] == printed["address"]
    assert fields["valid_to"] == printed["valid_to"]
