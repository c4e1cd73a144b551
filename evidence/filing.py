"""Filing recorded media segments as evidence: one blob event per closed segment.

Each track's segments are numbered from 1 for the whole inspection, across restarts of the
room or the process: a room reopened later continues where the log left off.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import Counter
from typing import Awaitable, Callable, Optional, Protocol

from storage.objects import StorageError

from .journal import Journal

logger = logging.getLogger(__name__)

CONTENT_TYPES = {"video": "video/webm", "audio": "audio/webm"}
#: A segment the store refused (an S3 error other than an outage, which the spool absorbs;
#: a full disk) is tried again after these pauses before it is given up as lost: the
#: recorder hands the track's next segments over only after it, so their order holds.
RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0)


class RecordedSegment(Protocol):
    """What the recorder hands over (:class:`recorder.segments.Segment` fits)."""

    @property
    def track(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def codec(self) -> str: ...
    @property
    def media_start_ms(self) -> int: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def wall_start(self) -> datetime.datetime: ...
    @property
    def wall_end(self) -> datetime.datetime: ...
    @property
    def frames(self) -> int: ...
    @property
    def width(self) -> Optional[int]: ...
    @property
    def height(self) -> Optional[int]: ...
    @property
    def data(self) -> bytes: ...
    @property
    def gaps(self) -> tuple[tuple[int, int], ...]: ...


class SegmentFiling:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def filer(self, inspection_id: str) -> Callable[[RecordedSegment], Awaitable[None]]:
        """A callback that files the segments of a room just opened for ``inspection_id``."""
        already = await self.segments_so_far(inspection_id)

        async def file(segment: RecordedSegment) -> None:
            for start_ms, end_ms in segment.gaps:
                # media was missing before this segment's frames: say where, for the auditor
                offset = segment.wall_start - datetime.timedelta(milliseconds=segment.media_start_ms)
                await self.journal.record(inspection_id, "media.gap", "recorder", {
                    "track": segment.track,
                    "start": (offset + datetime.timedelta(milliseconds=start_ms)).isoformat(timespec="milliseconds"),
                    "end": (offset + datetime.timedelta(milliseconds=end_ms)).isoformat(timespec="milliseconds"),
                    "duration_ms": end_ms - start_ms,
                })
            seq = already[segment.track] + segment.seq
            kind = "video" if segment.track.endswith("video") else "audio"
            details: dict[str, object] = {
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
            key = f"media/{segment.track}/{seq:06d}.webm"
            for pause in (*RETRY_PAUSES_S, None):
                try:
                    await self.journal.record_blob(inspection_id, key, segment.data, CONTENT_TYPES[kind], "media.segment", "recorder", details)
                    return
                except (StorageError, OSError) as exc:
                    if pause is None:
                        raise
                    logger.warning("inspection %s: segment %s not stored (%s); trying again in %.1f s", inspection_id, key, exc, pause)
                    await asyncio.sleep(pause)

        return file

    async def segments_so_far(self, inspection_id: str) -> Counter[str]:
        """The highest segment number of each track in the log: of its segments, and of the
        segment objects a node that stopped stored and another logged as recovered (a new
        segment must not overwrite one, docs/nodes.md)."""
        counts: Counter[str] = Counter()
        for event in await self.journal.events(inspection_id):
            data = event.get("data") or {}
            if event.get("type") == "media.segment":
                track = str(data.get("track"))
                counts[track] = max(counts[track], int(data.get("seq", 0)))
            elif event.get("type") == "evidence.recovered":
                parts = str(data.get("key", "")).split("/")  # media/<track>/<seq>.webm
                if len(parts) == 3 and parts[0] == "media" and parts[2].partition(".")[0].isdigit():
                    counts[parts[1]] = max(counts[parts[1]], int(parts[2].partition(".")[0]))
        return counts
