"""Holding what was read against the application: matched, differs, or unreadable."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from .licence import normalise

#: legal forms and trailing words a shop sign leaves out
_FORMS = ("股份有限公司", "有限责任公司", "有限公司", "合伙企业", "个体工商户", "分公司", "公司", "店")
_PLACE = re.compile(r"^(.{2,3}?(省|自治区))?(.{2,4}?市)?(.{2,4}?(区|县))?")


def verdict(matches: Mapping[str, Optional[bool]]) -> str:
    """``matched`` (everything compared agrees), ``differs`` (something disagrees) or
    ``unreadable`` (nothing could be compared)."""
    known = [value for value in matches.values() if value is not None]
    if not known:
        return "unreadable"
    return "matched" if all(known) else "differs"


def compare_licence(fields: Mapping[str, Any], applicant: Mapping[str, Any]) -> dict[str, Optional[bool]]:
    """``name`` and ``uscc`` of the licence against the applicant; None where either side
    is missing (an applicant identified by a resident ID has no USCC to compare)."""
    name = fields.get("name")
    wanted_name = applicant.get("name")
    uscc = fields.get("uscc")
    wanted_uscc = applicant.get("id_number") if applicant.get("id_type") == "USCC" else None
    return {
        "name": None if not name or not wanted_name else normalise(str(name)) == normalise(str(wanted_name)),
        "uscc": None if not uscc or not wanted_uscc else str(uscc) == str(wanted_uscc).upper(),
    }


def trade_name(name: str) -> str:
    """What a shop sign shows of a registered name: without the place and the legal form."""
    core = normalise(name)
    for form in _FORMS:
        if core.endswith(form) and len(core) > len(form) + 1:
            core = core[: -len(form)]
            break
    stripped = _PLACE.sub("", core, count=1)
    return stripped if len(stripped) >= 2 else core


def compare_sign(texts: Sequence[str], applicant: Mapping[str, Any]) -> dict[str, Optional[bool]]:
    """The sign's text against the applicant's name: the trade name must appear on it."""
    text = normalise("".join(texts))
    name = applicant.get("name")
    if not text or not name:
        return {"name": None}
    full = normalise(str(name))
    return {"name": full in text or trade_name(full) in text}
