"""hypothesis against the Socket.IO events and the photo upload: no crash, clear errors."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.namespace import EVENT_ROLES
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant

KNOWN_CODES = {"bad_request", "too_large", "bad_sdp", "forbidden", "not_joined", "conflict", "overtime_reason_required", "unavailable", "rate_limited", "quota_exceeded"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
payloads = st.one_of(
    json_values,
    st.fixed_dictionaries({"sdp": st.text(max_size=300), "type": st.sampled_from(["offer", "answer", "x"])}),
    st.fixed_dictionaries({"checkpoint": st.text(max_size=20) | st.just("storefront")}),
    st.fixed_dictionaries({"candidate": st.text(max_size=200), "sdpMid": st.text(max_size=5), "sdpMLineIndex": st.integers(-5, 20)}),
    st.fixed_dictionaries({"lat": json_values, "lon": json_values}),
    st.fixed_dictionaries({"strokes": json_values, "png": st.text(max_size=100)}),
)
# ("connect" and "disconnect" are reserved by the Socket.IO client itself)
events = st.sampled_from(sorted(EVENT_ROLES) + ["", "__init__", "timer_phase", "finished", "on_join"])


def test_socket_payloads_never_crash(tmp_path) -> None:
    asyncio.run(_socket_payloads(tmp_path))


async def _socket_payloads(tmp_path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        inspector = Participant(server.base_url, created["inspector_url"])
        assert await inspector.connect()
        assert (await inspector.call("join"))["ok"]
        loop = asyncio.get_running_loop()

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(event=events, payload=payloads)
        def one(event: str, payload) -> None:
            if event in ("end",):
                return
            ack = asyncio.run_coroutine_threadsafe(inspector.call(event, payload, timeout=10), loop).result(15)
            time.sleep(0.03)  # stay under the per-connection event rate limit
            assert isinstance(ack, dict), (event, payload, ack)
            if not ack.get("ok"):
                assert ack["error"]["code"] in KNOWN_CODES, (event, payload, ack)
                assert ack["error"]["message"]

        await loop.run_in_executor(None, one)
        async with http.get(server.base_url + "/healthz") as r:
            assert r.status == 200
        await inspector.close()


def test_uploads_never_crash(tmp_path) -> None:
    asyncio.run(_uploads(tmp_path))


async def _uploads(tmp_path) -> None:
    async with running_server(tmp_path / "d", api_rate_per_minute="100000") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        applicant = Participant(server.base_url, created["applicant_url"])
        inspector = Participant(server.base_url, created["inspector_url"])
        assert await applicant.connect() and await inspector.connect()
        assert (await applicant.call("join"))["ok"] and (await inspector.call("join"))["ok"]  # live
        loop = asyncio.get_running_loop()
        cases: list = []

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(
            content=st.binary(max_size=2000) | st.binary(max_size=500).map(lambda rest: b"\xff\xd8\xff\xe0" + rest),
            # (control characters are refused by the HTTP client itself)
            filename=st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
            | st.sampled_from(["../../etc/passwd", "a/../../b.jpg", "..", "C:\\x.jpg", "x.jpg.exe"]),
            checkpoint=st.text(max_size=20) | st.just("storefront") | st.just("../stills"),
            content_type=st.sampled_from(["image/jpeg", "text/html", "application/x-sh", "image/svg+xml"]),
        )
        def one(content, filename, checkpoint, content_type) -> None:
            cases.append((content, filename, checkpoint, content_type))

        await loop.run_in_executor(None, one)
        for content, filename, checkpoint, content_type in cases:
            form = aiohttp.FormData()
            form.add_field("file", content, filename=filename or "x", content_type=content_type)
            form.add_field("checkpoint", checkpoint)
            async with http.post(server.base_url + "/api/v1/session/photos", data=form, headers={"X-Takan-Token": applicant.token}) as r:
                assert r.status < 500, (filename, checkpoint, await r.text())
                if r.status >= 400:
                    assert r.content_type == "application/problem+json"
                else:
                    key = (await r.json())["key"]
                    assert key.startswith("photos/storefront/") and ".." not in key
        await applicant.close()
        await inspector.close()
