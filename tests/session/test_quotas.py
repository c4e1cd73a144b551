"""session/quotas.py: every event a client's message logs has a per-inspection quota."""

from __future__ import annotations

import aiohttp
import pytest

from session import quotas
from session.quotas import LIMITS, Limit, Usage
from testkit.server import create_inspection, logged_events, running_server
from testkit.sockets import joined_pair

ARROW = {"kind": "arrow", "points": [[0.2, 0.3], [0.5, 0.5]]}


def test_every_logged_client_event_has_a_quota_named_and_counted() -> None:
    for kind in ("drawing", "camera", "camera_result", "location", "prompt", "sign_request", "overtime", "still"):
        assert kind in LIMITS and kind in quotas.NAMES and kind in quotas.EVENT_KINDS.values()
    assert LIMITS["location"][0].count >= 3000 and LIMITS["drawing"][0].count >= 300 and LIMITS["overtime"][0].count >= 3


def test_usage_is_rebuilt_from_the_log() -> None:
    events = [{"type": "location.updated", "actor": "applicant", "data": {"lat": 1.0, "lon": 2.0, "accuracy_m": 5}}] * 3
    events += [{"type": "drawing.shown", "actor": "inspector", "data": {"shapes": [ARROW], "staff": {"user_id": "u", "name": "n"}}},
               {"type": "drawing.cleared", "actor": "inspector", "data": {}}]
    usage = Usage.from_events(events)
    small = {"location": (Limit(3, quotas.MiB), Limit(3, quotas.MiB)), "drawing": (Limit(2, quotas.MiB), Limit(2, quotas.MiB))}
    original = dict(LIMITS)
    LIMITS.update(small)
    try:
        for kind, role in (("location", "applicant"), ("drawing", "inspector")):
            with pytest.raises(quotas.QuotaExceeded):
                usage.check(kind, role, 10)
    finally:
        LIMITS.clear()
        LIMITS.update(original)


async def test_logged_events_over_their_quota_are_refused_and_not_logged(tmp_path, monkeypatch) -> None:
    """Measured before: ~400 events and 2.3 MB of log in 35 s from draw, overtime and
    camera_result. Each is refused past its quota, as notes and chat are."""
    for kind in ("drawing", "camera_result", "location", "prompt", "sign_request", "overtime"):
        monkeypatch.setitem(LIMITS, kind, (Limit(2, quotas.MiB), Limit(2, quotas.MiB)))
    monkeypatch.setitem(LIMITS, "camera", (Limit(4, quotas.MiB), Limit(4, quotas.MiB)))
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        async with joined_pair(server.base_url, created) as (inspector, applicant):
            request_ids = [(await inspector.call("camera", {"action": "torch_on"}))["request_id"] for _ in range(3)]
            cases = [
                (inspector, "draw", lambda n: {"shapes": [ARROW]}, "drawings"),
                (inspector, "overtime", lambda n: {"reason": f"the shop is large {n}"}, "overtime reasons"),
                (inspector, "prompt", lambda n: {"checkpoint": "storefront"}, "prompts"),
                (inspector, "sign_request", lambda n: {"role": "applicant"}, "signature requests"),
                (applicant, "location", lambda n: {"lat": 37.4355, "lon": 116.3594, "accuracy_m": 8}, "locations"),
                (applicant, "camera_result", lambda n: {"request_id": request_ids[n], "action": "torch_on", "ok": True}, "camera answers"),
            ]
            for who, event, payload, name in cases:
                acks = [await who.call(event, payload(n)) for n in range(3)]
                assert [a["ok"] for a in acks] == [True, True, False], (event, acks)
                error = acks[-1]["error"]
                assert error["code"] == "quota_exceeded" and f"2 {name}" in error["message"] and "at most 2" in error["message"], error
            # draw_clear counts with draw
            refused = await inspector.call("draw_clear")
            assert refused["ok"] is False and refused["error"]["code"] == "quota_exceeded", refused
            assert (await inspector.call("camera", {"action": "zoom", "zoom": 2}))["ok"]
            camera = await inspector.call("camera", {"action": "photo"})
            assert camera["ok"] is False and camera["error"]["code"] == "quota_exceeded", camera
            types = [e["type"] for e in await logged_events(server, created["id"])]
            for logged in ("drawing.shown", "timer.overtime_reason", "checkpoint.prompted", "signature.requested",
                           "location.updated", "camera.answered"):
                assert types.count(logged) == 2, (logged, types.count(logged))
            assert types.count("camera.requested") == 4
