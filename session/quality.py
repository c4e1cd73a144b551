"""Audio first: when a link cannot carry video, say so, and log both transitions.

Two ways a session falls back to audio: the publisher's uplink (a phone on weak mobile data)
stops delivering video while its audio still arrives; or the relay pauses video to a
subscriber whose own link cannot carry it (:meth:`media.peer.ServerPeer.video_paused`). The
watch looks once a second; each change is a ``media.audio_only`` or ``media.video_back``
event in the evidence log and a ``quality`` event to the room, so both pages can say it
plainly (网络较差，已切换为语音) and, later, that video is back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

from .background import Background
from .rooms import PUBLISHING_ROLES, Participant, Room

logger = logging.getLogger(__name__)

#: Seconds without video frames (while audio flows and the camera is on) before a
#: publisher's uplink counts as audio only; seconds of video before it counts as back.
STALL_S = 3
BACK_S = 2

Log = Callable[[str, str, str, dict[str, Any]], Awaitable[Any]]
Tell = Callable[[str, str, dict[str, Any]], Awaitable[None]]


@dataclass
class _Seen:
    video: int = 0
    audio: int = 0
    stalled: int = 0
    flowing: int = 0
    uplink_audio_only: bool = False
    downlink_audio_only: bool = False


class QualityWatch:
    """Watches every live room's links; owned by the session service (start/close)."""

    def __init__(self, rooms: Callable[[], Iterable[Room]], log: Log, tell: Tell, interval_s: float = 1.0) -> None:
        self._rooms = rooms
        self._log = log
        self._tell = tell
        self.interval_s = interval_s
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._background = Background()

    def start(self) -> None:
        self._background.start(self._run)

    async def close(self) -> None:
        await self._background.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:
                logger.exception("quality watch failed; trying again")

    async def check(self) -> None:
        """One look at every room (also called by tests)."""
        alive: set[tuple[str, str]] = set()
        for room in list(self._rooms()):
            for participant in list(room.participants.values()):
                key = (room.inspection_id, participant.id)
                alive.add(key)
                seen = self._seen.setdefault(key, _Seen())
                await self._uplink(room, participant, seen)
                await self._downlink(room, participant, seen)
        for key in set(self._seen) - alive:
            del self._seen[key]

    async def _uplink(self, room: Room, participant: Participant, seen: _Seen) -> None:
        peer = participant.peer
        if peer is None or participant.role not in PUBLISHING_ROLES:
            return
        video = sum(up.frames for up in peer.up_tracks if up.kind == "video")
        audio = sum(up.frames for up in peer.up_tracks if up.kind == "audio")
        video_moved, audio_moved = video > seen.video, audio > seen.audio
        seen.video, seen.audio = video, audio
        if not video_moved and audio_moved and participant.video and not participant.away:
            seen.stalled, seen.flowing = seen.stalled + 1, 0
        elif video_moved:
            seen.stalled, seen.flowing = 0, seen.flowing + 1
        if not seen.uplink_audio_only and seen.stalled >= STALL_S:
            seen.uplink_audio_only = True
            await self._change(room, participant, True, "uplink")
        elif seen.uplink_audio_only and seen.flowing >= BACK_S:
            seen.uplink_audio_only = False
            await self._change(room, participant, False, "uplink")

    async def _downlink(self, room: Room, participant: Participant, seen: _Seen) -> None:
        peer = participant.peer
        paused = peer is not None and peer.video_paused
        if paused != seen.downlink_audio_only:
            seen.downlink_audio_only = paused
            await self._change(room, participant, paused, "downlink")

    async def _change(self, room: Room, participant: Participant, audio_only: bool, link: str) -> None:
        data = {"id": participant.id, "role": participant.role, "link": link}
        logger.info("room %s: %s %s %s", room.inspection_id, participant.id, link, "audio only" if audio_only else "video back")
        await self._log(room.inspection_id, "media.audio_only" if audio_only else "media.video_back", "system", data)
        await self._tell(room.inspection_id, "quality", {**data, "audio_only": audio_only})
