"""Time-based one-time passwords (RFC 6238 over RFC 4226): the second factor of clause 9.3.3.

SHA-1, 6 digits, 30-second steps: what every authenticator app (Google Authenticator,
Microsoft Authenticator, FreeOTP, and the ones built into Chinese super-apps) accepts from an
``otpauth://`` QR code without extra options.

Replay protection is the caller's record: :func:`verify` returns the time step a code
matched, the account stores it as its last accepted step, and the next :func:`verify` passes
``after_step`` so that a code for that step or an earlier one is refused.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import secrets
import struct
from typing import Optional, Union
from urllib.parse import quote, urlencode

__all__ = [
    "DIGITS",
    "PERIOD_S",
    "SECRET_BYTES",
    "Instant",
    "code_at",
    "hotp",
    "new_secret",
    "provisioning_uri",
    "step_at",
    "verify",
]

DIGITS = 6
PERIOD_S = 30
#: 160 bits, the length of a SHA-1 output, as RFC 4226 section 4 recommends.
SECRET_BYTES = 20

#: A moment: an aware datetime, or seconds since the Unix epoch.
Instant = Union[datetime.datetime, float, int]


def new_secret() -> str:
    """Return a new random 160-bit secret in base32 without padding (32 characters)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    """Decode a base32 secret (case-insensitive, spaces and missing padding allowed)."""
    cleaned = "".join(secret.split()).upper()
    cleaned += "=" * (-len(cleaned) % 8)
    try:
        return base64.b32decode(cleaned, casefold=False)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ValueError("the TOTP secret is not valid base32; generate one with new_secret()") from exc


def provisioning_uri(secret: str, account: str, issuer: str = "Takan") -> str:
    """Return the ``otpauth://totp/...`` URI to show as a QR code to the account's owner.

    Follows the Key Uri Format of Google Authenticator: label ``issuer:account``, and the
    issuer repeated as a parameter. The URI contains the secret: show it once, never log it.
    """
    _key(secret)  # refuse a malformed secret here rather than in the user's app
    label = quote(f"{issuer}:{account}", safe=":@")
    query = urlencode(
        {
            "secret": "".join(secret.split()).upper().rstrip("="),
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": PERIOD_S,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def _seconds(at: Instant) -> float:
    if isinstance(at, datetime.datetime):
        if at.tzinfo is None:
            raise ValueError("pass an aware datetime (tzinfo=UTC), not a naive one")
        return at.timestamp()
    return float(at)


def step_at(at: Instant) -> int:
    """Return the RFC 6238 time step (``T``) containing the moment ``at``."""
    return int(_seconds(at) // PERIOD_S)


def hotp(key: bytes, counter: int, digits: int = DIGITS) -> str:
    """Return the RFC 4226 HOTP value of ``key`` at ``counter``, zero-padded to ``digits``."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    binary = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def code_at(secret: str, step: int, digits: int = DIGITS) -> str:
    """Return the code of ``secret`` (base32) for time step ``step``."""
    return hotp(_key(secret), step, digits)


def verify(
    secret: str,
    code: str,
    at: Instant,
    window: int = 1,
    *,
    after_step: Optional[int] = None,
) -> Optional[int]:
    """Return the time step ``code`` is valid for at ``at``, or None if it is not valid.

    Steps from ``window`` before to ``window`` after the current one are tried (the default
    allows 30 s of clock drift either way). Steps at or before ``after_step`` (the last step
    accepted for this account) are skipped, so a code cannot be used twice. Spaces in
    ``code`` are ignored; anything but :data:`DIGITS` digits is refused. Comparison is
    constant-time.
    """
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    candidate = "".join(code.split())
    if len(candidate) != DIGITS or not (candidate.isascii() and candidate.isdigit()):
        return None
    key = _key(secret)
    current = step_at(at)
    matched: Optional[int] = None
    # Try every step (no early exit), so the time taken does not tell which one matched.
    for step in range(current - window, current + window + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(hotp(key, step), candidate) and matched is None:
            matched = step
    return matched
