"""Stills: a full-resolution JPEG of a publisher's video, taken from the stream on demand.

:class:`StillCapture` is a :class:`media.interfaces.Sink` on one video slot (the
applicant's camera by default). It only remembers the latest keyframe packet; when asked
for a still it requests a fresh keyframe, decodes that one frame with its own libvpx
decoder in a worker thread and encodes a JPEG. This is the only place where Takan decodes
video.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple, Optional

import av
from PIL import Image

from media.interfaces import SinkHost, Source

logger = logging.getLogger(__name__)

#: A keyframe younger than this is fresh enough for a still without asking for another.
RECENT_KEYFRAME_S = 0.2
#: How often to repeat the keyframe request while waiting (the source rate-limits too).
_REQUEST_EVERY_S = 0.5
#: A keyframe at least this wide is full resolution for a still (the pages ask for 720p).
SHARP_WIDTH = 1280
#: How much longer a still waits for a sharper keyframe than a narrow first one: the
#: phone's encoder, told to keep full resolution (the `sharpen` event), restarts at it
#: with a keyframe within a few frames.
SHARPEN_WAIT_S = 2.0
JPEG_QUALITY = 92


class NoVideo(Exception):
    """No picture can be taken: nobody publishes the video, or no keyframe came in time."""


@dataclass(frozen=True, slots=True)
class Still:
    """A JPEG of one video frame; ``captured_at`` is when its keyframe reached the server."""

    data: bytes = field(repr=False)
    width: int
    height: int
    captured_at: datetime
    rtp_timestamp: int


class _Keyframe(NamedTuple):
    packet: av.Packet[Any]
    arrived: float  # monotonic
    arrived_wall: datetime


class StillCapture:
    """Takes stills of the video published in ``(role, "video")`` of ``room``.

    ``start()`` joins the slot as a sink, ``close()`` leaves it (both idempotent);
    ``capture()`` returns a :class:`Still` or raises :class:`NoVideo`.
    """

    kind = "video"

    def __init__(
        self,
        room: SinkHost,
        inspection_id: str,
        role: str = "applicant",
        *,
        jpeg_quality: int = JPEG_QUALITY,
    ) -> None:
        self.inspection_id = inspection_id
        self.role = role
        self._room = room
        self._quality = jpeg_quality
        self._source: Optional[Source] = None
        self._latest: Optional[_Keyframe] = None
        self._waiters: list[asyncio.Future[_Keyframe]] = []
        self._started = False
        self._closed = False
        #: Stills taken so far.
        self.captured = 0

    async def start(self) -> None:
        """Join the room as a sink of the slot. Idempotent."""
        if self._closed:
            raise RuntimeError("a closed StillCapture cannot start; make a new one")
        if self._started:
            return
        self._started = True
        self._room.add_sink((self.role, "video"), self)

    async def close(self) -> None:
        """Leave the room; pending captures fail with NoVideo. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._room.remove_sink((self.role, "video"), self)
        self._source = None
        self._latest = None
        self._fail_waiters("still capture closed")

    # ---- Sink ----------------------------------------------------------------------------

    def attach(self, source: Optional[Source]) -> None:
        if source is self._source:
            return
        self._source = source
        self._latest = None  # a keyframe of the previous publisher is not a picture of now
        if source is None:
            self._fail_waiters(f"the {self.role} stopped publishing video")

    def write(self, packet: av.Packet[Any]) -> None:
        # Only keyframes matter, and they are only remembered: no work per packet.
        if not packet.is_keyframe or self._closed:
            return
        keyframe = _Keyframe(packet, time.monotonic(), datetime.now(timezone.utc))
        self._latest = keyframe
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(keyframe)

    # ---- capture -------------------------------------------------------------------------

    async def capture(self, timeout_s: float = 3.0, sharpen: bool = False) -> Still:
        """A JPEG of the next keyframe (or of one that arrived within ~200 ms).

        With ``sharpen`` (the publisher was told to keep full resolution), a keyframe
        narrower than SHARP_WIDTH is bettered by a wider one arriving within SHARPEN_WAIT_S.
        Raises :class:`NoVideo` when nobody publishes the video or no keyframe arrives
        within ``timeout_s``.
        """
        if self._closed:
            raise NoVideo("still capture is closed")
        if self._source is None:
            raise NoVideo(f"nobody publishes {self.role} video")
        latest = self._latest
        if latest is not None and time.monotonic() - latest.arrived <= RECENT_KEYFRAME_S:
            keyframe = latest
        else:
            keyframe = await self._next_keyframe(timeout_s)
        if sharpen and vp8_keyframe_width(bytes(keyframe.packet)) < SHARP_WIDTH:
            # the encoder had lowered its resolution for a weak link: its next keyframes
            # are at full resolution once it keeps it; wait a little for one
            deadline = time.monotonic() + SHARPEN_WAIT_S
            while (left := deadline - time.monotonic()) > 0:
                try:
                    wider = await self._next_keyframe(left, quiet=True)
                except NoVideo:
                    break
                if vp8_keyframe_width(bytes(wider.packet)) > vp8_keyframe_width(bytes(keyframe.packet)):
                    keyframe = wider
                if vp8_keyframe_width(bytes(keyframe.packet)) >= SHARP_WIDTH:
                    break
        data, width, height = await asyncio.to_thread(_jpeg_of_keyframe, bytes(keyframe.packet), self._quality)
        self.captured += 1
        logger.info(
            "inspection %s: still of %s video, %dx%d, %d bytes",
            self.inspection_id, self.role, width, height, len(data),
        )
        return Still(
            data=data,
            width=width,
            height=height,
            captured_at=keyframe.arrived_wall,
            rtp_timestamp=int(keyframe.packet.pts or 0),
        )

    async def _next_keyframe(self, timeout_s: float, quiet: bool = False) -> _Keyframe:
        waiter: asyncio.Future[_Keyframe] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                source = self._source
                if source is not None:
                    source.request_keyframe()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait({waiter}, timeout=min(_REQUEST_EVERY_S, remaining))
                if done:
                    return waiter.result()  # raises NoVideo if the publisher left
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled():
                waiter.exception()  # retrieved: a late failure is not worth a warning
        if not quiet:
            logger.warning(
                "inspection %s: no keyframe from %s video within %.1f s", self.inspection_id, self.role, timeout_s
            )
        raise NoVideo(f"no keyframe from the {self.role}'s camera within {timeout_s:g} s")

    def _fail_waiters(self, why: str) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(NoVideo(why))


def vp8_keyframe_width(frame: bytes) -> int:
    """The width a VP8 keyframe declares (RFC 6386 9.1: start code, then 14-bit width), or 0."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return 0
    return int.from_bytes(frame[6:8], "little") & 0x3FFF


def _jpeg_of_keyframe(data: bytes, quality: int) -> tuple[bytes, int, int]:
    """Decode one VP8 keyframe with a fresh decoder and encode it as JPEG (in a thread)."""
    decoder = av.VideoCodecContext.create("libvpx", "r")
    try:
        frames = decoder.decode(av.Packet(data)) or decoder.decode(None)
    except av.FFmpegError as exc:
        raise NoVideo(f"the keyframe could not be decoded: {exc}") from exc
    if not frames:
        raise NoVideo("the keyframe decoded to no picture")
    frame = frames[0]
    image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]  # PyAV's stub lacks types
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue(), frame.width, frame.height
