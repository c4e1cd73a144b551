"""Which node hosts each inspection's room, and the take-over of a dead node's rooms.

A room's media lives on one node (``room:<id>:node`` in live state). Every node keeps a
heartbeat in live state (``node:<id>`` -> its URL, refreshed every ``every_s``, lapsing
after ``ttl_s``), so any node can tell a live host from a dead one. :meth:`Placement.locate`
answers "where is this room?": a live host's URL, or this node, which then hosts the room,
taking it by compare-and-set so that two nodes never both take one. docs/nodes.md has the
whole story (pages follow the answer; the session resumes; what a dead node loses).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

from errors import Unavailable
from storage.livestate import LiveState
from storage.objects import StorageUnavailable

from .background import Background

logger = logging.getLogger(__name__)

#: A node is dead this long after its last heartbeat. Short, because participants of its
#: rooms wait this long before another node takes the rooms over; a few beats long, so a
#: busy event loop or a slow Redis round trip does not pass for a death.
HEARTBEAT_TTL_S = 3.0
HEARTBEAT_EVERY_S = 1.0


@dataclass(frozen=True)
class Place:
    """Where a room is: a node, its URL, and whether that is this node."""

    node_id: str
    url: str
    here: bool


#: Told (inspection id, previous node or None) when this node takes a room it did not host.
Adopter = Callable[[str, Optional[str]], Awaitable[None]]


class Placement:
    """This node's heartbeat and the answer to "which node hosts this room?"."""

    def __init__(
        self,
        live: LiveState,
        node_id: str,
        url: str,
        *,
        ttl_s: float = HEARTBEAT_TTL_S,
        every_s: float = HEARTBEAT_EVERY_S,
    ) -> None:
        if not 0 < every_s < ttl_s:
            raise ValueError(f"the heartbeat must come more often than it lapses, got every_s={every_s!r}, ttl_s={ttl_s!r}")
        self.live = live
        self.node_id = node_id
        self.url = url.rstrip("/")
        self.ttl_s = ttl_s
        self.every_s = every_s
        self._adopters: list[Adopter] = []
        self._background = Background()
        self._taking: dict[str, tuple[asyncio.Lock, int]] = {}  # room -> (lock, callers)

    def on_adopt(self, adopter: Adopter) -> None:
        """Be told of each room this node takes over (the session resumes it)."""
        self._adopters.append(adopter)

    @property
    def here(self) -> Place:
        return Place(self.node_id, self.url, True)

    async def start(self) -> None:
        """Announce this node, then keep announcing it; idempotent."""
        if self._background.task is not None:
            return
        await self._beat()
        self._background.start(self._run)

    async def close(self) -> None:
        """Stop the heartbeat and withdraw it, so that other nodes take this node's rooms at
        once instead of after the TTL (its pages were disconnected); idempotent."""
        if self._background.task is None:
            return
        await self._background.close()
        try:
            await self.live.delete_value(self._key(self.node_id))
        except StorageUnavailable as exc:
            logger.warning("node %s: heartbeat not withdrawn (%s); it lapses in %.0f s", self.node_id, exc, self.ttl_s)

    def _key(self, node_id: str) -> str:
        return f"node:{node_id}"

    async def _beat(self) -> None:
        await self.live.put_value(self._key(self.node_id), {"url": self.url}, self.ttl_s)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self._beat()
            except StorageUnavailable as exc:
                # Redis is down: nobody can take our rooms either; beat again when it is back
                logger.warning("node %s: heartbeat failed: %s", self.node_id, exc)

    async def node_url(self, node_id: str) -> Optional[str]:
        """The URL of ``node_id`` if it is alive (its heartbeat has not lapsed)."""
        if node_id == self.node_id and self._background.task is not None:
            return self.url
        beat = await self.live.get_value(self._key(node_id))
        return None if beat is None else str(beat.get("url") or "") or None

    async def elsewhere(self, inspection_id: str) -> bool:
        """Whether another live node hosts the room now (without taking anything)."""
        current = await self.live.room_node(inspection_id)
        return current not in (None, self.node_id) and await self.node_url(str(current)) is not None

    async def locate(self, inspection_id: str) -> Place:
        """The live node hosting the room; if none does (new room, or its node is dead), this
        node takes it and tells its adopters before answering."""
        lock, users = self._taking.get(inspection_id, (asyncio.Lock(), 0))
        self._taking[inspection_id] = (lock, users + 1)
        try:
            # one take-over at a time per room on this node: the second caller finds it here
            async with lock:
                return await self._locate(inspection_id)
        finally:
            lock, users = self._taking[inspection_id]
            if users <= 1:
                del self._taking[inspection_id]
            else:
                self._taking[inspection_id] = (lock, users - 1)

    async def _locate(self, inspection_id: str) -> Place:
        for _ in range(3):
            current = await self.live.room_node(inspection_id)
            if current == self.node_id:
                return self.here
            if current is not None:
                url = await self.node_url(current)
                if url is not None:
                    return Place(current, url, False)
            if await self.live.take_room_node(inspection_id, self.node_id, current):
                if current is not None:
                    logger.warning("room %s: node %s is gone; %s takes the room over", inspection_id, current, self.node_id)
                for adopter in self._adopters:
                    await adopter(inspection_id, current)
                return self.here
            # another node took it between our read and our write: look again
        raise Unavailable(f"the room of inspection {inspection_id} keeps changing nodes; retry in a moment")
