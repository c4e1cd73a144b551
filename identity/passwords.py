"""Passwords: memory-hard hashing (argon2id) and the complexity rules of clause 9.3.3.

Hashes are PHC strings (``$argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>``) that carry their
own parameters, so the parameters can be raised later: :meth:`Passwords.needs_rehash` tells
when a stored hash was made with weaker ones, and :class:`identity.accounts.Accounts`
rehashes at the next successful login.

Passwords are normalised to Unicode NFKC before hashing and checking, so that the same
password typed through different input methods (full-width and half-width digits, composed
and decomposed characters) is the same password.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "DEFAULT_PARAMETERS",
    "MAX_LENGTH",
    "MIN_CLASSES",
    "MIN_LENGTH",
    "HashParameters",
    "Passwords",
    "check_complexity",
    "common_passwords",
    "normalise",
]

MIN_LENGTH = 12
#: Longer input is refused so that nobody can make the server hash megabytes.
MAX_LENGTH = 128
MIN_CLASSES = 3
#: Runs of this many identical or consecutive characters ('aaaa', '1234', 'dcba') are refused.
MAX_RUN = 4


@dataclass(frozen=True, slots=True)
class HashParameters:
    """argon2id cost parameters; ``memory_cost_kib`` is in KiB (65536 KiB = 64 MiB)."""

    time_cost: int = 3
    memory_cost_kib: int = 64 * 1024
    parallelism: int = 2
    hash_len: int = 32
    salt_len: int = 16


#: Production parameters: about 64 MiB and tens of milliseconds per hash on a server core.
#: Raise them here; old hashes are upgraded at their owner's next login.
DEFAULT_PARAMETERS = HashParameters()


def normalise(password: str) -> str:
    """Return ``password`` in Unicode NFKC, the form that is hashed and checked."""
    return unicodedata.normalize("NFKC", password)


class Passwords:
    """Hash and verify passwords with argon2id at fixed parameters.

    Hashing is CPU- and memory-bound and blocks for tens of milliseconds at the default
    parameters: async callers should run it in a worker thread (``asyncio.to_thread``) and
    bound how many run at once (each one takes ``memory_cost_kib`` of memory).
    """

    def __init__(self, parameters: HashParameters = DEFAULT_PARAMETERS) -> None:
        self.parameters = parameters
        self._hasher = argon2.PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost_kib,
            parallelism=parameters.parallelism,
            hash_len=parameters.hash_len,
            salt_len=parameters.salt_len,
            type=argon2.Type.ID,
        )

    def hash(self, password: str) -> str:
        """Return the PHC string of ``password`` with a fresh random salt."""
        return self._hasher.hash(normalise(password))

    def verify(self, password_hash: str, password: str) -> bool:
        """True if ``password`` matches ``password_hash``; False on mismatch or a malformed hash.

        The comparison is constant-time (done inside argon2).
        """
        try:
            return self._hasher.verify(password_hash, normalise(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True if ``password_hash`` was made with parameters other than this hasher's."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (``identity/data/common-passwords.txt``), lower-cased.

    Cached: the file is read once per process and never changes while it runs.
    """
    text = resources.files("identity").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


# Common substitutions ('P@ssw0rd'). A password is refused if its skeleton (substitutions
# undone, both ways mapped to one letter) equals the skeleton of a listed password.
_SKELETON = str.maketrans(
    {"@": "a", "4": "a", "0": "o", "1": "i", "l": "i", "!": "i", "3": "e", "$": "s", "5": "s", "7": "t"}
)


def _skeleton(lowered: str) -> str:
    return lowered.translate(_SKELETON)


@cache
def _common_skeletons() -> frozenset[str]:
    return frozenset(_skeleton(p) for p in common_passwords())


def _classes(password: str) -> int:
    upper = any(c.isupper() for c in password)
    lower = any(c.islower() for c in password)
    digit = any(c.isdecimal() for c in password)
    symbol = any(not (c.isupper() or c.islower() or c.isdecimal()) for c in password)
    return upper + lower + digit + symbol


def _has_run(password: str, length: int = MAX_RUN) -> bool:
    """True if ``password`` has ``length`` identical or consecutive (up or down) characters."""
    folded = password.lower()
    for start in range(len(folded) - length + 1):
        window = folded[start : start + length]
        if len(set(window)) == 1:
            return True
        if not (window.isascii() and (window.isdigit() or window.isalpha())):
            continue
        steps = {ord(b) - ord(a) for a, b in zip(window, window[1:])}
        if steps in ({1}, {-1}):
            return True
    return False


def _identity_parts(user_id: str, real_name: str) -> list[str]:
    """The pieces of the user id and real name a password must not contain (lower-cased)."""
    parts: list[str] = []
    uid = user_id.strip().lower()
    if len(uid) >= 3:
        parts.append(uid)
    # 'zhang.san' also forbids 'zhang': a pinyin name part is as guessable as the whole id.
    for piece in uid.replace("_", ".").replace("-", ".").split("."):
        if len(piece) >= 4 and piece not in parts:
            parts.append(piece)
    name = "".join(normalise(real_name).lower().split())
    if len(name) >= 2:
        parts.append(name)
    return parts


def check_complexity(password: str, user_id: str, real_name: str) -> list[str]:
    """Return what is wrong with ``password`` for this user; an empty list means it is acceptable.

    The rules (clause 9.3.3, GB/T 22239 level 3): at least :data:`MIN_LENGTH` characters (and
    at most :data:`MAX_LENGTH`); characters from at least :data:`MIN_CLASSES` of upper case,
    lower case, digits and symbols; not containing the user id or the real name; not a common
    password; no run of four identical or consecutive characters. Messages are in Chinese with
    English in parentheses, fit to show to the user, and never quote the password.
    """
    text = normalise(password)
    problems: list[str] = []
    if len(text) < MIN_LENGTH:
        problems.append(f"密码至少需要 {MIN_LENGTH} 个字符 (at least {MIN_LENGTH} characters)")
    if len(text) > MAX_LENGTH:
        problems.append(f"密码最多 {MAX_LENGTH} 个字符 (at most {MAX_LENGTH} characters)")
    if _classes(text) < MIN_CLASSES:
        problems.append(
            "密码需包含大写字母、小写字母、数字、符号中的至少三类 "
            "(at least 3 of: upper case, lower case, digits, symbols)"
        )
    lowered = "".join(text.lower().split())
    if any(part in lowered for part in _identity_parts(user_id, real_name)):
        problems.append("密码不能包含用户名或姓名 (must not contain the user id or the name)")
    if lowered in common_passwords() or _skeleton(lowered) in _common_skeletons():
        problems.append("密码过于常见，请换一个 (too common; choose another)")
    if _has_run(text):
        problems.append(
            "密码不能包含 4 个及以上相同或连续的字符，如 aaaa、1234、dcba "
            "(no run of 4 identical or consecutive characters such as aaaa, 1234, dcba)"
        )
    return problems
