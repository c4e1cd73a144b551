"""Role tokens carried in participants' links.

A token is ``base64url(json payload) "." base64url(HMAC-SHA256)``; the payload binds one
inspection, one role and an expiry. The secret is per deployment (shared by all nodes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

ROLES = ("inspector", "applicant", "observer")
MAX_TOKEN_LENGTH = 512


class TokenInvalid(ValueError):
    code = "token_invalid"


class TokenExpired(ValueError):
    code = "token_expired"


@dataclass(frozen=True)
class RoleToken:
    inspection_id: str
    role: str
    expires_at: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the link secret must be at least 32 bytes")
        self._secret = secret

    def issue(self, inspection_id: str, role: str, expires_at: int, nonce: str | None = None) -> str:
        """A token; ``nonce`` (default random) names one guest's own link (an invited observer)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        payload = json.dumps(
            {"i": inspection_id, "r": role, "e": int(expires_at), "n": nonce or secrets.token_hex(4)},
            separators=(",", ":"),
        ).encode()
        body = _b64(payload)
        return body + "." + _b64(self._mac(body))

    def verify(self, token: object, now: float | None = None) -> RoleToken:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("the link token is missing or malformed")
        body, _, mac = token.partition(".")
        try:
            given = _unb64(mac)
            payload = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            raise TokenInvalid("the link token is malformed") from None
        if not hmac.compare_digest(given, self._mac(body)):
            raise TokenInvalid("the link token's signature does not match")
        if not isinstance(payload, dict) or payload.get("r") not in ROLES:
            raise TokenInvalid("the link token names no valid role")
        if not isinstance(payload.get("i"), str) or not isinstance(payload.get("e"), int):
            raise TokenInvalid("the link token is incomplete")
        if (now if now is not None else time.time()) >= payload["e"]:
            raise TokenExpired("the link has expired")
        return RoleToken(payload["i"], payload["r"], payload["e"], str(payload.get("n", "")))

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._secret, b"takan-link-v1." + body.encode(), hashlib.sha256).digest()
