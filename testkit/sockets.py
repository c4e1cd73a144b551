"""A participant as the server sees it: a Socket.IO client plus a real aiortc peer."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Optional

import aiohttp
import socketio

from testkit.media import ClientPeer, PacketAudioTrack, PacketVideoTrack


def token_of(url: str) -> str:
    return url.split("#", 1)[1]


class Participant:
    def __init__(self, base_url: str, link: str) -> None:
        self.base_url = base_url
        self.token = token_of(link)
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.refused: Optional[dict[str, Any]] = None
        self.peer: Optional[ClientPeer] = None

        @self.sio.on("*")
        async def any_event(event: str, data: Any) -> None:
            self.events.append((event, data))

        @self.sio.on("connect_error")
        async def refused(data: Any) -> None:
            self.refused = data

    async def connect(self, auth: Any = "default", staff_session: Optional[str] = None) -> bool:
        """Connect with the link's token; ``staff_session`` is a staff login token sent as
        the ``takan_session`` cookie, as the inspector's browser does."""
        headers = {"Cookie": f"takan_session={staff_session}"} if staff_session else {}
        try:
            await self.sio.connect(
                self.base_url, auth={"token": self.token} if auth == "default" else auth, transports=["websocket"], wait_timeout=5,
                headers=headers,
            )
        except socketio.exceptions.ConnectionError:
            return False
        return True

    @property
    def refusal_code(self) -> Optional[str]:
        """The ``code`` of the connect_error the server refused this connection with."""
        data = self.refused or {}
        code = (data.get("data") or data).get("code")
        return None if code is None else str(code)

    async def call(self, event: str, data: Any = None, timeout: float = 15) -> Any:
        return await self.sio.call(event, {} if data is None else data, timeout=timeout)

    async def join_and_publish(self, frames: Optional[list[bytes]]) -> dict[str, Any]:
        joined = await self.call("join")
        assert joined["ok"], joined
        await self.start_media(frames)
        return joined

    async def start_media(
        self, frames: Optional[list[bytes]], audio: Optional[list[bytes]] = None, fps: int = 20, honour_keyframe_requests: bool = False
    ) -> None:
        """Offer a new peer connection sending ``frames`` (VP8) and ``audio`` (Opus packets)
        in loops; ``honour_keyframe_requests`` restarts the video loop on a PLI as a
        browser's encoder does."""
        if self.peer is not None:
            await self.peer.close()
        self.peer = ClientPeer(
            video=PacketVideoTrack(frames, fps, restart_on_keyframe_request=honour_keyframe_requests) if frames else None,
            audio=PacketAudioTrack(audio) if audio else None,
        )
        answer = await self.call("offer", {"type": "offer", "sdp": await self.peer.offer()})
        assert answer["ok"], answer
        await self.peer.accept(answer["sdp"])

    def statuses(self) -> list[str]:
        return [data["status"] for event, data in self.events if event == "status"]

    async def close(self) -> None:
        if self.peer is not None:
            await self.peer.close()
        if self.sio.connected:
            await self.sio.disconnect()
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def joined_pair(base_url: str, created: dict[str, Any]) -> AsyncIterator[tuple[Participant, Participant]]:
    """The inspection's inspector and applicant, connected and joined (no media), closed after."""
    inspector = Participant(base_url, created["inspector_url"])
    applicant = Participant(base_url, created["applicant_url"])
    try:
        assert await inspector.connect() and await applicant.connect()
        assert (await inspector.call("join"))["ok"] and (await applicant.call("join"))["ok"]
        yield inspector, applicant
    finally:
        await inspector.close()
        await applicant.close()


@contextlib.asynccontextmanager
async def raw_socket(http: aiohttp.ClientSession, base_url: str, link: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A WebSocket speaking Engine.IO/Socket.IO frames by hand, connected with ``link``'s token."""
    ws_url = base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    async with http.ws_connect(ws_url) as ws:
        await ws.receive()  # engine.io open
        await ws.send_str('40{"token":"%s"}' % token_of(link))
        await ws.receive()  # socket.io connect
        yield ws
