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
import secrets
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from errors import Unavailable
from storage.livestate import LiveState
from storage.objects import StorageUnavailable

from .background import Background

logger = logging.getLogger(__name__)

#: A node is dead this long after its last heartbeat. Short, because participants of its
#: rooms wait this long before another node takes the rooms over; a few beats long, so a
#: busy event loop or a slow Redis round trip does not pass for a death.
HEARTBEAT_TTL_S = 3.0
HEARTBEAT_EVERY_S = 0.5
#: A node that has not renewed its heartbeat for this long (counted from when the last
#: renewal that succeeded was *sent*, so its key lives at least until then + the TTL) stops
#: writing: it fences itself a whole second before any other node can see it dead. Three
#: missed beats, so a loaded machine does not fence itself for a slow round trip.
FENCE_AFTER_S = 2.0
#: How often the watchdog looks at the lease (a beat may hang for the Redis timeout).
_WATCH_EVERY_S = 0.1


@dataclass(frozen=True)
class Place:
    """Where a room is: a node, its URL, and whether that is this node."""

    node_id: str
    url: str
    here: bool


#: Told (inspection id, previous node or None) when this node takes a room it did not host.
Adopter = Callable[[str, Optional[str]], Awaitable[None]]
#: Told (the rooms it held) when this node has lost its lease and must step aside.
Fencer = Callable[[list[str]], Awaitable[None]]


class Fenced(Unavailable):
    """This node lost its lease on the inspection's room (docs/nodes.md, "Fencing")."""

    code = "node_fenced"


