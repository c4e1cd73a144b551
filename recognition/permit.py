"""The fields of an item's permit (许可证), read where the template asks for it.

A template names a checkpoint's ``recognize`` kind; the permit kinds are the keys of
:data:`PERMITS` (e.g. ``food_permit``, the 食品经营许可证 a food business shows). A permit
prints its holder, number, premises and validity as label/value rows, like the business
licence (:class:`recognition.licence.LabelReader` reads both), with labels of its own:
经营者名称, 许可证编号, 经营场所, 有效期至. Its holder's name (and the credit code, where
one is printed) is compared with the application as a licence's is.

The number is kept only when it has its kind's form (a food business permit: JY and 14
digits, after undoing OCR's letter/digit confusions in the digits); otherwise ``permit_no``
is None and the raw reading is in ``permit_no_raw``, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

from .engine import Line
from .licence import LabelReader, normalise, read_uscc, validity

#: kind (a template's ``recognize``) -> the permit's printed title
PERMITS: dict[str, str] = {
    "food_permit": "食品经营许可证",
    "drug_permit": "药品经营许可证",
    "special_trade_permit": "特种行业许可证",
    "permit": "许可证",  # a permit of no known kind: its fields, no number format
}
#: kind -> the number's form, where it is fixed (prefix letters, then digits)
NUMBER_FORMS: dict[str, tuple[str, int]] = {"food_permit": ("JY", 14)}
FIELDS = ("name", "permit_no", "uscc", "address", "valid_from", "valid_to")
LABELS: dict[str, tuple[str, ...]] = {
    "name": ("经营者名称", "企业名称", "单位名称", "名称"),
    "permit_no": ("许可证编号", "许可证号", "证书编号", "编号"),
    "uscc": ("社会信用代码(身份证号码)", "统一社会信用代码", "社会信用代码"),
    "address": ("经营场所", "经营地址", "营业场所", "地址"),  # the premises inspected, not the 住所
    "validity": ("有效期限", "有效期至", "有效期"),
    "_stop": ("住所", "法定代表人(负责人)", "法定代表人", "负责人", "经营项目", "主体业态", "经营范围", "经营方式",
              "发证机关", "签发人", "签发日期", "发证日期", "日常监督管理机构", "日常监督管理人员", "投诉举报电话"),
}
_READER = LabelReader(LABELS)
_DIGITS = str.maketrans({"O": "0", "D": "0", "Q": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "B": "8", "G": "6", "T": "7"})


def looks_like_permit(lines: Sequence[Line], kind: str) -> bool:
    """The permit's title is printed, or at least two of the labels only a permit has."""
    text = "".join(normalise(l.text) for l in lines)
    return PERMITS.get(kind, PERMITS["permit"]) in text or sum(label in text for label in ("经营者名称", "许可证编号", "有效期至", "日常监督管理机构")) >= 2


def read_number(text: str, kind: str) -> tuple[Optional[str], Optional[str]]:
    """(the number, None) or (None, the raw reading) or (None, None)."""
    raw = re.sub(r"[^0-9A-Z]", "", normalise(text).upper())
    if not raw:
        return None, None
    form = NUMBER_FORMS.get(kind)
    if form is None:
        return (raw, None) if len(raw) >= 6 else (None, raw)
    prefix, digits = form
    if raw.startswith(prefix) and len(raw) == len(prefix) + digits:
        number = prefix + raw[len(prefix):].translate(_DIGITS)
        if number[len(prefix):].isdigit():
            return number, None
    return None, raw


def parse_permit(lines: Sequence[Line], kind: str) -> dict[str, Optional[str]]:
    """Every field of :data:`FIELDS`, None where it could not be read; and ``permit_no_raw``."""
    values = _READER.values(lines)
    fields: dict[str, Optional[str]] = {name: None for name in FIELDS}
    fields["name"] = values.get("name") or None
    fields["address"] = values.get("address") or None
    fields["permit_no"], raw = read_number(values.get("permit_no", ""), kind)
    fields["uscc"] = read_uscc(values["uscc"])[0] if "uscc" in values else None
    if "validity" in values:
        fields["valid_from"], fields["valid_to"] = validity(values["validity"])
        if fields["valid_to"] is None and fields["valid_from"] is not None and "至" not in values["validity"]:
            # 有效期至 2030年01月01日: the one date printed is the end
            fields["valid_from"], fields["valid_to"] = None, fields["valid_from"]
    fields["permit_no_raw"] = raw
    return fields
