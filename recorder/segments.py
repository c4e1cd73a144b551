"""Segments: one track's encoded frames cut into short, self-contained WebM files.

A :class:`SegmentWriter` is a :class:`media.interfaces.Sink` like any subscriber. It
remuxes the frames it is given (never decodes or encodes them) and hands each closed
:class:`Segment` to an async callback, in order, from a task it owns.

Timing rules:

* Every track has a timeline in milliseconds from the recording's origin
  (:class:`recorder.timeline.Timeline`, shared by the tracks of one recording). The first
  frame of a source is placed at its arrival time; later frames of the same source by
  their RTP timestamps (unwrapped at 2**32), so the publisher's own clock sets the pace.
* A new source (the publisher reconnected) restarts the RTP clock: the open segment is
  closed and the source's first frame is placed at its arrival time again, never before
  the end of the previous segment, so the timeline only moves forward. A jump of the RTP
  clock by more than :data:`MAX_JUMP_MS` is treated the same way.
* Video segments start on a keyframe. One is cut at the first keyframe at least
  ``segment_s`` after its start, or at a keyframe that changes the resolution; its last
  frame lasts until the next segment starts. Frames before the first keyframe (of the
  recording, or after a new source) are dropped and counted in ``dropped``.
* Audio segments are cut at the first packet at least ``segment_s`` after their start;
  each packet lasts as long as its Opus TOC says.
* In each file, timestamps start at 0 (time base 1/1000).

Keyframes (as Galène's disk writer): the writer asks its source for one when attached,
then at most once per ``keyframe_retry_s`` while it waits for the first, whenever none
has arrived for ``keyframe_timeout_s`` (a timer checks, so a silent source is asked too),
and when the open segment is ``segment_s`` old with no keyframe since to cut it at.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, NamedTuple, Optional

import av

from media.interfaces import Source

from .timeline import RtpClock, Timeline
from .webm import OPUS_SAMPLE_RATE, EncodedFrame, mux_opus, mux_vp8, opus_packet_samples, vp8_keyframe_size

logger = logging.getLogger(__name__)

#: A jump of a source's RTP clock larger than this (either way) is a discontinuity.
MAX_JUMP_MS = 10_000
#: Duration of a video frame before two frames have been seen (flushing a 1-frame segment).
_DEFAULT_FRAME_MS = 33
#: A longer interval between two video frames is a gap, not a frame rate.
_MAX_FRAME_MS = 1000
#: Media missing for longer than this (a network outage, a publisher gone) is a gap the
#: segment reports (``Segment.gaps``), so the evidence log can mark it for an auditor.
GAP_MS = 1500
_DEFAULT_AUDIO_MS = 20
_RTP_TIME_BASE = {"video": fractions.Fraction(1, 90000), "audio": fractions.Fraction(1, 48000)}
_CODEC = {"video": "vp8", "audio": "opus"}
#: Warn when this many closed segments wait for the callback.
_BACKLOG_WARNING = 8


@dataclass(frozen=True, slots=True)
class Segment:
    """One closed, self-contained WebM file of a track.

    ``media_start_ms`` is the offset of its first frame on the recording's timeline;
    ``wall_start``/``wall_end`` are the UTC times of its start and end on that timeline.
    ``width``/``height`` are set for video, ``sample_rate`` for audio. ``keyframes``
    counts the frames a decoder can start on (every Opus packet is one).
    """

    track: str
    seq: int
    data: bytes = field(repr=False)
    media_start_ms: int
    duration_ms: int
    wall_start: datetime
    wall_end: datetime
    frames: int
    keyframes: int
    codec: str
    width: Optional[int] = None
    height: Optional[int] = None
    sample_rate: Optional[int] = None
    #: (start, end) on the timeline of each stretch without media just before a frame of
    #: this segment (longer than :data:`GAP_MS`)
    gaps: tuple[tuple[int, int], ...] = ()

    @property
    def media_end_ms(self) -> int:
        """Where the next segment of the same source begins on the timeline."""
        return self.media_start_ms + self.duration_ms


SegmentCallback = Callable[[Segment], Awaitable[None]]


class _Frame(NamedTuple):
    data: bytes
    at_ms: int
    keyframe: bool
    own_ms: Optional[int]  # audio: the packet's duration from its TOC


@dataclass
class _OpenSegment:
    seq: int
    start_ms: int
    width: Optional[int] = None
    height: Optional[int] = None
    frames: list[_Frame] = field(default_factory=list)
    end_ms: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)


class SegmentWriter:
    """Cuts one track (e.g. ``"applicant-video"``) into WebM segments; a media Sink.

    ``write`` never blocks: closed segments are muxed and passed to ``on_segment`` by a
    task that the writer owns, one at a time and in order. ``close`` flushes the open
    segment and returns once every segment has been delivered. A failing callback is
    logged and does not stop later segments.
    """

    def __init__(
        self,
        track: str,
        kind: str,
        on_segment: SegmentCallback,
        *,
        inspection_id: str,
        timeline: Optional[Timeline] = None,
        segment_s: float = 4.0,
        keyframe_timeout_s: float = 4.0,
        keyframe_retry_s: float = 1.0,
        watchdog_tick_s: float = 0.25,
    ) -> None:
        if kind not in _CODEC:
            raise ValueError(f"a SegmentWriter records 'video' or 'audio', not {kind!r}")
        if segment_s <= 0:
            raise ValueError(f"segment_s must be positive, not {segment_s!r}")
        self.kind = kind
        self.track = track
        self.codec = _CODEC[kind]
        self.inspection_id = inspection_id
        self._on_segment = on_segment
        self._timeline = timeline if timeline is not None else Timeline()
        self._clock = self._timeline.clock
        self._last_kept_ms: Optional[int] = None
        self._segment_ms = round(segment_s * 1000)
        self._keyframe_timeout_s = keyframe_timeout_s
        self._keyframe_retry_s = keyframe_retry_s
        self._tick_s = watchdog_tick_s
        self._source: Optional[Source] = None
        self._rtp: Optional[RtpClock] = None
        self._open: Optional[_OpenSegment] = None
        self._seq = 0
        self._last_at = 0
        self._end_ms = 0
        self._frame_ms = _DEFAULT_FRAME_MS
        self._last_keyframe_at: Optional[float] = None
        self._cut_due_at: Optional[float] = None  # when the open video segment may be cut
        self._last_request_at: Optional[float] = None
        self._queue: asyncio.Queue[Optional[_OpenSegment]] = asyncio.Queue()
        self._worker: Optional[asyncio.Task[None]] = None
        self._watchdog: Optional[asyncio.Task[None]] = None
        self._started = False
        self._closed = False
        self._close_done = asyncio.Event()
        #: Frames written into segments.
        self.frames = 0
        #: Frames dropped (video before the first keyframe of a source, no timestamp).
        self.dropped = 0
        #: Keyframes seen (video).
        self.keyframes = 0
        #: Keyframe requests sent to the source.
        self.keyframe_requests = 0
        #: Segments handed to ``on_segment``.
        self.segments = 0

    @property
    def backlog(self) -> int:
        """Closed segments waiting for ``on_segment`` (the recorder's lag)."""
        return self._queue.qsize()

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start delivering segments (and, for video, watching keyframes). Idempotent."""
        if self._closed:
            raise RuntimeError(f"{self.track}: a closed SegmentWriter cannot start; make a new one")
        if self._started:
            return
        self._started = True
        self._worker = asyncio.create_task(self._deliver_all(), name=f"segments {self.inspection_id}/{self.track}")
        if self.kind == "video":
            self._watchdog = asyncio.create_task(
                self._watch_keyframes(), name=f"keyframes {self.inspection_id}/{self.track}"
            )

    async def close(self) -> None:
        """Flush the open segment and wait until every segment is delivered. Idempotent."""
        if self._closed:
            await self._close_done.wait()
            return
        self._closed = True
        try:
            self._close_open(None)
            self._source = None
            if self._watchdog is not None:
                self._watchdog.cancel()
                await asyncio.gather(self._watchdog, return_exceptions=True)
            self._queue.put_nowait(None)
            if self._worker is not None:
                await self._worker
            else:  # never started: deliver here
                while (pending := self._queue.get_nowait()) is not None:
                    await self._deliver(pending)
        finally:
            self._close_done.set()
        logger.info(
            "inspection %s: %s closed: %d segments, %d frames, %d dropped, %d keyframe requests",
            self.inspection_id, self.track, self.segments, self.frames, self.dropped, self.keyframe_requests,
        )

    # ---- Sink ----------------------------------------------------------------------------

    def attach(self, source: Optional[Source]) -> None:
        """The slot's publisher changed: close the open segment; ask the new one for a keyframe."""
        if self._closed or source is self._source:
            return
        self._close_open(None)
        self._source = source
        self._rtp = None
        self._last_keyframe_at = None
        logger.info(
            "inspection %s: %s %s", self.inspection_id, self.track,
            "source attached" if source is not None else "source gone",
        )
        if source is not None and self.kind == "video":
            self._request_keyframe("recording starts")

    def write(self, packet: av.Packet[Any]) -> None:
        """Add one encoded frame (pts in the RTP clock). Never blocks, never raises on bad input."""
        if self._closed:
            return
        # The packet is shared with other sinks: read it, never modify it.
        data = bytes(packet)
        if packet.pts is None or not data:
            self.dropped += 1
            return
        time_base = packet.time_base or _RTP_TIME_BASE[self.kind]
        at_ms = self._place(int(packet.pts), time_base)
        if self.kind == "video":
            self._write_video(data, at_ms, bool(packet.is_keyframe))
        else:
            self._write_audio(data, at_ms)
        segment = self._open
        if segment is not None and segment.frames and segment.frames[-1].at_ms == at_ms:  # kept
            last = self._last_kept_ms
            if last is not None and at_ms - last > GAP_MS:
                segment.gaps.append((last, at_ms))
            self._last_kept_ms = at_ms

    # ---- timing --------------------------------------------------------------------------

    def _place(self, ts: int, time_base: fractions.Fraction) -> int:
        """The frame's time on the timeline (never earlier than the previous frame's)."""
        if self._rtp is not None:
            at = self._rtp.to_ms(ts)
            if abs(at - self._last_at) <= MAX_JUMP_MS:
                self._last_at = max(at, self._last_at)
                return self._last_at
            logger.warning(
                "inspection %s: %s: RTP clock jumped by %d ms; starting a new segment",
                self.inspection_id, self.track, at - self._last_at,
            )
            self._close_open(None)
            if self.kind == "video":
                self._last_keyframe_at = None
                self._request_keyframe("RTP clock jumped")
        # A new source (or a discontinuity): place its first frame at its arrival.
        base = max(self._timeline.ms(), self._end_ms, self._last_at)
        self._rtp = RtpClock(ts, time_base, base)
        self._last_at = base
        return base

    def _write_video(self, data: bytes, at_ms: int, keyframe: bool) -> None:
        size = vp8_keyframe_size(data) if keyframe else None
        if keyframe and size is None:
            logger.warning(
                "inspection %s: %s: keyframe flag on a frame without a VP8 keyframe header",
                self.inspection_id, self.track,
            )
            keyframe = False
        if keyframe:
            self.keyframes += 1
            self._last_keyframe_at = self._clock()
        segment = self._open
        if segment is not None and size is not None:
            resized = size != (segment.width, segment.height)
            if resized or at_ms - segment.start_ms >= self._segment_ms:
                if resized:
                    logger.info(
                        "inspection %s: %s: resolution %sx%s -> %dx%d",
                        self.inspection_id, self.track, segment.width, segment.height, *size,
                    )
                self._close_open(at_ms)
                segment = None
        if segment is None:
            if size is None:
                self.dropped += 1
                return
            segment = self._begin(at_ms)
            segment.width, segment.height = size
            self._cut_due_at = self._clock() + self._segment_ms / 1000
        elif 0 < at_ms - segment.frames[-1].at_ms <= _MAX_FRAME_MS:
            self._frame_ms = at_ms - segment.frames[-1].at_ms  # to estimate a last frame's length
        segment.frames.append(_Frame(data, at_ms, keyframe, None))
        self.frames += 1

    def _write_audio(self, data: bytes, at_ms: int) -> None:
        samples = opus_packet_samples(data)
        own_ms = round(samples * 1000 / OPUS_SAMPLE_RATE) if samples else None
        segment = self._open
        if segment is not None and at_ms - segment.start_ms >= self._segment_ms:
            self._close_open(at_ms)
            segment = None
        if segment is None:
            segment = self._begin(at_ms)
        segment.frames.append(_Frame(data, at_ms, True, own_ms))
        self.frames += 1

    def _begin(self, at_ms: int) -> _OpenSegment:
        self._seq += 1
        self._open = _OpenSegment(self._seq, at_ms)
        return self._open

    def _close_open(self, next_ms: Optional[int]) -> None:
        """Close the open segment; ``next_ms`` is where the next one starts, if known."""
        segment = self._open
        if segment is None:
            return
        self._open = None
        self._cut_due_at = None
        last = segment.frames[-1]
        if self.kind == "video":
            end = next_ms if next_ms is not None else last.at_ms + self._frame_ms
        elif last.own_ms is not None:
            end = last.at_ms + last.own_ms
        else:
            end = next_ms if next_ms is not None else last.at_ms + _DEFAULT_AUDIO_MS
        segment.end_ms = max(end, last.at_ms)
        self._end_ms = max(self._end_ms, segment.end_ms)
        self._queue.put_nowait(segment)
        if self._queue.qsize() >= _BACKLOG_WARNING:
            logger.warning(
                "inspection %s: %s: %d segments wait for delivery",
                self.inspection_id, self.track, self._queue.qsize(),
            )

    # ---- keyframes -----------------------------------------------------------------------

    def _request_keyframe(self, why: str) -> None:
        source = self._source
        if source is None:
            return
        self._last_request_at = self._clock()
        self.keyframe_requests += 1
        logger.debug("inspection %s: %s: keyframe request (%s)", self.inspection_id, self.track, why)
        try:
            source.request_keyframe()
        except Exception:  # the source's problem must not stop the recording
            logger.exception("inspection %s: %s: keyframe request failed", self.inspection_id, self.track)

    def _check_keyframes(self) -> None:
        """Ask for a keyframe if one is overdue (the watchdog calls this periodically)."""
        if self._source is None or self._closed:
            return
        now = self._clock()
        last, due = self._last_keyframe_at, self._cut_due_at
        if last is None:
            why = "waiting for the first keyframe"
        elif now - last >= self._keyframe_timeout_s:
            why = "no keyframe for %.1f s" % (now - last)
        elif due is not None and now >= due and last < due:
            why = "the segment is due for a cut"
        else:
            return
        if self._last_request_at is not None and now - self._last_request_at < self._keyframe_retry_s:
            return
        self._request_keyframe(why)

    async def _watch_keyframes(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            self._check_keyframes()

    # ---- delivery ------------------------------------------------------------------------

    async def _deliver_all(self) -> None:
        while (pending := await self._queue.get()) is not None:
            await self._deliver(pending)

    async def _deliver(self, pending: _OpenSegment) -> None:
        try:
            # Muxing a 4 s 720p segment takes 1-2 ms: not worth a thread.
            segment = self._finish(pending)
        except Exception:
            logger.exception(
                "inspection %s: %s: segment %d could not be muxed; its %d frames are lost",
                self.inspection_id, self.track, pending.seq, len(pending.frames),
            )
            return
        logger.debug(
            "inspection %s: %s: segment %d at %d ms, %d ms, %d frames, %d bytes",
            self.inspection_id, self.track, segment.seq, segment.media_start_ms,
            segment.duration_ms, segment.frames, len(segment.data),
        )
        try:
            await self._on_segment(segment)
        except Exception:
            logger.exception(
                "inspection %s: %s: on_segment failed for segment %d",
                self.inspection_id, self.track, segment.seq,
            )
        self.segments += 1

    def _finish(self, pending: _OpenSegment) -> Segment:
        frames = pending.frames
        encoded: list[EncodedFrame] = []
        for i, frame in enumerate(frames):
            next_ms = frames[i + 1].at_ms if i + 1 < len(frames) else pending.end_ms
            duration = frame.own_ms if frame.own_ms is not None else next_ms - frame.at_ms
            encoded.append(EncodedFrame(frame.data, frame.at_ms - pending.start_ms, max(duration, 0), frame.keyframe))
        width = height = sample_rate = None
        if self.kind == "video":
            assert pending.width is not None and pending.height is not None
            width, height = pending.width, pending.height
            data = mux_vp8(encoded, width, height)
        else:
            sample_rate = OPUS_SAMPLE_RATE
            data = mux_opus(encoded)
        return Segment(
            track=self.track,
            seq=pending.seq,
            data=data,
            media_start_ms=pending.start_ms,
            duration_ms=pending.end_ms - pending.start_ms,
            wall_start=self._timeline.wall(pending.start_ms),
            wall_end=self._timeline.wall(pending.end_ms),
            frames=len(encoded),
            keyframes=sum(1 for frame in encoded if frame.keyframe),
            codec=self.codec,
            width=width,
            height=height,
            sample_rate=sample_rate,
            gaps=tuple(pending.gaps),
        )
