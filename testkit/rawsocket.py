"""A minimal Socket.IO 5 client over one WebSocket (Engine.IO 4), for load generators.

python-socketio's client costs a load generator more CPU per event than the server spends
on it, so a benchmark driving it measures its own clients. This one only connects with
auth, emits with acks, answers pings and leaves cleanly (a Socket.IO disconnect packet
before the close, as a page that navigates away: the server then lets the participant go
at once instead of keeping its media for the reconnection grace window).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import aiohttp


class RawSocket:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self._reader: Optional[asyncio.Task[None]] = None

    async def connect(self, base: str, token: str, timeout: float = 30) -> None:
        """Open the socket and connect to the default namespace with ``{token}`` as auth;
        ConnectionError if the server refuses (its connect_error payload in the message)."""
        url = base.replace("http://", "ws://").replace("https://", "wss://") + "/socket.io/?EIO=4&transport=websocket"
        self._ws = await self._session.ws_connect(url, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=timeout))
        opened = await asyncio.wait_for(self._ws.receive_str(), timeout)
        if not opened.startswith("0"):
            raise ConnectionError(f"not an Engine.IO open packet: {opened[:80]}")
        await self._ws.send_str("40" + json.dumps({"token": token}))
        while True:
            reply = await asyncio.wait_for(self._ws.receive_str(), timeout)
            if reply.startswith("40"):
                break
            if reply.startswith("44"):
                raise ConnectionError(reply[2:300])
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                text = message.data
                if text == "2":
                    await self._ws.send_str("3")
                elif isinstance(text, str) and text.startswith("43"):
                    bracket = text.index("[")
                    future = self._acks.pop(int(text[2:bracket]), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads(text[bracket:])[0])
        finally:
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("the server closed the connection"))

    async def call(self, event: str, data: Any = None, timeout: float = 30) -> Any:
        """Emit ``event`` with ``data`` and return the server's ack."""
        if self._ws is None:
            raise ConnectionError("not connected")
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[self._next] = future
        args = [event] if data is None else [event, data]
        await self._ws.send_str(f"42{self._next}" + json.dumps(args, ensure_ascii=False))
        return await asyncio.wait_for(future, timeout)

    async def disconnect(self) -> None:
        """Leave the namespace and close; idempotent."""
        ws, self._ws = self._ws, None
        if ws is None:
            return
        try:
            if not ws.closed:
                await ws.send_str("41")
        except (ConnectionError, RuntimeError):
            pass
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await ws.close()
