"""Password hashing (argon2id, rehash on raised parameters) and the complexity rules."""

from __future__ import annotations

import pytest

from identity.passwords import (
    DEFAULT_PARAMETERS,
    HashParameters,
    Passwords,
    check_complexity,
    common_passwords,
)
from tests.identity.conftest import FAST

# Which rule each message comes from, by a phrase of its English part.
LENGTH, CLASSES, IDENTITY, COMMON, RUN = "at least 12", "at least 3 of", "user id", "too common", "run of 4"


def rules_broken(password: str, user_id: str = "zhang.san", name: str = "张三") -> set[str]:
    problems = check_complexity(password, user_id, name)
    return {rule for rule in (LENGTH, CLASSES, IDENTITY, COMMON, RUN) if any(rule in p for p in problems)}


@pytest.mark.parametrize(
    ("password", "broken"),
    [
        ("Kx9#mPq2$vLw", set()),  # all four classes, 12 characters
        ("kx9#mpq2$vlw", set()),  # three classes are enough (no upper case)
        ("Kx9mPq2vLwTr", set()),  # upper, lower, digit
        ("Kx9#mPq2$vL", {LENGTH}),  # 11 characters
        ("kxzmpqtvlwrb", {CLASSES}),  # lower case only
        ("kx9mpq2vlwtr", {CLASSES}),  # two classes
        ("Zhang.san#2026", {IDENTITY}),  # the user id, in any case
        ("Zhang#Kx9mPq2v", {IDENTITY}),  # a part of the user id
        ("张三Kx9#mPq2$vLw", {IDENTITY}),  # the real name
        ("P@ssw0rd1234", {COMMON, RUN}),  # on the list once substitutions are undone (and 1234)
        ("Admin@123456", {COMMON, RUN}),
        ("1qaz@WSX3edc", {COMMON}),
        ("Kx9#mPqqqq$vLw", {RUN}),  # four identical
        ("Kx9#abcdP2$vLw", {RUN}),  # four ascending letters
        ("Kx9#DCBA2$vLwp", {RUN}),  # four descending, case-insensitive
        ("Kx9#m6789$vLwp", {RUN}),  # four ascending digits
        ("Kx9#m689$vLwp0", set()),  # three in a row is fine
        ("abc", {LENGTH, CLASSES}),
    ],
)
def test_complexity_table(password: str, broken: set[str]) -> None:
    assert rules_broken(password) == broken


def test_messages_are_chinese_with_english_and_never_quote_the_password() -> None:
    password = "zhang.san1111"
    problems = check_complexity(password, "zhang.san", "张三")
    assert problems
    for problem in problems:
        assert any("\u4e00" <= c <= "\u9fff" for c in problem)  # Chinese
        assert "(" in problem and problem.endswith(")")  # English in parentheses
        assert password not in problem and "1111" not in problem


def test_too_long_is_refused() -> None:
    assert any("at most 128" in p for p in check_complexity("Kx9#mPq2$vLw" * 11, "li.si", "李四"))


def test_full_width_input_counts_as_the_same_characters() -> None:
    # NFKC: full-width '１２３４' typed by a Chinese IME is the run '1234'.
    assert rules_broken("Kx9#m１２３４$vLw") == {RUN}


def test_common_list_is_shipped_and_lower_cased() -> None:
    words = common_passwords()
    assert "123456" in words and "p@ssw0rd" in words
    assert all(w == w.lower() and w == w.strip() for w in words)
    assert not any(w.startswith("#") for w in words)


def test_default_parameters_are_memory_hard() -> None:
    assert DEFAULT_PARAMETERS.memory_cost_kib >= 64 * 1024
    assert DEFAULT_PARAMETERS.time_cost >= 3 and DEFAULT_PARAMETERS.parallelism >= 2


def test_hash_is_argon2id_with_its_parameters_and_a_fresh_salt() -> None:
    passwords = Passwords(FAST)
    first = passwords.hash("Kx9#mPq2$vLw")
    assert first.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert "Kx9#mPq2$vLw" not in first
    assert passwords.hash("Kx9#mPq2$vLw") != first  # salted


def test_verify() -> None:
    passwords = Passwords(FAST)
    stored = passwords.hash("Kx9#mPq2$vLw")
    assert passwords.verify(stored, "Kx9#mPq2$vLw")
    assert not passwords.verify(stored, "Kx9#mPq2$vLW")
    assert not passwords.verify(stored, "")
    assert not passwords.verify("not a hash", "Kx9#mPq2$vLw")


def test_verify_normalises_unicode() -> None:
    passwords = Passwords(FAST)
    stored = passwords.hash("Ｋｘ９＃ｍＰｑ２＄ｖＬｗ")  # full width
    assert passwords.verify(stored, "Kx9#mPq2$vLw")


def test_needs_rehash_when_parameters_are_raised() -> None:
    old = Passwords(FAST)
    stronger = Passwords(HashParameters(time_cost=2, memory_cost_kib=16, parallelism=1))
    stored = old.hash("Kx9#mPq2$vLw")
    assert not old.needs_rehash(stored)
    assert stronger.needs_rehash(stored)
    assert stronger.verify(stored, "Kx9#mPq2$vLw")  # old hashes still verify
    assert not stronger.needs_rehash(stronger.hash("Kx9#mPq2$vLw"))
    assert stronger.needs_rehash("garbage")
