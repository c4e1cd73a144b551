"""Licence field extraction, the USCC check and the comparison, without the OCR model."""

from __future__ import annotations

from recognition.compare import compare_licence, compare_sign, trade_name, verdict
from recognition.engine import Line
from recognition.licence import looks_like_licence, parse_licence, read_uscc


def _row(y: int, *texts: str) -> list[Line]:
    return [Line(text, 0.9, (100 + 400 * i, y, 380 + 400 * i, y + 30)) for i, text in enumerate(texts)]


LINES = [
    *_row(90, "营业执照"),
    *_row(240, "统一社会信用代码", "91350100M000100Y43"),
    *_row(330, "名 称", "德州某某餐饮有限公司", "注册资本", "伍拾万元整"),
    *_row(408, "类 型", "有限责任公司（自然人投资或控股）"),
    *_row(486, "法定代表人", "张某"),
    *_row(564, "成立日期", "2019年03月12日"),
    *_row(642, "营业期限", "2019年03月12日至长期"),
    *_row(720, "住 所：山东省德州市德城区某路1号"),
]


def test_fields_of_a_licence() -> None:
    fields = parse_licence(LINES)
    assert fields == {
        "name": "德州某某餐饮有限公司",
        "uscc": "91350100M000100Y43",
        "type": "有限责任公司(自然人投资或控股)",
        "legal_representative": "张某",
        "address": "山东省德州市德城区某路1号",
        "established": "2019-03-12",
        "valid_from": "2019-03-12",
        "valid_to": "长期",
        "uscc_raw": None,
    }
    assert looks_like_licence(LINES)


def test_uscc_confusions_are_undone_and_a_bad_check_is_unreadable() -> None:
    assert read_uscc("9135O1OOMOOO1OOY43") == ("91350100M000100Y43", None)
    assert read_uscc("91350100M000100Y44") == (None, "91350100M000100Y44")
    lines = [line if "Y43" not in line.text else Line("91350100M000100Y44", 0.5, line.box) for line in LINES]
    fields = parse_licence(lines)
    assert fields["uscc"] is None and fields["uscc_raw"] == "91350100M000100Y44"


def test_comparison_with_the_application() -> None:
    applicant = {"name": "德州某某餐饮有限公司", "id_type": "USCC", "id_number": "91350100M000100Y43"}
    fields = parse_licence(LINES)
    assert compare_licence(fields, applicant) == {"name": True, "uscc": True}
    assert verdict(compare_licence(fields, applicant)) == "matched"
    other = {**applicant, "id_number": "91371400MA3C1234XF"}
    assert compare_licence(fields, other) == {"name": True, "uscc": False}
    assert verdict(compare_licence(fields, other)) == "differs"
    assert compare_licence({"name": None, "uscc": None}, applicant) == {"name": None, "uscc": None}
    assert verdict({"name": None, "uscc": None}) == "unreadable"
    person = {"name": "张某", "id_type": "RID", "id_number": "x"}
    assert compare_licence(fields, person)["uscc"] is None


def test_shop_sign_shows_the_trade_name() -> None:
    applicant = {"name": "德州市鑫源餐饮管理有限公司"}
    assert trade_name("德州市鑫源餐饮管理有限公司") == "鑫源餐饮管理"
    assert compare_sign(["鑫源餐饮管理", "欢迎光临"], applicant) == {"name": True}
    assert compare_sign(["华泰超市"], applicant) == {"name": False}
    assert compare_sign([], applicant) == {"name": None}
