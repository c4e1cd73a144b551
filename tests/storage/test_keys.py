"""Object keys: what every store accepts, and the path tricks it refuses."""

from __future__ import annotations

import pytest

from storage.keys import MAX_KEY_LENGTH, InvalidKey, validate_key, validate_prefix


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "inspections/42/media/0/000001.webm",
        "inspections/42/events.jsonl",
        "A-Z_a.z-0.9",
        "..a/b..",  # dots inside a name are just characters
        "x" * MAX_KEY_LENGTH,
    ],
)
def test_valid_keys_are_returned_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("../x", "'..' segment"),
        ("a/../../etc/passwd", "'..' segment"),
        ("a/..", "'..' segment"),
        ("./a", "'.' segment"),
        ("a/./b", "'.' segment"),
        ("/abs", "starts with '/'"),
        ("/etc/passwd", "starts with '/'"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a\\b", "backslash"),
        ("..\\..\\windows", "backslash"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("a\x7fb", "control character"),
        ("été/photo.jpg", "outside the allowed set"),
        ("a/ｆｕｌｌ", "outside the allowed set"),
        ("a b", "outside the allowed set"),
        ("a:b", "outside the allowed set"),
        ("x" * (MAX_KEY_LENGTH + 1), "characters long"),
    ],
)
def test_path_tricks_are_refused_with_a_clear_message(key: str, reason: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        validate_key(key)
    message = str(caught.value)
    assert repr(key) in message  # quotes the bad key
    assert reason in message  # says what is wrong
    assert "A-Z a-z 0-9" in message  # and what is allowed


def test_invalid_key_is_a_value_error() -> None:
    assert issubclass(InvalidKey, ValueError)


@pytest.mark.parametrize("key", [None, b"a", 42])
def test_non_strings_are_refused(key: object) -> None:
    with pytest.raises(InvalidKey, match="expected a str"):
        validate_key(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "inspections/", "inspections/42/media/0/00", "a"])
def test_listing_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "../", "a//", "/abs/", "a/../", "a\\"])
def test_bad_listing_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidKey, match="invalid listing prefix"):
        validate_prefix(prefix)
