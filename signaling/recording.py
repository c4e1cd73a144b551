"""Joins the recorder and the still capture to every room, and files their output.

The recorder is a client of the room like any participant (Galène's disk writer): it
subscribes to the slots, and each closed segment becomes a blob event in the evidence log.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from evidence.journal import Journal
from recorder.recorder import Recorder
from recorder.segments import Segment
from recorder.stills import StillCapture

from .rooms import Room, Rooms

logger = logging.getLogger(__name__)

CONTENT_TYPES = {"video": "video/webm", "audio": "audio/webm"}


class Recording:
    """Starts a Recorder and a StillCapture in each room this node opens."""

    def __init__(self, rooms: Rooms, journal: Journal, segment_s: float = 4.0) -> None:
        self.journal = journal
        self.segment_s = segment_s
        rooms.on_room_created(self._room_created)

    async def _room_created(self, room: Room) -> None:
        inspection_id = room.inspection_id
        # A room reopened after a restart continues each track's numbering.
        already = await self._segments_so_far(inspection_id)

        async def on_segment(segment: Segment) -> None:
            seq = already[segment.track] + segment.seq
            kind = "video" if segment.track.endswith("video") else "audio"
            details = {
                "track": segment.track,
                "seq": seq,
                "codec": segment.codec,
                "media_start_ms": segment.media_start_ms,
                "duration_ms": segment.duration_ms,
                "wall_start": segment.wall_start.isoformat(timespec="milliseconds"),
                "wall_end": segment.wall_end.isoformat(timespec="milliseconds"),
                "frames": segment.frames,
            }
            if segment.width:
                details.update(width=segment.width, height=segment.height)
            await self.journal.record_blob(
                inspection_id, f"media/{segment.track}/{seq:06d}.webm", segment.data,
                CONTENT_TYPES[kind], "media.segment", "recorder", details,
            )

        recorder = Recorder(room.media, inspection_id, on_segment, segment_s=self.segment_s)
        await recorder.start()
        room.attach(recorder)
        stills = StillCapture(room.media, inspection_id)
        await stills.start()
        room.attach(stills)
        room.stills = stills

    async def _segments_so_far(self, inspection_id: str) -> Counter[str]:
        counts: Counter[str] = Counter()
        for event in await self.journal.events(inspection_id):
            if event.get("type") == "media.segment":
                data = event.get("data") or {}
                counts[str(data.get("track"))] = max(counts[str(data.get("track"))], int(data.get("seq", 0)))
        return counts
