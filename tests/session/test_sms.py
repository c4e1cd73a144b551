"""The HTTP SMS gateway adapter (issue 11, part 5) against a gateway the test runs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import aiohttp
import pytest
from aiohttp import web

from errors import Unavailable
from session.sms import HttpSmsGateway
from testkit.server import create_inspection, free_port, running_server
from testkit.sockets import Participant

SECRET = "sms-gateway-secret-0123"


class Gateway:
    """A carrier's HTTP SMS API on loopback: answers with the statuses it is told to."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.port = free_port()
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.accepted: list[dict] = []
        self.attempts = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms/send"

    async def _send(self, request: web.Request) -> web.Response:
        self.attempts += 1
        raw = await request.read()
        parts = dict(item.split("=", 1) for item in request.headers.get("Takan-Signature", "").split(",") if "=" in item)
        expected = hmac.new(SECRET.encode(), f"{parts.get('t')}.".encode() + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            return web.Response(status=401, text="bad signature")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.accepted.append(json.loads(raw))
            return web.json_response({"ok": True})
        return web.Response(status=status, text="号码不可用" if status < 500 else "overloaded")

    async def __aenter__(self) -> "Gateway":
        app = web.Application()
        app.router.add_post("/sms/send", self._send)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_a_signed_code_is_retried_past_a_5xx() -> None:
    async with Gateway([503]) as gateway:
        sender = HttpSmsGateway(gateway.url, SECRET, timeout_s=2, retries=2, backoff_s=0.05)
        await sender.send("insp-1", "13800000000", "123456")
    assert gateway.attempts == 2
    (message,) = gateway.accepted
    assert message["to"] == "13800000000" and message["template"] == "otp" and message["params"] == {"code": "123456"}
    assert "123456" in message["text"] and message["message_id"]


async def test_a_refusal_is_not_retried_and_says_what_the_gateway_said() -> None:
    async with Gateway([400]) as gateway:
        sender = HttpSmsGateway(gateway.url, SECRET, timeout_s=2, retries=2, backoff_s=0.05)
        with pytest.raises(Unavailable) as raised:
            await sender.send_invite("insp-1", "13800000000", "https://t.example/join#x", "DZ-1")
    assert gateway.attempts == 1
    assert "HTTP 400" in raised.value.detail and "号码不可用" in raised.value.detail
    assert raised.value.code == "sms_failed" and "13800000000" not in raised.value.detail


async def test_a_silent_gateway_times_out_after_its_retries() -> None:
    async with Gateway(delay_s=1.0) as gateway:
        sender = HttpSmsGateway(gateway.url, SECRET, timeout_s=0.2, retries=1, backoff_s=0.05)
        with pytest.raises(Unavailable, match="no answer within 0.2 s"):
            await sender.send("insp-1", "13800000000", "123456")
    assert gateway.attempts == 2


async def test_invite_and_one_time_code_go_through_the_configured_gateway(tmp_path) -> None:
    async with Gateway() as gateway, aiohttp.ClientSession() as http:
        async with running_server(tmp_path / "data", sms_gateway_url=gateway.url, sms_gateway_secret=SECRET, applicant_otp="true") as server:
            created = await create_inspection(server, http)
            url = f"{server.base_url}/api/v1/inspections/{created['id']}/invite"
            async with http.post(url, json={}, headers=server.headers()) as r:
                sent = await r.json()
            assert r.status == 200, sent
            assert "*" in sent["sent_to"]
            (invite,) = gateway.accepted
            assert invite["template"] == "invite" and invite["params"]["url"].startswith(server.base_url + "/join#")
            assert invite["to"] == "13800000000"
            events = await server.services.journal.events(created["id"])
            assert events[-1]["type"] == "applicant.invited"
            applicant = Participant(server.base_url, created["applicant_url"])
            try:
                assert await applicant.connect()
                joined = await applicant.call("join")
                assert joined["error"]["code"] == "otp_required", joined
            finally:
                await applicant.close()
            assert gateway.accepted[-1]["template"] == "otp" and len(gateway.accepted[-1]["params"]["code"]) == 6
            # the gateway starts refusing: the inspector is told what it said
            gateway.statuses = [400]
            async with http.post(url, json={}, headers=server.headers()) as r:
                problem = await r.json(content_type=None)
            assert r.status == 503 and "HTTP 400" in problem["detail"], problem
