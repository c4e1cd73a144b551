"""RFC 8785 JSON Canonicalization Scheme (JCS).

Object members sorted by their UTF-16 code units, no insignificant whitespace, strings
escaped as ECMAScript's JSON.stringify does, numbers in ECMAScript's shortest form.
"""

from __future__ import annotations

import json
import math
from typing import Any


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 serialization of ``value`` as UTF-8 bytes."""
    kind = _plain(value)
    if kind:
        # json's C encoder gives the same bytes for these values (see _plain), ~10x faster
        if kind == _INTEGRAL:
            value = _integral_to_int(value)
        return _SORTED.encode(value).encode("utf-8")
    return _encode(value).encode("utf-8")


#: Made once: ``json.dumps`` with these arguments builds a new encoder on every call.
_SORTED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)

#: What _plain says: not plain, plain as it is, plain once integral floats are ints.
_NOT, _AS_IS, _INTEGRAL = 0, 1, 2


def _plain(value: Any) -> int:
    """Whether ``json.dumps(sort_keys=True)`` serializes ``value`` exactly as RFC 8785 does.

    :data:`_AS_IS` for str, bool, None, ints below 2**53 and non-integral floats in [1e-4,
    1e16) (where Python's repr and ECMAScript print the same digits, without an exponent),
    in lists and in dicts whose keys are below U+E000 (where code-point order, Python's, and
    UTF-16 code-unit order, RFC 8785's, agree). :data:`_INTEGRAL` if it also holds
    integral floats below 2**53 (ECMAScript prints 12.0 as 12, and -0.0 as 0: as json
    prints the int). Anything else (:data:`_NOT`) takes the slow path.

    Every event's payload passes here, so the common leaves (strings, booleans, None) of a
    dict or list are checked in its loop without a call, and an ASCII key (``isascii`` is
    a flag lookup) is not scanned for its largest character.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return _AS_IS
    if kind is int:
        return _AS_IS if -(2**53) < value < 2**53 else _NOT
    if kind is float:
        magnitude = abs(value)
        if value.is_integer():
            return _INTEGRAL if magnitude < 2**53 else _NOT
        return _AS_IS if 1e-4 <= magnitude < 1e16 else _NOT
    if kind is dict:
        for key in value:
            if type(key) is not str or (not key.isascii() and max(key) >= "\ue000"):
                return _NOT
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return _NOT
    found = _AS_IS
    for item in items:
        leaf = type(item)
        if leaf is str or leaf is bool or item is None:
            continue
        sub = _plain(item)
        if sub == _NOT:
            return _NOT
        if sub > found:
            found = sub
    return found


def _integral_to_int(value: Any) -> Any:
    """``value`` (plain, see _plain) with its integral floats as ints."""
    kind = type(value)
    if kind is float and value.is_integer():
        return int(value)
    if kind is dict:
        return {key: _integral_to_int(item) for key, item in value.items()}
    if kind is list:
        return [_integral_to_int(item) for item in value]
    return value


def _encode(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        # json.dumps with ensure_ascii=False escapes exactly what JSON.stringify escapes
        # (", \\, control characters; \b \f \n \r \t short forms; others \u00XX).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return _number(float(value)) if abs(value) >= 2**53 else str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, got {key!r}")
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_encode(k) + ":" + _encode(value[k]) for k in keys) + "}"
    raise TypeError(f"cannot canonicalize {type(value).__name__}")


def _number(number: float) -> str:
    """ECMAScript Number::toString for a finite double."""
    if math.isnan(number) or math.isinf(number):
        raise ValueError("NaN and Infinity are not JSON")
    if number == 0:
        return "0"
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    # repr gives the shortest round-trip digits; re-lay them out as ECMAScript does.
    sign = "-" if number < 0 else ""
    text = repr(abs(number))
    if "e" in text:
        mantissa, exp_text = text.split("e")
        exponent = int(exp_text)
    else:
        mantissa, exponent = text, 0
    if "." in mantissa:
        whole, frac = mantissa.split(".")
    else:
        whole, frac = mantissa, ""
    digits = (whole + frac).lstrip("0")
    # n: position of the decimal point relative to the digit string (ECMAScript's n)
    point = len(whole) + exponent - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * (-point) + digits
    exp = point - 1
    exp_str = ("+" if exp > 0 else "-") + str(abs(exp))
    if k == 1:
        return sign + digits + "e" + exp_str
    return sign + digits[0] + "." + digits[1:] + "e" + exp_str
