"""Drawings: the inspector's marks reach the applicant at once, are logged, and clear."""

from __future__ import annotations

import json

import aiohttp
import pytest

from testkit.media import wait_for
from testkit.server import create_inspection, running_server, logged_events
from testkit.sockets import Participant

ARROW = {"kind": "arrow", "points": [[0.2, 0.3], [0.5, 0.5]]}
CIRCLE = {"kind": "circle", "points": [[0.5, 0.5], [0.6, 0.5]], "color": "#00ff00"}
LABEL = {"kind": "text", "points": [[0.1, 0.1]], "text": "这里的温度计"}


@pytest.fixture
async def pair(tmp_path):
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        inspector = Participant(server.base_url, created["inspector_url"])
        applicant = Participant(server.base_url, created["applicant_url"])
        assert await inspector.connect() and await applicant.connect()
        assert (await inspector.call("join"))["ok"] and (await applicant.call("join"))["ok"]
        yield (server, created["id"]), inspector, applicant
        await inspector.close()
        await applicant.close()


async def test_a_drawing_reaches_the_applicant_and_is_logged(pair) -> None:
    log, inspector, applicant = pair
    ack = await inspector.call("draw", {"shapes": [ARROW, CIRCLE, LABEL]})
    assert ack["ok"], ack
    assert await wait_for(lambda: any(e == "drawing" for e, _ in applicant.events), 5)
    shown = next(d for e, d in applicant.events if e == "drawing")
    assert [s["kind"] for s in shown["shapes"]] == ["arrow", "circle", "text"]
    assert shown["shapes"][2]["text"] == "这里的温度计" and shown["shapes"][1]["color"] == "#00ff00"
    assert (await inspector.call("draw_clear"))["ok"]
    assert await wait_for(lambda: [d["shapes"] for e, d in applicant.events if e == "drawing"][-1] == [], 5)
    types = [e["type"] for e in await logged_events(*log)]
    assert "drawing.shown" in types and "drawing.cleared" in types


async def test_a_page_that_joins_later_gets_the_marks_shown_now(tmp_path) -> None:
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        inspector = Participant(server.base_url, created["inspector_url"])
        applicant = Participant(server.base_url, created["applicant_url"])
        try:
            assert await inspector.connect() and (await inspector.call("join"))["ok"]
            assert (await inspector.call("draw", {"shapes": [ARROW]}))["ok"]
            assert await applicant.connect()
            joined = await applicant.call("join")  # e.g. the phone reloaded its page
            assert joined["ok"] and [s["kind"] for s in joined["drawing"]["shapes"]] == ["arrow"] and joined["drawing"]["at"]
            assert (await inspector.call("draw_clear"))["ok"]
            assert (await inspector.call("join"))["drawing"] is None  # cleared: nothing to show
        finally:
            await inspector.close()
            await applicant.close()


@pytest.mark.parametrize(
    "who,event,payload,code",
    [
        ("applicant", "draw", {"shapes": [ARROW]}, "forbidden"),
        ("applicant", "draw_clear", {}, "forbidden"),
        ("inspector", "draw", {"shapes": []}, "bad_request"),
        ("inspector", "draw", {"shapes": [{"kind": "blob", "points": [[0, 0], [1, 1]]}]}, "bad_request"),
        ("inspector", "draw", {"shapes": [{"kind": "arrow", "points": [[0, 0], [2, 1]]}]}, "bad_request"),
        ("inspector", "draw", {"shapes": [{"kind": "text", "points": [[0, 0]], "text": "x" * 61}]}, "too_large"),
        ("inspector", "draw", {"shapes": [ARROW] * 51}, "too_large"),
        ("inspector", "draw", {"shapes": [{**ARROW, "color": "red"}]}, "bad_request"),
        ("inspector", "draw", {"shapes": [ARROW], "evidence_key": "../x"}, "bad_request"),
    ],
)
async def test_bad_drawings(pair, who, event, payload, code) -> None:
    _, inspector, applicant = pair
    ack = await (inspector if who == "inspector" else applicant).call(event, payload)
    assert ack["ok"] is False and ack["error"]["code"] == code, ack


async def test_camera_requests_go_to_the_phone_and_answers_back(pair) -> None:
    log, inspector, applicant = pair
    ack = await inspector.call("camera", {"action": "zoom", "zoom": 2.5})
    assert ack["ok"], ack
    assert await wait_for(lambda: any(e == "camera_request" for e, _ in applicant.events), 5)
    request = next(d for e, d in applicant.events if e == "camera_request")
    assert request == {"action": "zoom", "zoom": 2.5, "request_id": ack["request_id"], "at": request["at"]}
    answer = {"request_id": ack["request_id"], "action": "zoom", "ok": False, "reason": "unsupported", "detail": "no zoom"}
    assert (await applicant.call("camera_result", answer))["ok"]
    assert await wait_for(lambda: any(e == "camera_result" for e, _ in inspector.events), 5)
    types = [e["type"] for e in await logged_events(*log)]
    assert "camera.requested" in types and "camera.answered" in types


async def test_a_camera_answer_is_taken_once_and_only_for_a_request_made(pair) -> None:
    """Request ids are unguessable; an answer to a request never made, with another action,
    or a second answer is refused with ``conflict`` and not logged."""
    log, inspector, applicant = pair
    ack = await inspector.call("camera", {"action": "torch_on"})
    assert ack["ok"], ack
    request_id = ack["request_id"]
    assert len(request_id) == 16 and int(request_id, 16) >= 0  # secrets.token_hex(8), not the log's seq
    assert request_id != (await inspector.call("camera", {"action": "torch_off"}))["request_id"]
    made_up = {"request_id": "1", "action": "torch_on", "ok": True}
    wrong_action = {"request_id": request_id, "action": "photo", "ok": True}
    for answer in (made_up, wrong_action):
        refused = await applicant.call("camera_result", answer)
        assert refused["ok"] is False and refused["error"]["code"] == "conflict", refused
        assert answer["request_id"] in refused["error"]["message"]
    answer = {"request_id": request_id, "action": "torch_on", "ok": True}
    assert (await applicant.call("camera_result", answer))["ok"]
    again = await applicant.call("camera_result", answer)
    assert again["ok"] is False and again["error"]["code"] == "conflict", again
    answered = [e for e in await logged_events(*log) if e["type"] == "camera.answered"]
    assert [e["data"]["request_id"] for e in answered] == [request_id]
    requested = [e for e in await logged_events(*log) if e["type"] == "camera.requested"]
    assert requested[0]["data"]["request_id"] == request_id  # the log links the answer to its request


@pytest.mark.parametrize(
    "who,event,payload,code",
    [
        ("applicant", "camera", {"action": "torch_on"}, "forbidden"),
        ("inspector", "camera_result", {"request_id": "1", "action": "zoom", "ok": True}, "forbidden"),
        ("inspector", "camera", {"action": "explode"}, "bad_request"),
        ("inspector", "camera", {"action": "zoom", "zoom": 99}, "bad_request"),
        ("inspector", "camera", {"action": "torch_on", "zoom": 2}, "bad_request"),
        ("applicant", "camera_result", {"request_id": "1", "action": "zoom", "ok": "yes"}, "bad_request"),
        ("applicant", "camera_result", {"request_id": "1", "action": "zoom", "ok": False, "reason": "tired"}, "bad_request"),
    ],
)
async def test_bad_camera_requests(pair, who, event, payload, code) -> None:
    _, inspector, applicant = pair
    ack = await (inspector if who == "inspector" else applicant).call(event, payload)
    assert ack["ok"] is False and ack["error"]["code"] == code, ack
