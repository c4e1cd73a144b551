"""Optional one-time codes for applicants (issue: identity of the person behind a link).

When enabled (``TAKAN_APPLICANT_OTP``), an applicant's device must enter a 6-digit code sent
to the applicant's contact phone before its camera starts. The sender is pluggable: the
default writes the code to the log (for a trial or a kiosk operator); a deployment plugs in
its SMS gateway behind :class:`OtpSender`.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Optional, Protocol

from approval.errors import BadRequest, RateLimited

from privacy.masking import mask_phone

logger = logging.getLogger(__name__)

CODE_TTL_S = 600
MAX_ATTEMPTS = 5
RESEND_AFTER_S = 30


class OtpSender(Protocol):
    async def send(self, inspection_id: str, phone: str, code: str) -> None: ...


class ConsoleOtpSender:
    """Writes the code to the log (phone masked); keeps what it sent for tests."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, inspection_id: str, phone: str, code: str) -> None:
        self.sent.append((inspection_id, phone, code))
        logger.warning("one-time code for inspection %s, phone %s: %s", inspection_id, mask_phone(phone), code)


@dataclass
class _Pending:
    code: str
    expires: float
    sent_at: float
    attempts: int = 0


class OneTimeCodes:
    """Codes per (inspection, device), and the devices that proved themselves."""

    def __init__(self, sender: OtpSender) -> None:
        self.sender = sender
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._verified: set[tuple[str, str]] = set()

    def verified(self, inspection_id: str, device: str) -> bool:
        return (inspection_id, device) in self._verified

    async def send(self, inspection_id: str, device: str, phone: str, force: bool = False) -> None:
        now = time.monotonic()
        pending = self._pending.get((inspection_id, device))
        if pending is not None and pending.expires > now and not force:
            return  # a live code was already sent
        if pending is not None and now - pending.sent_at < RESEND_AFTER_S:
            raise RateLimited(f"a code was sent {now - pending.sent_at:.0f} s ago; wait {RESEND_AFTER_S} s before asking again")
        code = f"{secrets.randbelow(10**6):06d}"
        self._pending[(inspection_id, device)] = _Pending(code, now + CODE_TTL_S, now)
        await self.sender.send(inspection_id, phone, code)

    def verify(self, inspection_id: str, device: str, code: object) -> None:
        pending = self._pending.get((inspection_id, device))
        if pending is None or pending.expires <= time.monotonic():
            raise BadRequest("no valid code: ask for a new one")
        if pending.attempts >= MAX_ATTEMPTS:
            raise RateLimited("too many wrong codes: ask for a new one")
        pending.attempts += 1
        if not isinstance(code, str) or not hmac.compare_digest(code.strip(), pending.code):
            left = MAX_ATTEMPTS - pending.attempts
            raise BadRequest(f"the code is not right; {left} tries left" if left else "the code is not right; ask for a new one")
        del self._pending[(inspection_id, device)]
        self._verified.add((inspection_id, device))

    def masked_phone(self, phone: Optional[str]) -> Optional[str]:
        return mask_phone(phone) if phone else None
