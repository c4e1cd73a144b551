"""A dropped connection keeps its media (issue 10): the participant comes back to its peer.

The applicant's Socket.IO transport is cut (no goodbye, as when a phone loses its network);
the server keeps the applicant's media peer and place for the grace window, and a new
connection from the same device gets them back: no new offer, no new peer connection.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from testkit.media import encode_vp8, wait_for
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return encode_vp8(320, 240, frames=20)


async def cut(participant: Participant, server=None) -> None:
    """The network goes away: the server sees the connection drop (as on a ping timeout or
    a transport error), then the client's socket is gone."""
    if server is not None:
        sessions = server.services.sessions
        sid = next(c for c, conn in sessions._connections.items() if conn.role == "applicant")
        await sessions.drop(sid)
    ws = participant.sio.eio.ws
    await ws.close()
    await wait_for(lambda: not participant.sio.connected, 10)


async def test_a_dropped_connection_comes_back_to_its_peer(tmp_path, frames) -> None:
    async with running_server(tmp_path / "d", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        inspector = Participant(server.base_url, created["inspector_url"])
        applicant = Participant(server.base_url, created["applicant_url"])
        again = Participant(server.base_url, created["applicant_url"])
        try:
            assert await inspector.connect() and await applicant.connect()
            assert (await inspector.call("join", {"device": "desk"}))["ok"]
            await inspector.start_media(frames)
            assert (await applicant.call("join", {"device": "phone-1"}))["ok"]
            await applicant.start_media(frames)
            sessions = server.services.sessions
            room = sessions.rooms.find(created["id"])
            await wait_for(lambda: room is not None and any(p.connection == "connected" for p in room.participants.values()), 20)
            server_peer = next(p.peer for p in room.participants.values() if p.role == "applicant")

            await cut(applicant, server)
            await wait_for(lambda: any(p.away for p in room.participants.values()), 10)
            assert server_peer is not None and server_peer.connection_state != "closed"

            assert await again.connect()
            back = await again.call("join", {"device": "phone-1"})
            assert back["ok"] and back["peer_kept"] is True, back
            applicant_now = next(p for p in room.participants.values() if p.role == "applicant")
            assert applicant_now.peer is server_peer and not applicant_now.away
            assert len([p for p in room.participants.values() if p.role == "applicant"]) == 1
            # events flow on the new connection
            assert (await again.call("chat", {"text": "回来了"}))["ok"]
            events = [e["type"] for e in await server.services.journal.events(created["id"])]
            assert "participant.away" in events and "participant.rejoined" in events
            assert events.count("participant.left") == 0
        finally:
            await asyncio.gather(inspector.close(), applicant.close(), again.close(), return_exceptions=True)


async def test_a_participant_that_never_comes_back_leaves_after_the_grace(tmp_path) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        server.services.sessions.reconnect_grace_s = 0.5
        created = await create_inspection(server, http)
        applicant = Participant(server.base_url, created["applicant_url"])
        try:
            assert await applicant.connect()
            assert (await applicant.call("join", {"device": "phone-1"}))["ok"]
            await cut(applicant, server)

            async def left() -> bool:
                events = await server.services.journal.events(created["id"])
                return any(e["type"] == "participant.left" for e in events)

            for _ in range(50):
                if await left():
                    break
                await asyncio.sleep(0.1)
            assert await left()
            assert server.services.sessions.rooms.find(created["id"]).participants == {}
        finally:
            await applicant.close()


async def test_the_same_page_on_a_new_connection_before_the_old_one_is_seen_to_drop(tmp_path, frames) -> None:
    """A phone that changed networks reconnects before the server notices the old
    connection is dead: the new connection takes the participant over, peer and all."""
    async with running_server(tmp_path / "d", ice_loopback="true") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        old = Participant(server.base_url, created["applicant_url"])
        new = Participant(server.base_url, created["applicant_url"])
        try:
            assert await old.connect()
            assert (await old.call("join", {"device": "phone-1"}))["ok"]
            await old.start_media(frames)
            room = server.services.sessions.rooms.find(created["id"])
            server_peer = next(p.peer for p in room.participants.values())
            assert await new.connect()
            back = await new.call("join", {"device": "phone-1"})
            assert back["ok"] and back["peer_kept"] is True, back
            assert [p.peer for p in room.participants.values()] == [server_peer]
            assert await wait_for(lambda: not old.sio.connected, 10)
            assert not any(event == "kicked" for event, _ in old.events)  # quietly: it is the same page
        finally:
            await asyncio.gather(old.close(), new.close(), return_exceptions=True)
