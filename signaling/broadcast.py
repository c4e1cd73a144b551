"""python-socketio's room emit, one recipient after another instead of a task for each.

``AsyncManager.emit`` wraps the send to every member of a room in its own task and waits
for them all with ``asyncio.wait``; a location, broadcast to both participants of its
inspection, paid two tasks and a wait on every event. A send to an Engine.IO socket is a
queue put or a write that finishes at once (:mod:`signaling.engine`), so sending in turn,
with the same encoded packet, delivers the same frames for a fraction of that; the emit
still returns once every member's send has returned, as before. Emits with a callback
(an ack id per recipient) keep python-socketio's way.

:class:`LocalManager` is the manager of a single node; :class:`RedisManager` the one of
nodes that share Redis (python-socketio's pub/sub manager delivers what reaches this node
through this emit: it comes before :class:`socketio.AsyncManager` in the order of bases).
"""

from __future__ import annotations

from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet


class LocalManager(socketio.AsyncManager):  # type: ignore[misc]  # python-socketio is untyped
    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        if callback:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs)
            return
        room = to or room
        if namespace not in self.rooms:
            return
        # python-socketio's rules: a tuple is several arguments, None none
        args = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(packet.EVENT, namespace=namespace, data=[event] + args).encode()
        frames = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in (encoded if isinstance(encoded, list) else [encoded])]
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid not in skip:
                for frame in frames:
                    await self.server._send_eio_packet(eio_sid, frame)


class RedisManager(socketio.AsyncRedisManager, LocalManager):  # type: ignore[misc]
    pass
