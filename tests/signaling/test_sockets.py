"""Signaling and relay end to end with real aiortc peers through a real server."""

from __future__ import annotations

import time

import aiohttp
import pytest

from session.tokens import TokenSigner
from testkit.media import ClientPeer, encode_vp8, wait_for
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return encode_vp8(320, 240, frames=20)


@pytest.fixture
async def server(tmp_path):
    async with running_server(tmp_path / "data") as srv:
        yield srv


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def get_record(server, http, inspection_id):
    async with http.get(f"{server.base_url}/api/v1/inspections/{inspection_id}", headers=server.headers()) as r:
        return await r.json()


async def live_pair(server, http, frames, case_no="DZ-1"):
    created = await create_inspection(server, http, case_no=case_no)
    inspector = Participant(server.base_url, created["inspector_url"])
    applicant = Participant(server.base_url, created["applicant_url"])
    assert await inspector.connect() and await applicant.connect()
    await inspector.join_and_publish(frames)
    await applicant.join_and_publish(frames)
    return created, inspector, applicant


async def test_session_lifecycle_with_reconnect(server, http, frames) -> None:
    created, inspector, applicant = await live_pair(server, http, frames)
    try:
        assert await wait_for(lambda: inspector.peer.video_sink.frames > 20 and applicant.peer.video_sink.frames > 20, 20)
        assert (await get_record(server, http, created["id"]))["status"] == "live"
        assert "live" in inspector.statuses()
        presence = [d for e, d in inspector.events if e == "presence"][-1]
        assert {p["role"] for p in presence["participants"]} == {"inspector", "applicant"}

        # the applicant's page reloads: new socket, new peer connection
        await applicant.close()
        assert await wait_for(lambda: any(e == "presence" and len(d["participants"]) == 1 for e, d in inspector.events), 5)
        applicant = Participant(server.base_url, created["applicant_url"])
        assert await applicant.connect()
        await applicant.join_and_publish(frames)
        before = inspector.peer.video_sink.frames
        assert await wait_for(lambda: inspector.peer.video_sink.frames > before + 20 and applicant.peer.video_sink.frames > 20, 20)
        assert (await get_record(server, http, created["id"]))["status"] == "live"

        # only the inspector may end it
        refused = await applicant.call("end")
        assert refused["ok"] is False and refused["error"]["code"] == "forbidden" and "inspector" in refused["error"]["message"]
        ended = await inspector.call("end")
        assert ended["ok"] and ended["status"] == "ended"
        assert await wait_for(lambda: "ended" in applicant.statuses(), 5)
        record = await get_record(server, http, created["id"])
        assert record["status"] in ("ended", "judged") and record["duration_s"] > 0
        late = Participant(server.base_url, created["applicant_url"])
        assert not await late.connect()
        assert late.refused["data"]["code"] == "inspection_ended" if "data" in late.refused else late.refused["code"] == "inspection_ended"
    finally:
        await inspector.close()
        await applicant.close()


async def test_second_device_is_asked_before_taking_over(server, http, frames) -> None:
    created = await create_inspection(server, http)
    first = Participant(server.base_url, created["applicant_url"])
    second = Participant(server.base_url, created["applicant_url"])
    reloaded = Participant(server.base_url, created["applicant_url"])
    try:
        assert await first.connect()
        assert (await first.call("join", {"device": "phone-1"}))["ok"]
        assert await second.connect()
        asked = await second.call("join", {"device": "tablet-2"})
        assert asked["ok"] is False and asked["error"]["code"] == "in_use"
        assert first.sio.connected
        assert (await second.call("join", {"device": "tablet-2", "takeover": True}))["ok"]
        assert await wait_for(lambda: any(e == "kicked" for e, _ in first.events), 5)
        assert await wait_for(lambda: not first.sio.connected, 5)
        # the same device (a reload of the tab) is not asked
        assert await reloaded.connect()
        assert (await reloaded.call("join", {"device": "tablet-2"}))["ok"]
        events = await server.services.journal.events(created["id"])
        assert [e["type"] for e in events].count("participant.takeover") == 1
    finally:
        for p in (first, second, reloaded):
            await p.close()


