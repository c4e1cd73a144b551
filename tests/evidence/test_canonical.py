import json

import pytest

from evidence.canonical import canonical_json
from evidence.merkle import leaf_hash, node_hash, tree_hash


@pytest.mark.parametrize(
    "value,expected",
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (123.456, "123.456"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (333333333.33333329, "333333333.3333333"),
        (-1.5e-9, "-1.5e-9"),
        (9007199254740992, "9007199254740992"),
    ],
)
def test_numbers_follow_ecmascript(value, expected) -> None:
    assert canonical_json(value).decode() == expected


def test_rfc8785_sorting_and_strings() -> None:
    # RFC 8785 section 3.2.3's sorting example: keys ordered by UTF-16 code units
    value = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
             "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
    keys = list(json.loads(canonical_json(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical_json({"a": "\u2028\n\"\\\x1f"}) == b'{"a":"\xe2\x80\xa8\\n\\"\\\\\\u001f"}'
    assert canonical_json({"b": [1, True, None], "a": {}}) == b'{"a":{},"b":[1,true,null]}'


def test_rejects_what_json_cannot_hold() -> None:
    for bad in (float("nan"), float("inf"), {1: 2}, object()):
        with pytest.raises((ValueError, TypeError)):
            canonical_json(bad)


def reference_mth(leaves):
    # straight from RFC 9162 2.1.1
    n = len(leaves)
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(reference_mth(leaves[:k]), reference_mth(leaves[k:]))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 31])
def test_merkle_matches_rfc9162_definition(n) -> None:
    leaves = [f"leaf-{i}".encode() for i in range(n)]
    assert tree_hash(leaves) == reference_mth(leaves)


def test_merkle_known_values() -> None:
    import hashlib

    assert tree_hash([]) == hashlib.sha256(b"").digest()
    assert tree_hash([b""]).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_fast_path_agrees_with_the_reference_encoder() -> None:
    import random

    from evidence.canonical import _encode

    rng = random.Random(12)
    alphabet = ["a", "Z", "é", "门", "\n", '"', "\\", "\u2028", "\ue000", "\uffff", "😀", "\x01", "1"]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))

    def value(depth: int) -> object:
        pick = rng.randint(0, 9 if depth < 3 else 5)
        if pick == 0:
            return text()
        if pick == 1:
            return rng.choice([True, False, None])
        if pick == 2:
            return rng.choice([0, -1, 7, 2**53 - 1, 2**53, -(2**60)])
        if pick in (3, 4, 5):
            return rng.choice([0.5, 37.4355, 116.3594, 1e-4, 1e-5, 1.5e16, 1e15 + 0.5, 3.0, -0.0, 1 / 3, 123456.789])
        if pick in (6, 7):
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {text(): value(depth + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(5000):
        v = value(0)
        assert canonical_json(v) == _encode(v).encode("utf-8"), v
