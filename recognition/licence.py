"""The fields of a 营业执照 (business licence), read from OCR lines.

The licence prints each field as a label followed by its value (名称, 类型, 法定代表人,
住所, 成立日期, 营业期限, and 统一社会信用代码 near the top); an individual business's
licence says 经营者 and 经营场所, a branch 负责人 and 营业场所. Lines are grouped into
printed rows by their vertical position; within a row the text between one label and the
next is that label's value, so two-column layouts read as well.

The unified social credit code is accepted only when its GB 32100 check character holds
(``approval.ids``); OCR's usual letter/digit confusions (O/0, I/1, Z/2, S/5) are undone
first, since the code's alphabet has no I, O, S, V or Z. A code that still fails its
check is reported unreadable (``uscc`` None, the raw reading in ``uscc_raw``), never
guessed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Optional

from approval.ids import uscc_problem

from .engine import Line

#: field -> the labels that introduce it, longest first
LABELS: dict[str, tuple[str, ...]] = {
    "uscc": ("统一社会信用代码",),
    "name": ("名称",),
    "type": ("类型",),
    "legal_representative": ("执行事务合伙人", "法定代表人", "经营者", "负责人", "投资人"),
    "address": ("主要经营场所", "经营场所", "营业场所", "住所"),
    "established": ("成立日期", "注册日期"),
    "validity": ("营业期限", "合伙期限", "经营期限"),
    "_stop": ("注册资本", "出资额", "经营范围", "登记机关", "组成形式", "副本", "营业执照"),
}
FIELDS = ("name", "uscc", "type", "legal_representative", "address", "established", "valid_from", "valid_to")
_DATE_RE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?")
_USCC_CANDIDATE = re.compile(r"[0-9A-Z]{18}")
_TO_CODE = str.maketrans({"O": "0", "I": "1", "Z": "2", "S": "5"})
_TO_DIGIT = str.maketrans({"O": "0", "D": "0", "Q": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "B": "8", "G": "6", "T": "7"})
LICENCE_MARKERS = ("营业执照", "统一社会信用代码", "法定代表人", "经营范围")


def normalise(text: str) -> str:
    """NFKC (full-width brackets and colons to ASCII), no whitespace."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def rows_of(lines: Sequence[Line]) -> list[str]:
    """The printed rows: lines whose vertical centres are close, left to right."""
    rows: list[list[Line]] = []
    for line in sorted(lines, key=lambda l: l.cy):
        if rows:
            last = rows[-1]
            centre = sum(l.cy for l in last) / len(last)
            if abs(line.cy - centre) < 0.5 * max(line.height, min(l.height for l in last), 1):
                last.append(line)
                continue
        rows.append([line])
    return ["".join(normalise(l.text) for l in sorted(row, key=lambda l: l.box[0])) for row in rows]


def iso_date(text: str) -> Optional[str]:
    match = _DATE_RE.search(text)
    if match is None:
        return None
    year, month, day = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


def read_uscc(text: str) -> tuple[Optional[str], Optional[str]]:
    """(the valid code, None) or (None, the raw 18 characters read) or (None, None)."""
    compact = normalise(text).upper()
    raw: Optional[str] = None
    for match in _USCC_CANDIDATE.finditer(compact.translate(str.maketrans("", "", "-_.,:"))):
        candidate = match.group()
        fixed = candidate[:2].translate(_TO_CODE) + candidate[2:8].translate(_TO_DIGIT) + candidate[8:].translate(_TO_CODE)
        if uscc_problem(fixed) is None:
            return fixed, None
        raw = raw or candidate
    return None, raw


def looks_like_licence(lines: Sequence[Line]) -> bool:
    text = "".join(normalise(l.text) for l in lines)
    return sum(marker in text for marker in LICENCE_MARKERS) >= 2 or read_uscc(text)[0] is not None


class LabelReader:
    """Reads label/value rows: within a printed row, the text between one label and the
    next is the first label's value (the first value of a field wins). Labels are matched
    longest first, so 经营者名称 is not read as 名称; a field named ``_stop`` ends the
    value before it and is not kept."""

    def __init__(self, labels: Mapping[str, tuple[str, ...]]) -> None:
        ordered = sorted((label for names in labels.values() for label in names), key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(label) for label in ordered))
        self._field_of = {label: name for name, names in labels.items() for label in names}

    def values(self, lines: Sequence[Line]) -> dict[str, str]:
        values: dict[str, str] = {}
        for row in rows_of(lines):
            marks = list(self._pattern.finditer(row))
            for i, mark in enumerate(marks):
                name = self._field_of[mark.group()]
                end = marks[i + 1].start() if i + 1 < len(marks) else len(row)
                value = row[mark.end():end].lstrip(":：")
                if name != "_stop" and value and name not in values:
                    values[name] = value
        return values


_READER = LabelReader(LABELS)


def validity(text: str) -> tuple[Optional[str], Optional[str]]:
    """(from, to) of a printed period: "2019年03月12日至长期" or "至2030年01月01日"."""
    start, _, until = text.partition("至")
    return iso_date(start), "长期" if "长期" in until else iso_date(until)


def parse_licence(lines: Sequence[Line]) -> dict[str, Optional[str]]:
    """Every field of :data:`FIELDS`, None where it could not be read; and ``uscc_raw``."""
    fields: dict[str, Optional[str]] = {name: None for name in FIELDS}
    values = _READER.values(lines)
    uscc, raw = read_uscc(values.get("uscc", ""))
    if uscc is None:
        uscc, raw_anywhere = read_uscc("\n".join(normalise(l.text) for l in lines))
        raw = raw or raw_anywhere
    fields["uscc"] = uscc
    for name in ("name", "type", "legal_representative", "address"):
        fields[name] = values.get(name) or None
    if "established" in values:
        fields["established"] = iso_date(values["established"])
    if "validity" in values:
        fields["valid_from"], fields["valid_to"] = validity(values["validity"])
    fields["uscc_raw"] = raw if uscc is None else None
    return fields
