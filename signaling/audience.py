"""The session's :class:`session.audience.Audience` over Socket.IO (the default namespace)."""

from __future__ import annotations

from typing import Any

import socketio

NAMESPACE = "/"


class SocketAudience:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    async def to_room(self, inspection_id: str, event: str, data: dict[str, Any]) -> None:
        await self.sio.emit(event, data, room=inspection_id, namespace=NAMESPACE)

    async def to_connection(self, connection: str, event: str, data: dict[str, Any]) -> None:
        await self.sio.emit(event, data, to=connection, namespace=NAMESPACE)

    async def enter(self, connection: str, inspection_id: str) -> None:
        await self.sio.enter_room(connection, inspection_id, namespace=NAMESPACE)

    async def drop(self, connection: str) -> None:
        await self.sio.disconnect(connection, namespace=NAMESPACE)

    async def drop_here(self, connection: str) -> None:
        # ignore_queue: a local disconnect, no publish (Redis may be unreachable)
        await self.sio.disconnect(connection, namespace=NAMESPACE, ignore_queue=True)
