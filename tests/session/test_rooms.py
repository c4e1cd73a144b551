"""Rooms and their lifecycles: closing twice (or concurrently) is safe."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection

from session.rooms import CAMERA_REQUEST_TTL_S, CAMERA_REQUESTS_KEPT, CameraRequests, Room, Rooms
from storage.livestate import MemoryLiveState


class Attachment:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        await asyncio.sleep(0.01)
        self.closed += 1


async def test_room_close_is_idempotent_and_ordered() -> None:
    room = Room("r1")
    first, second = Attachment(), Attachment()
    room.attach(first)
    room.attach(second)
    await asyncio.gather(room.close(), room.close())
    await room.close()
    assert first.closed == 1 and second.closed == 1


async def test_rooms_close_twice() -> None:
    live = MemoryLiveState()
    await live.start()
    rooms = Rooms(live, RTCPeerConnection, "node-a")
    opened: list[str] = []

    async def listener(room: Room) -> None:
        opened.append(room.inspection_id)

    rooms.on_room_created(listener)
    await rooms.get_or_create("i1")
    await rooms.get_or_create("i1")
    await rooms.get_or_create("i2")
    assert opened == ["i1", "i2"]
    await rooms.close()
    await rooms.close()
    assert list(rooms) == []
    await live.close()


def test_a_room_opened_again_takes_back_its_signatures_and_overtime_reason_from_the_log() -> None:
    events = [
        {"type": "session.started", "actor": "system", "data": {}},
        {"type": "signature.strokes", "actor": "applicant", "data": {"key": "signatures/applicant-1.json"}},
        {"type": "signature.signed", "actor": "applicant", "data": {"key": "signatures/applicant-1.png"}},
        {"type": "timer.overtime_reason", "actor": "inspector", "data": {"reason": "仓库面积大"}},
        {"type": "signature.signed", "actor": "inspector", "data": {"key": "signatures/inspector-1.png"}},
    ]
    room = Room("20261208000000-0000000000000000")
    assert not room.restored
    room.restore(events)
    assert room.restored and room.signatures == ["applicant", "inspector"]
    assert room.signature_count("applicant") == 1 and room.overtime_reason == "仓库面积大"


def test_camera_requests_are_answered_once_expire_and_stay_bounded() -> None:
    now = [1000.0]
    requests = CameraRequests(clock=lambda: now[0])
    first = requests.ask("zoom")
    assert requests.answer(first, "photo") is not None  # another action: refused, still open
    assert requests.answer(first, "zoom") is None
    assert requests.answer(first, "zoom") is not None  # answered already
    late = requests.ask("photo")
    now[0] += CAMERA_REQUEST_TTL_S + 1
    assert "older than" in (requests.answer(late, "photo") or "")
    ids = [requests.ask("torch_on") for _ in range(CAMERA_REQUESTS_KEPT + 5)]
    assert len(requests) == CAMERA_REQUESTS_KEPT and len(set(ids)) == len(ids)
    assert requests.answer(ids[0], "torch_on") is not None  # the oldest were forgotten
    assert requests.answer(ids[-1], "torch_on") is None
