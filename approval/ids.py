"""Check digits of Chinese identity numbers.

* GB 11643-1999: the 18-digit citizen identity number (ISO 7064 MOD 11-2).
* GB 32100-2015: the 18-character unified social credit code (MOD 31).
"""

from __future__ import annotations

import datetime
import re

_RID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RID_CHECK = "10X98765432"
_RID_SHAPE = re.compile(r"^[1-9]\d{16}[\dX]$")

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_SHAPE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")


def resident_id_check_char(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, _RID_WEIGHTS))
    return _RID_CHECK[total % 11]


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def resident_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid GB 11643 identity number, or None if it is."""
    if not _RID_SHAPE.match(value):
        return "must be 18 characters: 17 digits and a digit or 'X' (GB 11643)"
    try:
        datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return f"has an impossible birth date {value[6:14]!r} (GB 11643)"
    expected = resident_id_check_char(value[:17])
    if value[17] != expected:
        return f"check digit is {value[17]!r} but should be {expected!r} (GB 11643)"
    return None


def uscc_problem(value: str) -> str | None:
    """Why ``value`` is not a valid GB 32100 credit code, or None if it is."""
    if not _USCC_SHAPE.match(value):
        return (
            "must be 18 characters of 0-9 and A-Y without I, O, S, V, Z; "
            "characters 3-8 are the region code (GB 32100)"
        )
    expected = uscc_check_char(value[:17])
    if value[17] != expected:
        return f"check character is {value[17]!r} but should be {expected!r} (GB 32100)"
    return None
