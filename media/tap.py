"""The only module that touches aiortc's private seams.

aiortc has no public path for forwarding encoded media (aiortc issue #449): a receiver
hands every complete frame from its jitter buffer to a decoder thread, and a sender asks
its track for frames to encode. Two seams make pass-through possible without a fork:

* ``RTCRtpReceiver.__decoder_queue`` (name-mangled): the receiver ``put``s
  ``(codec, JitterFrame)`` into it from the event loop. Replacing it, before the receiver
  starts, with :class:`_EncodedFrameTap` hands us the encoded frames and leaves the
  decoder thread blocked forever on an empty ``get`` (it never decodes).
* ``RTCRtpSender._next_encoded_frame`` accepts an :class:`av.Packet` from its track and
  only packetizes it (``Encoder.pack``): no encoder runs.

Keyframe requests travel through ``RTCRtpSender._send_keyframe`` (a subscriber's PLI/FIR)
and ``RTCRtpReceiver._send_rtcp_pli`` (our PLI to a publisher).

These names are private. aiortc is pinned in pyproject.toml and ``check_aiortc_seams``
fails loudly at start-up (and in tests) if an upgrade moves them.
"""

from __future__ import annotations

import fractions
import logging
import threading
from typing import Any, Callable, Optional

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)

_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_STARTED_ATTR = "_RTCRtpReceiver__started"
_RTX_ATTR = "_RTCRtpReceiver__rtx_ssrc"
_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"

FrameCallback = Callable[[av.Packet], None]


class SeamMissing(RuntimeError):
    """aiortc no longer has a private name this module relies on."""


def check_aiortc_seams() -> None:
    """Fail loudly if the installed aiortc moved one of the seams we tap."""
    missing = []
    for attr in (_QUEUE_ATTR, _RTX_ATTR, _JITTER_ATTR):
        if attr not in RTCRtpReceiver.__init__.__code__.co_names:
            missing.append(attr)
    for cls, name in (
        (RTCRtpReceiver, "_send_rtcp_pli"),
        (RTCRtpReceiver, "getSynchronizationSources"),
        (RTCRtpSender, "_send_keyframe"),
        (RTCRtpSender, "_next_encoded_frame"),
    ):
        if not callable(getattr(cls, name, None)):
            missing.append(f"{cls.__name__}.{name}")
    if missing:
        raise SeamMissing(
            "the installed aiortc lacks "
            + ", ".join(missing)
            + "; pin aiortc==1.16.0 or port media/tap.py to the new version"
        )


class _EncodedFrameTap:
    """Stands in for the receiver's decoder queue (a ``queue.Queue``).

    ``put`` is called on the event loop thread by ``_handle_rtp_packet``; the decoder
    thread calls ``get`` and stays parked until the receiver stops, when ``put(None)``
    releases it so that the remote track ends as usual.
    """

    def __init__(self, kind: str, on_frame: FrameCallback) -> None:
        self._kind = kind
        self._on_frame = on_frame
        self._stopped = threading.Event()
        self.frames = 0

    def put(self, item: Optional[tuple[Any, Any]]) -> None:
        if item is None:
            self._stopped.set()
            return
        _codec, encoded = item
        packet = av.Packet(encoded.data)
        packet.pts = encoded.timestamp
        packet.dts = encoded.timestamp
        if self._kind == "video":
            packet.time_base = VIDEO_TIME_BASE
            # VP8 payload header (RFC 6386 9.1): bit 0 of the first byte is 0 on keyframes.
            packet.is_keyframe = bool(encoded.data) and not (encoded.data[0] & 0x01)
        else:
            packet.time_base = AUDIO_TIME_BASE
            packet.is_keyframe = True
        self.frames += 1
        try:
            self._on_frame(packet)
        except Exception:  # a sink's bug must not stop the receiver
            logger.exception("encoded frame callback failed (%s)", self._kind)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> None:
        self._stopped.wait()
        return None


class _PassThroughJitterBuffer(JitterBuffer):
    """Releases a frame as soon as it is complete, instead of when the next one starts.

    aiortc's buffer holds each video frame until the first packet of the next frame
    arrives (one frame interval, 50 ms at 20 fps) and prefetches four audio packets
    (80 ms): right before a decoder, wasted latency in front of a forwarder, whose
    subscribers' own jitter buffers absorb the jitter. A video frame is complete when the
    packets from the head of the buffer up to the one with the RTP marker bit are all there;
    an Opus packet is a frame by itself. A sender that never sets the marker still gets
    its frames released when the next frame starts, as before.
    """

    def _remove_frame(self, sequence_number: int) -> Optional[JitterFrame]:
        if self._origin is None:
            return None
        packets = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                frame = JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)  # type: ignore[attr-defined]
                self.remove(count)
                return frame
            packets.append(packet)
            if packet.marker or not self._is_video:
                frame = JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)  # type: ignore[attr-defined]
                self.remove(count + 1)
                return frame
        return None


def tap_receiver(receiver: RTCRtpReceiver, on_frame: FrameCallback) -> None:
    """Route the receiver's encoded frames to ``on_frame`` instead of its decoder.

    Must be called before the receiver starts (i.e. from the peer connection's
    ``track`` event, which fires before the transports connect).
    """
    if getattr(receiver, _STARTED_ATTR, False):
        raise RuntimeError("tap_receiver() must run before the receiver starts")
    if not hasattr(receiver, _QUEUE_ATTR):
        raise SeamMissing(f"RTCRtpReceiver has no {_QUEUE_ATTR}")
    setattr(receiver, _QUEUE_ATTR, _EncodedFrameTap(receiver.track.kind, on_frame))
    old = getattr(receiver, _JITTER_ATTR)
    setattr(receiver, _JITTER_ATTR, _PassThroughJitterBuffer(capacity=old.capacity, is_video=receiver.track.kind == "video"))


def tapped_frames(receiver: RTCRtpReceiver) -> int:
    """How many encoded frames the tap has taken from this receiver."""
    tap = getattr(receiver, _QUEUE_ATTR, None)
    return tap.frames if isinstance(tap, _EncodedFrameTap) else 0


def publisher_ssrc(receiver: RTCRtpReceiver) -> Optional[int]:
    """The media SSRC most recently seen by the receiver, for addressing a PLI.

    Retransmission streams are skipped: Chromium probes bandwidth with RTX padding, and a
    PLI addressed to the RTX SSRC is ignored.
    """
    rtx = getattr(receiver, _RTX_ATTR, {})
    sources = sorted(receiver.getSynchronizationSources(), key=lambda s: s.timestamp, reverse=True)
    for source in sources:
        if source.source not in rtx:
            return int(source.source)
    return None


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI to the publisher behind ``receiver``; False if no SSRC is known yet."""
    ssrc = publisher_ssrc(receiver)
    if ssrc is None:
        return False
    await receiver._send_rtcp_pli(ssrc)
    return True


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the subscriber behind ``sender`` sends a PLI or FIR.

    With packets there is no encoder to force, so the request is routed to the
    publisher instead (by the caller).
    """
    sender._send_keyframe = callback  # type: ignore[method-assign]
