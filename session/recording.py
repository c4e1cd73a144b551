"""Joins the recorder and the still capture to every room this node opens.

The recorder is a client of the room like any participant (Galène's disk writer): it
subscribes to the media slots through :mod:`media.interfaces`, and each closed segment is
filed as evidence by :class:`evidence.filing.SegmentFiling`.
"""

from __future__ import annotations

import logging

from evidence.filing import SegmentFiling
from recorder.recorder import Recorder
from recorder.stills import StillCapture

from .rooms import Room, Rooms

logger = logging.getLogger(__name__)


class Recording:
    """Starts a Recorder and a StillCapture in each room this node opens."""

    def __init__(self, rooms: Rooms, filing: SegmentFiling, segment_s: float = 4.0) -> None:
        self.filing = filing
        self.segment_s = segment_s
        rooms.on_room_created(self._room_created)

    async def _room_created(self, room: Room) -> None:
        inspection_id = room.inspection_id
        recorder = Recorder(room.media, inspection_id, await self.filing.filer(inspection_id), segment_s=self.segment_s)
        await recorder.start()
        room.attach(recorder)
        room.recorder = recorder
        stills = StillCapture(room.media, inspection_id)
        await stills.start()
        room.attach(stills)
        room.stills = stills
