"""Live rooms on this node: who is connected to an inspection, and their peers.

The shared, rebuildable part (presence, which connection holds a role) lives in
:class:`storage.livestate.LiveState` so that every node sees it; the peer connections and
the media room live here, on the node that serves the room's media.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Protocol

from aiortc import RTCPeerConnection

from media.closing import CloseOnce
from media.peer import ServerPeer
from media.relay import MediaRoom
from storage.livestate import LiveState

from .commands import LinkStats
from .timer import SessionTimer

if TYPE_CHECKING:
    from recorder.recorder import Recorder
    from recorder.segments import SegmentWriter
    from recorder.stills import StillCapture

logger = logging.getLogger(__name__)

#: Whose media each role receives.
SOURCE_ROLE = {"inspector": "applicant", "applicant": "inspector", "observer": "applicant"}
PUBLISHING_ROLES = ("inspector", "applicant")
#: Roles held by one connection at a time (a second device takes over).
SINGLE_HOLDER_ROLES = ("inspector", "applicant")


@dataclass
class Participant:
    sid: str
    id: str
    role: str
    joined_at: datetime.datetime
    audio: bool = True
    video: bool = True
    connection: str = "new"
    away: bool = False  # its connection dropped; it may come back within the grace window
    #: the page's latest measurement of its media (``stats`` event), for /metrics
    link: Optional[LinkStats] = None
    peer: Optional[ServerPeer] = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def presence(self) -> dict[str, object]:
        return {
            "id": self.id,
            "role": self.role,
            "media": {"audio": self.audio, "video": self.video},
            "connection": "away" if self.away else self.connection,
            "joined_at": self.joined_at.isoformat(timespec="milliseconds"),
        }


#: Camera requests a room waits an answer for: the inspector's page gives up after 15 s
#: (camera_remote.js); a phone that took long to take a photo still counts within this.
CAMERA_REQUEST_TTL_S = 120.0
#: Unanswered camera requests a room remembers; the oldest is forgotten past this.
CAMERA_REQUESTS_KEPT = 32


class CameraRequests:
    """The camera requests a room sent the phone and has no answer to yet.

    Each has an unguessable id; an answer is taken once, for an outstanding request whose
    action it names (a made-up, repeated or late answer would be logged as the phone's).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open: dict[str, tuple[str, float]] = {}  # request id -> (action, when asked), oldest first

    def __len__(self) -> int:
        return len(self._open)

    def ask(self, action: str) -> str:
        """Remember a request for ``action`` and return its new id."""
        self._expire()
        while len(self._open) >= CAMERA_REQUESTS_KEPT:
            del self._open[next(iter(self._open))]
        request_id = secrets.token_hex(8)
        self._open[request_id] = (action, self._clock())
        return request_id

    def answer(self, request_id: str, action: str) -> Optional[str]:
        """Take the answer to ``request_id``: None if it was outstanding for ``action`` (it is
        not any more), else why it is refused."""
        self._expire()
        asked = self._open.get(request_id)
        if asked is None:
            return f"no camera request {request_id[:64]!r} is waiting for an answer (never made, answered already or older than {CAMERA_REQUEST_TTL_S:.0f} s)"
        if asked[0] != action:
            return f"camera request {request_id[:64]!r} asked for {asked[0]!r}, not {action!r}"
        del self._open[request_id]
        return None

    def restore(self, request_id: str, action: str) -> None:
        """Put back a request whose answer could not be logged, so the phone may answer again."""
        self._open.setdefault(request_id, (action, self._clock()))

    def _expire(self) -> None:
        cutoff = self._clock() - CAMERA_REQUEST_TTL_S
        while self._open:
            oldest = next(iter(self._open))
            if self._open[oldest][1] > cutoff:
                break
            del self._open[oldest]


class Closable(Protocol):
    async def close(self) -> None: ...


class Room:
    """One inspection's live session on this node."""

    #: the events :meth:`restore` reads
    RESTORED_FROM = ("signature.signed", "timer.overtime_reason")

    def __init__(self, inspection_id: str) -> None:
        self.inspection_id = inspection_id
        self.media = MediaRoom(inspection_id)
        self.participants: dict[str, Participant] = {}
        self.timer: Optional[SessionTimer] = None
        self.stills: Optional[StillCapture] = None
        self.recorder: Optional[Recorder] = None
        self.overtime_reason: Optional[str] = None
        self.signatures: list[str] = []
        # the inspector's marks shown now (the `drawing` message), for a page that joins later
        self.drawing: Optional[dict[str, Any]] = None
        #: camera requests sent to the phone and not answered yet
        self.camera_requests = CameraRequests()
        #: the signatures and overtime reason were read back from the log (Room.restore)
        self.restored = False
        self._attachments: list[Closable] = []
        self._closing = CloseOnce()

    def attach(self, thing: Closable) -> None:
        """Close ``thing`` with the room (before its media), e.g. the recorder."""
        self._attachments.append(thing)

    def recorder_writers(self) -> list["SegmentWriter"]:
        return [] if self.recorder is None else list(self.recorder.writers.values())

    def restore(self, events: list[dict[str, Any]]) -> None:
        """Take back what the session's log says of the session so far (a room opened in a
        new process, or on the node that took it over): the signatures made and the
        overtime reason given, which the pages are shown and captures are checked against."""
        self.restored = True
        for event in events:
            if event.get("type") == "signature.signed":
                self.signatures.append(str(event.get("actor")))
            elif event.get("type") == "timer.overtime_reason":
                self.overtime_reason = (event.get("data") or {}).get("reason") or self.overtime_reason

    def signature_count(self, role: str) -> int:
        return self.signatures.count(role)

    def by_role(self, role: str) -> list[Participant]:
        return [p for p in self.participants.values() if p.role == role]

    async def close_peer(self, participant: Participant) -> None:
        peer, participant.peer = participant.peer, None
        if peer is not None:
            await peer.close()

    async def close(self) -> None:
        """Close peers, the clock, attachments (the recorder) and the media room, in that
        order; idempotent, and a concurrent second call waits for the first."""
        await self._closing.run(self._teardown)

    async def _teardown(self) -> None:
        for participant in list(self.participants.values()):
            await self.close_peer(participant)
        self.participants.clear()
        if self.timer is not None:
            await self.timer.close()
        for thing in reversed(self._attachments):
            try:
                await thing.close()
            except Exception:
                logger.exception("room %s: closing %r failed", self.inspection_id, thing)
        self._attachments.clear()
        await self.media.close()


class Rooms:
    """The rooms this node serves."""

    def __init__(self, live: LiveState, pc_factory: Callable[[], RTCPeerConnection], node_id: str) -> None:
        self.live = live
        self.pc_factory = pc_factory
        self.node_id = node_id
        self._rooms: dict[str, Room] = {}
        self._room_listeners: list[Callable[[Room], Awaitable[None]]] = []

    def on_room_created(self, listener: Callable[[Room], Awaitable[None]]) -> None:
        """Be told of each new room (the recorder joins rooms this way)."""
        self._room_listeners.append(listener)

    async def get_or_create(self, inspection_id: str) -> Room:
        room = self._rooms.get(inspection_id)
        if room is None:
            room = Room(inspection_id)
            self._rooms[inspection_id] = room
            await self.live.set_room_node(inspection_id, self.node_id)
            for listener in self._room_listeners:
                await listener(room)
            logger.info("room %s opened on %s", inspection_id, self.node_id)
        return room

    def find(self, inspection_id: str) -> Optional[Room]:
        return self._rooms.get(inspection_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._rooms.values()))

    async def close_room(self, inspection_id: str, clear: bool = True) -> None:
        """Close the room; ``clear`` forgets its live state too (not when this node stepped
        aside: the room's node, presence and roles are then the next node's)."""
        room = self._rooms.pop(inspection_id, None)
        if room is not None:
            await room.close()
            if clear:
                await self.live.clear_room(inspection_id)
            logger.info("room %s closed", inspection_id)

    async def close(self) -> None:
        for inspection_id in list(self._rooms):
            await self.close_room(inspection_id)

    def new_peer(self, room: Room, participant: Participant, on_state: Callable[[str], Awaitable[None]]) -> ServerPeer:
        return ServerPeer(
            peer_id=participant.id,
            role=participant.role,
            room=room.media,
            pc_factory=self.pc_factory,
            publishes=participant.role in PUBLISHING_ROLES,
            source_role=SOURCE_ROLE[participant.role],
            on_state=on_state,
        )
