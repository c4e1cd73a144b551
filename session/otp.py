"""Optional one-time codes for applicants (issue: identity of the person behind a link).

When enabled (``TAKAN_APPLICANT_OTP``), an applicant's device must enter a 6-digit code sent
to the applicant's contact phone before its camera starts. The sender is pluggable: the
default writes the code to the log (for a trial or a kiosk operator); a deployment plugs in
its SMS gateway behind :class:`OtpSender`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Optional, Protocol

from errors import BadRequest, RateLimited
from privacy.masking import mask_phone
from storage.livestate import LiveState

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

    async def send_invite(self, inspection_id: str, phone: str, url: str, case_no: str) -> None:
        """The applicant's link (:class:`session.sms.InviteSender`), logged with the phone masked."""
        self.sent.append((inspection_id, phone, url))
        logger.warning("invite for inspection %s (case %s), phone %s: %s", inspection_id, case_no, mask_phone(phone), url)


#: How long a device that entered its code stays verified (a working day of reconnects).
VERIFIED_TTL_S = 12 * 3600


class OneTimeCodes:
    """Codes per (inspection, device), and the devices that proved themselves.

    Both live in the live-state store with an expiry, so every node sharing Redis sees
    them, a restart of one node forgets nothing, and finished inspections leave no trace.
    """

    def __init__(self, sender: OtpSender, live: LiveState) -> None:
        self.sender = sender
        self.live = live

    @staticmethod
    def _key(kind: str, inspection_id: str, device: str) -> str:
        return f"otp:{kind}:{inspection_id}:{hashlib.sha256(device.encode()).hexdigest()[:32]}"

    async def verified(self, inspection_id: str, device: str) -> bool:
        return await self.live.get_value(self._key("ok", inspection_id, device)) is not None

    async def send(self, inspection_id: str, device: str, phone: str, force: bool = False) -> None:
        now = time.time()
        key = self._key("pending", inspection_id, device)
        pending = await self.live.get_value(key)
        if pending is not None and pending["expires"] > now and not force:
            return  # a live code was already sent
        if pending is not None and now - pending["sent_at"] < RESEND_AFTER_S:
            raise RateLimited(f"a code was sent {now - pending['sent_at']:.0f} s ago; wait {RESEND_AFTER_S} s before asking again")
        code = f"{secrets.randbelow(10**6):06d}"
        await self.live.put_value(key, {"code": code, "expires": now + CODE_TTL_S, "sent_at": now, "attempts": 0}, CODE_TTL_S)
        await self.sender.send(inspection_id, phone, code)

    async def verify(self, inspection_id: str, device: str, code: str) -> None:
        key = self._key("pending", inspection_id, device)
        pending = await self.live.get_value(key)
        now = time.time()
        if pending is None or pending["expires"] <= now:
            raise BadRequest("no valid code: ask for a new one")
        if pending["attempts"] >= MAX_ATTEMPTS:
            raise RateLimited("too many wrong codes: ask for a new one")
        pending["attempts"] += 1
        await self.live.put_value(key, pending, max(1.0, pending["expires"] - now))
        if not hmac.compare_digest(code.strip(), pending["code"]):
            left = MAX_ATTEMPTS - pending["attempts"]
            raise BadRequest(f"the code is not right; {left} tries left" if left else "the code is not right; ask for a new one")
        await self.live.delete_value(key)
        await self.live.put_value(self._key("ok", inspection_id, device), {"at": now}, VERIFIED_TTL_S)

    def masked_phone(self, phone: Optional[str]) -> Optional[str]:
        return mask_phone(phone) if phone else None
