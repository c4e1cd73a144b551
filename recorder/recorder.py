"""The recorder: a participant of a media room that writes every track as it happens.

Like Galène's disk writer, the recorder is just another client of the room: it adds a
:class:`~recorder.segments.SegmentWriter` sink to the audio and video slot of each
publishing role, and the room treats it as any subscriber. The writers share one
:class:`~recorder.timeline.Timeline`, so the tracks of an inspection line up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from media.interfaces import SinkHost

from .segments import SegmentCallback, SegmentWriter
from .timeline import Timeline

logger = logging.getLogger(__name__)

#: The roles whose media is recorded, and the kinds of each.
ROLES = ("applicant", "inspector")
KINDS = ("video", "audio")


def track_name(role: str, kind: str) -> str:
    """The name of a recorded track, as used in evidence keys: ``"applicant-video"``."""
    return f"{role}-{kind}"


class Recorder:
    """Records the slots ``(role, kind)`` of ``room`` into segments passed to ``on_segment``.

    ``start()`` joins the room; ``close()`` leaves it and returns once the last segment of
    every track has been delivered. Both are idempotent. A track that never gets media
    produces no segments.
    """

    def __init__(
        self,
        room: SinkHost,
        inspection_id: str,
        on_segment: SegmentCallback,
        *,
        roles: tuple[str, ...] = ROLES,
        segment_s: float = 4.0,
        keyframe_timeout_s: float = 4.0,
        timeline: Optional[Timeline] = None,
    ) -> None:
        self.inspection_id = inspection_id
        self._room = room
        self._on_segment = on_segment
        self._roles = roles
        self._segment_s = segment_s
        self._keyframe_timeout_s = keyframe_timeout_s
        self._timeline = timeline
        self._writers: dict[tuple[str, str], SegmentWriter] = {}
        self._started = False
        self._closed = False
        self._close_done = asyncio.Event()

    @property
    def timeline(self) -> Optional[Timeline]:
        """The recording's time origin (set by ``start()``)."""
        return self._timeline

    @property
    def writers(self) -> dict[str, SegmentWriter]:
        """The writer of each track, by track name."""
        return {writer.track: writer for writer in self._writers.values()}

    async def start(self) -> None:
        """Join the room: one writer per slot, all on one timeline. Idempotent."""
        if self._closed:
            raise RuntimeError(f"inspection {self.inspection_id}: a closed Recorder cannot start; make a new one")
        if self._started:
            return
        self._started = True
        if self._timeline is None:
            self._timeline = Timeline()
        for role in self._roles:
            for kind in KINDS:
                writer = SegmentWriter(
                    track_name(role, kind),
                    kind,
                    self._on_segment,
                    inspection_id=self.inspection_id,
                    timeline=self._timeline,
                    segment_s=self._segment_s,
                    keyframe_timeout_s=self._keyframe_timeout_s,
                )
                await writer.start()
                self._writers[(role, kind)] = writer
        # Writers are all running before any joins, so no slot's first frames are missed.
        for slot, writer in self._writers.items():
            self._room.add_sink(slot, writer)
        logger.info(
            "inspection %s: recording %s from %s",
            self.inspection_id, ", ".join(w.track for w in self._writers.values()),
            self._timeline.origin_wall.isoformat(timespec="milliseconds"),
        )

    async def close(self) -> None:
        """Leave the room, flush every track and wait for delivery. Idempotent."""
        if self._closed:
            await self._close_done.wait()
            return
        self._closed = True
        try:
            for slot, writer in self._writers.items():
                self._room.remove_sink(slot, writer)
            writers = list(self._writers.values())
            results = await asyncio.gather(*(w.close() for w in writers), return_exceptions=True)
            for writer, result in zip(writers, results):
                if isinstance(result, Exception):
                    logger.error(
                        "inspection %s: %s did not close cleanly: %r", self.inspection_id, writer.track, result
                    )
        finally:
            self._close_done.set()
        logger.info(
            "inspection %s: recording closed: %s",
            self.inspection_id,
            ", ".join(f"{w.track} {w.segments} segments" for w in self._writers.values()),
        )
