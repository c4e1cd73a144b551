"""signaling/broadcast.py: a room emit sends in turn, the same frames python-socketio's does."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import socketio

from signaling.broadcast import LocalManager


async def _connect(manager: Any, eio_sid: str) -> str:
    sid = manager.connect(eio_sid, "/")
    return await sid if inspect.isawaitable(sid) else sid


@pytest.mark.parametrize("manager_class", [LocalManager, socketio.AsyncManager])
async def test_a_room_emit_reaches_every_member_but_the_skipped(manager_class) -> None:
    """The same frames to the same sockets as python-socketio's own manager."""
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager_class())
    sent: list[tuple[str, str]] = []

    async def send(eio_sid: str, pkt: Any) -> None:
        sent.append((eio_sid, pkt.encode()))

    sio._send_eio_packet = send
    a, b, c = [await _connect(sio.manager, f"eio-{n}") for n in "abc"]
    for sid in (a, b):
        sio.manager.basic_enter_room(sid, "/", "room-1")
    await sio.emit("location", {"lat": 37.4, "at": "2026-12-03T10:00:00.000Z"}, room="room-1")
    await sio.emit("presence", ("two", "args"), room="room-1", skip_sid=a)
    await sio.emit("nothing", None, to=c)
    assert sorted(sent[:2]) == [("eio-a", '42["location",{"lat":37.4,"at":"2026-12-03T10:00:00.000Z"}]'),
                                ("eio-b", '42["location",{"lat":37.4,"at":"2026-12-03T10:00:00.000Z"}]')]
    assert sent[2:] == [("eio-b", '42["presence","two","args"]'), ("eio-c", '42["nothing"]')]