async def test_applicant_one_time_code(tmp_path) -> None:
    async with running_server(tmp_path / "d", applicant_otp="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        applicant = Participant(server.base_url, created["applicant_url"])
        try:
            assert await applicant.connect()
            first = await applicant.call("join", {"device": "phone"})
            assert first["error"]["code"] == "otp_required" and first["error"]["sent_to"] == "138****0000"
            (_, phone, code) = server.services.otp_sender.sent[-1]
            assert phone == "13800000000"
            wrong = await applicant.call("otp_verify", {"code": "000000" if code != "000000" else "111111"})
            assert wrong["error"]["code"] == "bad_request" and "tries left" in wrong["error"]["message"]
            assert (await applicant.call("otp_send"))["error"]["code"] == "rate_limited"
            assert (await applicant.call("otp_verify", {"code": code}))["ok"]
            assert (await applicant.call("join", {"device": "phone"}))["ok"]
            events = [e["type"] for e in await server.services.journal.events(created["id"])]
            assert "participant.verified" in events
        finally:
            await applicant.close()


def refusal_code(p: Participant) -> str:
    data = p.refused or {}
    return (data.get("data") or data).get("code")


async def test_refused_connections(server, http) -> None:
    created = await create_inspection(server, http)
    token = created["applicant_url"].split("#", 1)[1]
    signer = TokenSigner((server.services.config.data_dir / "secrets" / "link.key").read_bytes())
    cases = [
        (None, "token_invalid"),
        ("not-a-dict", "token_invalid"),
        ({"token": "garbage"}, "token_invalid"),
        ({"token": token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")}, "token_invalid"),
        ({"token": "x" * 5000}, "token_invalid"),
        ({"token": signer.issue(created["id"], "applicant", int(time.time()) - 1)}, "token_expired"),
        ({"token": signer.issue("no-such-inspection", "applicant", int(time.time()) + 60)}, "inspection_unknown"),
    ]
    for auth, code in cases:
        p = Participant(server.base_url, created["applicant_url"])
        assert not await p.connect(auth=auth), auth
        assert refusal_code(p) == code, (auth, p.refused)
    async with http.post(f"{server.base_url}/api/v1/inspections/{created['id']}/cancel", json={"reason": "x"}, headers=server.headers()) as r:
        assert r.status == 200
    p = Participant(server.base_url, created["applicant_url"])
    assert not await p.connect()
    assert refusal_code(p) == "inspection_cancelled"


async def test_bad_events_leave_other_sessions_untouched(server, http, frames) -> None:
    _, inspector, applicant = await live_pair(server, http, frames, case_no="GOOD-1")
    created = await create_inspection(server, http, case_no="BAD-1")
    hostile = Participant(server.base_url, created["applicant_url"])
    try:
        assert await hostile.connect()
        assert (await hostile.call("offer", {"type": "offer", "sdp": "v=0"}))["error"]["code"] == "not_joined"
        assert (await hostile.call("join"))["ok"]
        bad = [
            ("offer", "a string", "bad_request"),
            ("offer", {"type": "offer"}, "bad_request"),
            ("offer", {"type": "answer", "sdp": "v=0"}, "bad_request"),
            ("offer", {"type": "offer", "sdp": "v=0\r\nm=video 9 RTP/AVP 0\r\n"}, "bad_sdp"),
            ("offer", {"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fingerprint:sha-256 00\r\na=ice-ufrag:x\r\n"}, "bad_sdp"),
            ("offer", {"type": "offer", "sdp": "x" * 70_000}, "too_large"),
            ("ice", {"candidate": 5}, "bad_request"),
            ("ice", {"candidate": "candidate:garbage"}, "not_joined"),
            ("media", {"audio": "yes", "video": True}, "bad_request"),
            ("join", {"extra": 1}, "bad_request"),
            ("end", {}, "forbidden"),
            ("no_such_event", {}, "bad_request"),
        ]
        for event, payload, code in bad:
            ack = await hostile.call(event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == code, (event, payload, ack)
            assert ack["error"]["message"]
        # after a good offer, garbage ICE is refused with bad_sdp
        await hostile.start_media(frames)
        ack = await hostile.call("ice", {"candidate": "candidate:garbage", "sdpMid": "0", "sdpMLineIndex": 0})
        assert ack["error"]["code"] == "bad_sdp"
        # the good session keeps flowing and the server is alive
        before = inspector.peer.video_sink.frames
        assert await wait_for(lambda: inspector.peer.video_sink.frames > before + 10, 10)
        async with http.get(server.base_url + "/healthz") as r:
            assert r.status == 200
    finally:
        for p in (hostile, inspector, applicant):
            await p.close()


async def test_event_flood_disconnects_only_the_flooder(server, http) -> None:
    created = await create_inspection(server, http)
    flooder = Participant(server.base_url, created["applicant_url"])
    try:
        assert await flooder.connect()
        for _ in range(200):
            await flooder.sio.emit("keyframe", {})
        assert await wait_for(lambda: not flooder.sio.connected, 5)
        async with http.get(server.base_url + "/healthz") as r:
            assert r.status == 200
    finally:
        await flooder.close()


async def test_turn_logins_are_short_lived_and_per_participant(tmp_path) -> None:
    import base64
    import hashlib
    import hmac

    async with running_server(tmp_path / "d", turn_urls="turn:turn.example:3478", turn_secret="s3cret") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        applicant = Participant(server.base_url, created["applicant_url"])
        try:
            assert await applicant.connect()
            joined = await applicant.call("join")
            (turn,) = joined["ice_servers"]
            expiry, user = turn["username"].split(":", 1)
            assert 0 < int(expiry) - time.time() <= 4 * 3600 + 5 and user.endswith("applicant")
            expected = base64.b64encode(hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()).decode()
            assert turn["credential"] == expected
        finally:
            await applicant.close()


async def test_offers_with_bad_mids_or_candidates_get_bad_sdp_with_a_reason(server, http, caplog) -> None:
    """aiortc fails on an offer without ``a=mid`` (or with one repeated) only when it makes
    the answer, and raised ``internal`` with a traceback; a garbage candidate line failed
    with an empty message. Each is ``bad_sdp`` saying what is wrong."""
    created = await create_inspection(server, http)
    applicant = Participant(server.base_url, created["applicant_url"])
    client = ClientPeer()
    try:
        assert await applicant.connect() and (await applicant.call("join"))["ok"]
        good = await client.offer()
        lines = good.split("\r\n")
        first_mid = next(line for line in lines if line.startswith("a=mid:"))
        no_mid = "\r\n".join(line for line in lines if not line.startswith("a=mid:"))
        repeated = good.replace(first_mid + "\r\n", first_mid + "\r\n" + first_mid + "\r\n", 1)
        same_mid = good.replace("a=mid:1\r\n", "a=mid:0\r\n")
        media_line = next(n for n, line in enumerate(lines) if line.startswith("m="))
        garbage = "\r\n".join(lines[: media_line + 1] + ["a=candidate:garbage"] + lines[media_line + 1:])
        cases = [(no_mid, "a=mid"), (repeated, "a=mid"), (same_mid, "'0'"), (garbage, "a=candidate:garbage")]
        for sdp, says in cases:
            ack = await applicant.call("offer", {"type": "offer", "sdp": sdp})
            assert ack["ok"] is False and ack["error"]["code"] == "bad_sdp", ack
            message = ack["error"]["message"]
            assert says in message and not message.rstrip().endswith(":"), message
        assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        # the page can still offer a good one
        ack = await applicant.call("offer", {"type": "offer", "sdp": good})
        assert ack["ok"], ack
    finally:
        await client.close()
        await applicant.close()
