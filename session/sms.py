"""Text messages to applicants through an HTTP SMS gateway: the link invite and one-time codes.

The gateway is the deployment's (a carrier's or the government SMS platform's HTTP API,
or an adapter in front of one). Takan POSTs one JSON object per message::

    {"message_id": "…", "to": "13800000000", "template": "invite" | "otp",
     "params": {...}, "text": "…"}

signed like the webhooks: ``Takan-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>.<raw body>")>``. A 2xx is accepted; a 5xx, a timeout or a refused connection is
retried (``retries`` more times, backing off from ``backoff_s``); anything else (a 4xx:
the gateway refuses this message) is not. What the gateway said when it did not accept a
message is raised as :class:`~errors.Unavailable` (code ``sms_failed``) so that the
inspector sees it. Without a gateway, :class:`session.otp.ConsoleOtpSender` logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any, Optional, Protocol

import aiohttp

from errors import Unavailable
from privacy.masking import mask_phone

logger = logging.getLogger(__name__)

USER_AGENT = "Takan-SMS/1"
_EXCERPT = 200


class InviteSender(Protocol):
    async def send_invite(self, inspection_id: str, phone: str, url: str, case_no: str) -> None: ...


class SmsFailed(Unavailable):
    code = "sms_failed"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class HttpSmsGateway:
    """Sends invites and one-time codes to ``url``; also an :class:`~session.otp.OtpSender`."""

    def __init__(self, url: str, secret: str, timeout_s: float = 5.0, retries: int = 2, backoff_s: float = 0.5) -> None:
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    async def send(self, inspection_id: str, phone: str, code: str) -> None:
        """A one-time code (:class:`session.otp.OtpSender`)."""
        await self.deliver(inspection_id, phone, "otp", {"code": code},
                           f"【踏勘】您的远程踏勘验证码为 {code}，10 分钟内有效。请勿告诉他人。")

    async def send_invite(self, inspection_id: str, phone: str, url: str, case_no: str) -> None:
        await self.deliver(inspection_id, phone, "invite", {"url": url, "case_no": case_no},
                           f"【踏勘】您的案件 {case_no} 的远程踏勘链接：{url} 请在约定时间用手机打开。")

    async def deliver(self, inspection_id: str, phone: str, template: str, params: dict[str, Any], text: str) -> None:
        message = {"message_id": secrets.token_hex(12), "to": phone, "template": template, "params": params, "text": text}
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
        problem: Optional[str] = "not sent"
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            retry, problem = await self._post(body)
            if problem is None:
                logger.info("inspection %s: %s SMS to %s accepted (%s)", inspection_id, template, mask_phone(phone), message["message_id"])
                return
            logger.warning("inspection %s: %s SMS to %s, attempt %d: %s", inspection_id, template, mask_phone(phone), attempt + 1, problem)
            if not retry:
                break
        raise SmsFailed(f"the SMS gateway did not take the message to {mask_phone(phone)}: {problem}",
                        extra={"sent_to": mask_phone(phone)})

    async def _post(self, body: bytes) -> tuple[bool, Optional[str]]:
        """(worth retrying, problem or None if accepted)."""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Takan-Signature": sign(self.secret, body, int(time.time())),
        }
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.post(self.url, data=body, headers=headers, allow_redirects=False) as response:
                    if 200 <= response.status < 300:
                        return False, None
                    excerpt = (await response.content.read(_EXCERPT)).decode("utf-8", "replace").strip()
                    return response.status >= 500, f"HTTP {response.status} {excerpt}".strip()
        except asyncio.TimeoutError:
            return True, f"no answer within {self.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            return True, f"could not reach it ({exc.__class__.__name__})"