class Placement:
    """This node's heartbeat and the answer to "which node hosts this room?".

    With ``fencing`` (several nodes on one Redis), the heartbeat is also this node's lease
    on the rooms it took: while it has not been renewed for ``fence_after_s`` the node
    writes no log (:meth:`check_append`, :meth:`may_ship`) and serves no room
    (:meth:`check_serving`); the watchdog then tells the fencers (the session closes its
    rooms and disconnects their pages). The rooms it held are lost to this node: it hosts
    them again only by taking them afresh (a new epoch), as any other node would.
    """

    def __init__(
        self,
        live: LiveState,
        node_id: str,
        url: str,
        *,
        ttl_s: float = HEARTBEAT_TTL_S,
        every_s: float = HEARTBEAT_EVERY_S,
        fence_after_s: Optional[float] = None,
        fencing: bool = True,
    ) -> None:
        if not 0 < every_s < ttl_s:
            raise ValueError(f"the heartbeat must come more often than it lapses, got every_s={every_s!r}, ttl_s={ttl_s!r}")
        fence_after_s = min(FENCE_AFTER_S, ttl_s - every_s) if fence_after_s is None else fence_after_s
        if not every_s <= fence_after_s < ttl_s:
            raise ValueError(f"a node must fence itself after a beat and before its heartbeat lapses, got fence_after_s={fence_after_s!r}")
        self.live = live
        self.node_id = node_id
        self.url = url.rstrip("/")
        self.ttl_s = ttl_s
        self.every_s = every_s
        self.fence_after_s = fence_after_s
        self.fencing = fencing
        self._adopters: list[Adopter] = []
        self._fencers: list[Fencer] = []
        self._background = Background()
        self._watchdog = Background()
        self._taking: dict[str, tuple[asyncio.Lock, int]] = {}  # room -> (lock, callers)
        # this process's mark in its heartbeat: a key found without it lapsed or is another's
        self._boot = secrets.token_hex(8)
        self._renewed_at: Optional[float] = None  # monotonic time the last stored beat was sent
        self._leased = False  # a lease runs (and has not been fenced)
        self._held: dict[str, int] = {}  # rooms taken in this lease -> their epoch
        self._lost: set[str] = set()  # rooms held in a fenced lease and not taken again
        self._fence_lock = asyncio.Lock()
        #: How many times this node fenced itself (for logs and tests).
        self.fences = 0

    def on_adopt(self, adopter: Adopter) -> None:
        """Be told of each room this node takes over (the session resumes it)."""
        self._adopters.append(adopter)

    def on_fence(self, fencer: Fencer) -> None:
        """Be told when this node lost its lease (the session closes its rooms)."""
        self._fencers.append(fencer)

    @property
    def here(self) -> Place:
        return Place(self.node_id, self.url, True)

    async def start(self) -> None:
        """Announce this node, then keep announcing it; idempotent."""
        if self._background.task is not None:
            return
        await self._beat()
        self._background.start(self._run)
        if self.fencing:
            self._watchdog.start(self._watch)

    async def close(self) -> None:
        """Stop the heartbeat and withdraw it, so that other nodes take this node's rooms at
        once instead of after the TTL (its pages were disconnected); idempotent."""
        if self._background.task is None:
            return
        await self._watchdog.close()
        await self._background.close()
        self._leased = False
        self._held.clear()
        try:
            await self.live.delete_value(self._key(self.node_id))
        except StorageUnavailable as exc:
            logger.warning("node %s: heartbeat not withdrawn (%s); it lapses in %.0f s", self.node_id, exc, self.ttl_s)

    def _key(self, node_id: str) -> str:
        return f"node:{node_id}"

    # -- the lease ----------------------------------------------------------------------------

    @property
    def lease_valid(self) -> bool:
        """Whether this node may write: its heartbeat was renewed less than ``fence_after_s``
        ago (always, without fencing or while not running)."""
        if not self.fencing or self._background.task is None:
            return True
        return self._leased and self._renewed_at is not None and time.monotonic() - self._renewed_at < self.fence_after_s

    async def _beat(self) -> None:
        """Renew the heartbeat; a lapsed or foreign key ends the lease first."""
        sent = time.monotonic()
        previous = await self.live.swap_value(self._key(self.node_id), {"url": self.url, "boot": self._boot}, self.ttl_s)
        await self._renewed(sent, previous)

    async def _renewed(self, sent: float, previous: Optional[dict[str, Any]]) -> None:
        if self._leased and (previous is None or previous.get("boot") != self._boot):
            if self.fencing:
                # the key lapsed or another process wrote it: other nodes may have taken our rooms
                await self._fence("its heartbeat had lapsed" if previous is None else "another process beats as this node")
            else:
                # One node without shared state: no other node can have taken its rooms, so a
                # beat that lapsed while its loop stalled (a starved machine, 3 s) ends nothing;
                # fencing here refused every event until the pages reconnected (benchmark runs).
                logger.warning("node %s: heartbeat lapsed and renewed (the event loop stalled); this node is the only one, it carries on",
                               self.node_id)
        if not self._leased:
            if time.monotonic() - sent >= self.fence_after_s:
                return  # a beat that took that long starts no lease: the next one may
            if self._renewed_at is not None:
                logger.warning("node %s: heartbeat renewed; serving again (its old rooms only by taking them afresh)", self.node_id)
            self._leased = True
        self._renewed_at = sent

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            sent = time.monotonic()
            try:
                # bounded: a hung beat must not hold up the next (the watchdog fences meanwhile)
                async with asyncio.timeout(self.fence_after_s):  # not wait_for: see session/background.py
                    previous = await self.live.swap_value(self._key(self.node_id), {"url": self.url, "boot": self._boot},
                                                          self.ttl_s)
            except (StorageUnavailable, asyncio.TimeoutError) as exc:
                logger.warning("node %s: heartbeat failed: %s", self.node_id, str(exc) or "timed out")
                continue
            await self._renewed(sent, previous)  # outside the timeout: stepping aside takes its time

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_EVERY_S)
            if self._leased and not self.lease_valid:
                assert self._renewed_at is not None
                await self._fence(f"no heartbeat renewed for {time.monotonic() - self._renewed_at:.1f} s")

    async def _fence(self, why: str) -> None:
        """End the lease: the held rooms are lost, and the fencers step aside (once)."""
        async with self._fence_lock:
            if not self._leased:
                return
            self._leased = False
            rooms, self._held = sorted(self._held), {}
            self._lost.update(rooms)
            self.fences += 1
            logger.error("node %s fenced: %s; it stops writing and leaves its %d room(s) to other nodes: %s",
                         self.node_id, why, len(rooms), ", ".join(rooms) or "-")
            for fencer in self._fencers:
                try:
                    await fencer(rooms)
                except Exception:
                    logger.exception("node %s: stepping aside failed", self.node_id)

    def holds(self, inspection_id: str) -> bool:
        """Whether this node hosts the room under a valid lease."""
        return inspection_id in self._held and self.lease_valid

    def release(self, inspection_id: str) -> None:
        """The room closed here (the session ended): no longer this node's to guard."""
        self._held.pop(inspection_id, None)

    def _refusal(self, inspection_id: str) -> Fenced:
        return Fenced(
            f"node {self.node_id} lost contact with the other nodes and stepped aside from inspection {inspection_id}; "
            "the page reconnects to the node that takes the session over",
        )

    def check_serving(self, inspection_id: str) -> None:
        """Raise :class:`Fenced` unless this node hosts the room under a valid lease."""
        if self.fencing and not self.holds(inspection_id):
            raise self._refusal(inspection_id)

    def check_append(self, inspection_id: str) -> None:
        """Raise :class:`Fenced` if this node may not append to the inspection's log now: its
        lease is not valid, or it lost the room with an earlier lease (evidence/journal.py)."""
        if not self.lease_valid or inspection_id in self._lost:
            raise self._refusal(inspection_id)

    def check_store(self, inspection_id: str) -> None:
        """Raise :class:`Fenced` if this node may not even store a blob of the inspection: a
        blob is no log line, so a fenced node may still store the segments its closing
        recorders finish (the node taking the room over logs them as ``evidence.recovered``),
        but only until ``every_s`` before its heartbeat could lapse."""
        if not self.fencing or self._background.task is None:
            return
        if self._renewed_at is None or time.monotonic() - self._renewed_at > self.ttl_s - self.every_s:
            raise self._refusal(inspection_id)

    async def may_ship(self, inspection_id: str) -> Optional[bool]:
        """Before the log's chunks go to the store: True ship them, None not now (retry),
        False never (the room is lost to this node: another continues from the store).

        A room held in this lease is checked against Redis (node and epoch, one round trip):
        the heartbeat guards against a partition, this against the rest (Redis lost its data,
        a second process with this node id). If Redis does not answer, the valid lease is
        enough: nobody takes a room before the heartbeat lapses, a second after the fence.
        """
        if inspection_id in self._lost:
            return False
        if not self.lease_valid:
            return None
        epoch = self._held.get(inspection_id)
        if epoch is None or not self.fencing:
            return True
        try:
            node, current = await self.live.room_lease(inspection_id)
        except StorageUnavailable:
            return True if self.lease_valid else None
        if node is None or (node == self.node_id and current == epoch):
            return True  # ours (or closed: nobody hosts it)
        if self._held.get(inspection_id) == epoch:
            self._held.pop(inspection_id, None)
            self._lost.add(inspection_id)
            logger.error("room %s: now %s at epoch %d, not %s at %d; this node stops writing its log",
                         inspection_id, node, current, self.node_id, epoch)
        return False

    # -- writes spooled while the store was down (storage/spool.py) ---------------------------

    def spool_tag(self, key: str) -> str:
        """What makes a write of ``key`` rightful now: ``<inspection>@<epoch>`` for an object of
        a room this node holds, else "" (nothing to check when it drains)."""
        parts = key.split("/", 2)
        if len(parts) < 3 or parts[0] != "inspections":
            return ""
        epoch = self._held.get(parts[1])
        return f"{parts[1]}@{epoch}" if epoch is not None else ""

    async def spool_gate(self, key: str, tag: str) -> Optional[bool]:
        """Whether a write spooled under ``tag`` may still be uploaded: only if nobody took the
        room since (its epoch is the same). None while Redis cannot say (the drain waits)."""
        inspection_id, _, epoch = tag.rpartition("@")
        if not inspection_id or not epoch.isdigit():
            return True  # not a tag of ours
        try:
            _, current = await self.live.room_lease(inspection_id)
        except (StorageUnavailable, RuntimeError):  # unreachable, or not started yet
            return None
        return current == int(epoch)

    # -- where rooms are ----------------------------------------------------------------------

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
        node takes it and tells its adopters before answering. A fenced node takes nothing
        (:class:`Fenced`)."""
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
            if not self.lease_valid:
                raise self._refusal(inspection_id)
            current = await self.live.room_node(inspection_id)
            if current == self.node_id and (inspection_id in self._held or not self.fencing):
                return self.here
            if current is not None and current != self.node_id:
                url = await self.node_url(current)
                if url is not None:
                    return Place(current, url, False)
            # nobody hosts it, its node is dead, or it names this node from an earlier lease
            # (or process): take it afresh, with a new epoch
            lease_before = self.fences
            epoch = await self.live.take_room(inspection_id, self.node_id, current)
            if epoch:
                if lease_before != self.fences or not self.lease_valid:
                    raise self._refusal(inspection_id)  # fenced meanwhile: the next lease takes it again
                self._held[inspection_id] = epoch
                self._lost.discard(inspection_id)
                if current is not None:
                    logger.warning("room %s: node %s is gone; %s takes the room over (epoch %d)", inspection_id, current, self.node_id, epoch)
                for adopter in self._adopters:
                    await adopter(inspection_id, current)
                return self.here
            # another node took it between our read and our write: look again
        raise Unavailable(f"the room of inspection {inspection_id} keeps changing nodes; retry in a moment")
