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

Transport-wide congestion control (``media/twcc.py``) needs three more: the transceiver's
negotiated ``_headerExtensions`` and ``_codecs`` (to accept the offer's transport-cc
extension and ``rtcp-fb``, which aiortc leaves out of its answers),
``RTCRtpReceiver._handle_rtp_packet`` (each packet's transport-wide sequence number, read
by aiortc's own header parser once the extension is negotiated),
``RTCDtlsTransport._send_rtp`` (which sends RTCP too), and the aioice ``Connection`` of the
ICE transport (``RTCIceTransport._connection``: ``data_received`` and ``recvfrom``), whose
socket callback is where a packet's arrival time is least delayed by our own event loop.

Its sending half, on a subscriber's leg (``media/queue_estimator.py``), needs two more: the
sender's header extension map (``RTCRtpSender.__rtp_header_extensions_map``), replaced by one
that numbers every packet it serializes (aiortc's sender never sets a transport-wide
sequence number), and ``RTCDtlsTransport._handle_rtcp_data``, where the subscriber's
transport feedback is read whole (aiortc parses RTPFB FMT=15 as if it were a NACK).

Sender reports in the publisher's clock (``media/capture_clock.py``) need four more:
``RTCRtpReceiver._handle_rtcp_packet`` (the publisher's reports), the receiver's
``TimestampMapper`` (``_origin``, ``_last``: a report's RTP time as the pts of our frames),
and on the subscriber's leg the sender's ``_send_rtcp`` (where its report's NTP/RTP pair is
rewritten) and ``__rtp_timestamp`` (the last packet's RTP time, from which the sender's
random timestamp origin is learnt, by wrapping ``_next_encoded_frame``).

Two per-packet costs are cut at module seams (``use_fast_clock``): aiortc's sender reads
the NTP clock twice per packet and its DTLS transport once per datagram through ``datetime``
(``aiortc.clock``); the ``clock`` module those two modules imported is replaced by one
computing the same values from ``time.time_ns``.

These names are private. aiortc is pinned in pyproject.toml and ``check_aiortc_seams``
fails loudly at start-up (and in tests) if an upgrade moves them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import math
import socket
import struct
import threading
import time
import types
from typing import Any, Callable, Optional

import aioice
import aiortc.clock
import aiortc.rtcdtlstransport
import aiortc.rtcrtpsender
import av
import pylibsrtp
from aiortc import RTCIceTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import TimestampMapper
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import (
    RTCP_PSFB_APP,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
    unpack_remb_fci,
)
from aiortc.sdp import SessionDescription

from . import twcc
from .bitrate_cap import ReceiverReport

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)

_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_STARTED_ATTR = "_RTCRtpReceiver__started"
_RTX_ATTR = "_RTCRtpReceiver__rtx_ssrc"
_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_RTCP_SSRC_ATTR = "_RTCRtpReceiver__rtcp_ssrc"
_TIMESTAMPS_ATTR = "_RTCRtpReceiver__timestamp_mapper"
_NACK_ATTR = "_RTCRtpReceiver__nack_generator"
_SENDER_LSR_ATTR = "_RTCRtpSender__lsr"
_SENDER_LSR_TIME_ATTR = "_RTCRtpSender__lsr_time"
_SENDER_MAP_ATTR = "_RTCRtpSender__rtp_header_extensions_map"
_SENDER_RTX_SSRC_ATTR = "_rtx_ssrc"
_SENDER_RTP_TIMESTAMP_ATTR = "_RTCRtpSender__rtp_timestamp"
_DTLS_RX_BYTES = "_RTCDtlsTransport__rx_bytes"
_DTLS_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
_DTLS_CONNECTED = DtlsState.CONNECTED

FrameCallback = Callable[["av.Packet[Any]"], None]


class SeamMissing(RuntimeError):
    """aiortc no longer has a private name this module relies on."""


def check_aiortc_seams() -> None:
    """Fail loudly if the installed aiortc moved one of the seams we tap."""
    missing = []
    for attr in (_QUEUE_ATTR, _RTX_ATTR, _JITTER_ATTR, _RTCP_SSRC_ATTR, _TIMESTAMPS_ATTR, _NACK_ATTR):
        if attr not in RTCRtpReceiver.__init__.__code__.co_names:
            missing.append(attr)
    for attr in (_SENDER_LSR_ATTR, _SENDER_LSR_TIME_ATTR, _SENDER_MAP_ATTR, _SENDER_RTX_SSRC_ATTR,
                 _SENDER_RTP_TIMESTAMP_ATTR):
        if attr not in RTCRtpSender.__init__.__code__.co_names:
            missing.append(attr)
    for cls, name in (
        (RTCRtpReceiver, "_send_rtcp_pli"),
        (RTCRtpReceiver, "_send_rtcp_nack"),
        (RTCRtpReceiver, "_handle_rtp_packet"),
        (RTCRtpReceiver, "getSynchronizationSources"),
        (RTCRtpSender, "_send_keyframe"),
        (RTCRtpSender, "_next_encoded_frame"),
        (RTCRtpSender, "_handle_rtcp_packet"),
        (RTCRtpSender, "_retransmit"),
        (RTCRtpSender, "_send_rtcp"),
        (RTCRtpReceiver, "_handle_rtcp_packet"),
        (RTCDtlsTransport, "_send_rtp"),
        (RTCDtlsTransport, "_handle_rtcp_data"),
        (HeaderExtensionsMap, "configure"),
        (HeaderExtensionsMap, "set"),
    ):
        if not callable(getattr(cls, name, None)):
            missing.append(f"{cls.__name__}.{name}")
    for name in ("data_received", "recvfrom"):
        if not callable(getattr(aioice.Connection, name, None)):
            missing.append(f"aioice.Connection.{name}")
    # the direct SRTP path does what RTCDtlsTransport._recv_next does with a datagram
    for attr in (_DTLS_RX_BYTES, _DTLS_RX_PACKETS, "_rx_srtp", "_state"):
        if attr not in RTCDtlsTransport.__init__.__code__.co_names:
            missing.append(f"RTCDtlsTransport.{attr}")
    for name in ("_handle_rtp_data", "_recv_next"):
        if not callable(getattr(RTCDtlsTransport, name, None)):
            missing.append(f"RTCDtlsTransport.{name}")
    if not {"_rx_srtp", "unprotect", "unprotect_rtcp", "_handle_rtp_data", "_handle_rtcp_data"} <= set(
        RTCDtlsTransport._recv_next.__code__.co_names
    ):
        missing.append("RTCDtlsTransport._recv_next's SRTP branch")
    if "_queue" not in aioice.Connection.__init__.__code__.co_names:
        missing.append("aioice.Connection._queue")
    for attr in ("_origin", "_last"):  # frame_pts() reads the receiver's mapper
        if attr not in TimestampMapper.__init__.__code__.co_names:
            missing.append(f"TimestampMapper.{attr}")
    if "_connection" not in RTCIceTransport.__init__.__code__.co_names:
        missing.append("RTCIceTransport._connection")
    for attr in ("_headerExtensions", "_codecs"):
        if attr not in RTCRtpTransceiver.__init__.__code__.co_names:
            missing.append(f"RTCRtpTransceiver.{attr}")
    # aiortc must parse the transport-wide sequence number once the URI is negotiated.
    probe = HeaderExtensionsMap()
    probe.configure(type("P", (), {"headerExtensions": [RTCRtpHeaderExtensionParameters(id=5, uri=twcc.URI)]})())
    if probe.get(0xBEDE, bytes([0x51, 0x12, 0x34, 0x00])).transport_sequence_number != 0x1234:
        missing.append("transport-wide sequence number parsing (aiortc.rtp.HeaderExtensionsMap)")
    for module in (aiortc.rtcrtpsender, aiortc.rtcdtlstransport):
        if getattr(module, "clock", None) not in (aiortc.clock, _FAST_CLOCK):
            missing.append(f"{module.__name__}.clock")
    for name in ("current_ms", "current_ntp_time"):
        if not callable(getattr(aiortc.clock, name, None)):
            missing.append(f"aiortc.clock.{name}")
    from .ice import check_consent_tolerance

    check_consent_tolerance()
    if missing:
        raise SeamMissing(
            "the installed aiortc lacks "
            + ", ".join(missing)
            + "; pin aiortc==1.16.0 or port media/tap.py to the new version"
        )


#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
_NTP_UNIX_OFFSET_NS = 2_208_988_800 * 1_000_000_000


def _current_ms() -> int:
    """``aiortc.clock.current_ms``: milliseconds since the NTP epoch."""
    return (time.time_ns() + _NTP_UNIX_OFFSET_NS) // 1_000_000


def _current_ntp_time() -> int:
    """``aiortc.clock.current_ntp_time``: 64-bit NTP time, 32.32 fixed point.

    aiortc computes it from ``datetime.now(timezone.utc)`` at microsecond resolution, about
    2 us of Python per call; this is the same value (to the microsecond) from integers.
    """
    seconds, ns = divmod(time.time_ns() + _NTP_UNIX_OFFSET_NS, 1_000_000_000)
    return (seconds << 32) | ((ns // 1000 << 32) // 1_000_000)


def _fast_clock() -> types.ModuleType:
    clock = types.ModuleType("aiortc.clock", "aiortc.clock with integer current_ms/current_ntp_time (media/tap.py)")
    clock.__dict__.update({k: v for k, v in vars(aiortc.clock).items() if not k.startswith("__")})
    clock.current_ms = _current_ms  # type: ignore[attr-defined]
    clock.current_ntp_time = _current_ntp_time  # type: ignore[attr-defined]
    return clock


_FAST_CLOCK = _fast_clock()


def use_fast_clock() -> None:
    """Give aiortc's sender and DTLS transport the integer clock (idempotent, process-wide).

    Profiled at 8 inspections: ``current_ntp_time`` (twice per sent packet) and
    ``current_ms`` (once per received datagram) were ~3 % of the server's time.
    """
    aiortc.rtcrtpsender.clock = _FAST_CLOCK  # type: ignore[attr-defined]
    aiortc.rtcdtlstransport.clock = _FAST_CLOCK  # type: ignore[attr-defined]


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
        self.buffer: Optional["_PassThroughJitterBuffer"] = None
        self.timestamps: Any = None  # the receiver's TimestampMapper

    def put(self, item: Optional[tuple[Any, Any]]) -> None:
        if item is None:
            self._stopped.set()
            return
        self._deliver(item[1])
        if self.buffer is not None and self.timestamps is not None:
            for frame in self.buffer.drain():
                frame.timestamp = self.timestamps.map(frame.timestamp)
                self._deliver(frame)

    def _deliver(self, encoded: Any) -> None:
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


#: How long a video frame may wait for a lost packet (NACK, then RTX) before the buffer gives
#: up on it, drops what depends on it and asks for a keyframe. Several round trips on a
#: congested mobile uplink; a keyframe costs about a second of a 400 kbit/s uplink.
HOLE_TIMEOUT_S = 1.0
#: The same for a keyframe: giving one up only asks for another, as large and as exposed to
#: the same loss (bench/field_media.py run I, 10 % loss: fresh video 5 s after an outage
#: while keyframes were given up and asked for again), so its retransmissions get longer.
KEYFRAME_HOLE_TIMEOUT_S = 2.5
#: This many video packets in a row older than the last frame released are a sender whose
#: RTP clock restarted, not late retransmissions: the buffer follows it.
STALE_RESTART_PACKETS = 64


def vp8_frame_start(payload: bytes) -> tuple[bool, bool]:
    """(starts a frame, is a keyframe) from an RTP packet's VP8 payload (RFC 7741 4.2)."""
    if not payload:
        return False, False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S=1 and partition index 0 start a frame
        return False, False
    pos = 1
    if first & 0x80:  # X: extension byte I L T K
        if len(payload) < 2:
            return False, False
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            pos += 2 if len(payload) > pos and payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            pos += 1
    if pos >= len(payload):
        return True, False
    return True, not payload[pos] & 0x01


class _PassThroughJitterBuffer(JitterBuffer):
    """Releases a frame as soon as it is complete, instead of when the next one starts.

    aiortc's buffer holds each video frame until the first packet of the next frame
    arrives (one frame interval, 50 ms at 20 fps) and prefetches four audio packets
    (80 ms): right before a decoder, wasted latency in front of a forwarder, whose
    subscribers' own jitter buffers absorb the jitter. A video frame is complete when the
    packets from the head of the buffer up to the one with the RTP marker bit are all there;
    an Opus packet is a frame by itself. A sender that never sets the marker still gets
    its frames released when the next frame starts, as before.

    A lost packet that never comes back (its NACK or its retransmission lost too) would
    hold every later frame until the buffer overflows: 512 packets, ten seconds of a
    400 kbit/s uplink. So a hole is given up after HOLE_TIMEOUT_S, or at once when a
    keyframe starts behind it: the buffer moves to the next frame start, drops inter
    frames until a keyframe (they reference what was lost; forwarded, they would smear the
    subscribers' pictures) and asks for one (the PLI flag of ``add``).

    A video frame never goes back in time: a packet of a frame no newer than the last one
    released is dropped. After a hole is given up with nothing usable behind it the buffer
    starts afresh on whatever comes next, and aiortc's restarts on a packet 100 or more
    behind its head; a retransmission answered seconds late (a phone's uplink clearing
    after 40 s at 80 kbit/s) then became the head, and an old frame went to the subscribers
    and the recorder (its RTP clock stepped back 10 s) after newer ones. A new SSRC, or
    STALE_RESTART_PACKETS stale packets in a row (a sender whose clock did restart), starts
    the timeline afresh.
    """

    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
        super().__init__(capacity, prefetch=prefetch, is_video=is_video)
        self._blocked_since: Optional[float] = None
        self._await_keyframe = False
        self._await_start = False
        self.holes_skipped = 0
        self.frames_dropped = 0
        #: Sequence number of the buffered packet furthest from the head, so that the scans
        #: below stop there instead of walking all ``capacity`` slots for every packet
        #: (profiled: the full walk was ~5 % of a loaded server's time).
        self._newest: Optional[int] = None
        #: Where the last frame walk stopped at a missing packet, as (head, generation,
        #: offset of the hole, the head frame's timestamp): the next walk from the same head
        #: starts at the hole instead of at the head. Slots before the hole only ever get
        #: the same packet again (a duplicate), so what the walk saw there still holds; any
        #: removal bumps the generation. Profiled: the walk from the head for every packet
        #: of a 720p frame was ~4 % of a loaded server's time.
        self._walk: Optional[tuple[int, int, int, Optional[int]]] = None
        self._generation = 0
        #: RTP timestamp of the last video frame released (see the class docstring).
        self._released: Optional[int] = None
        self._ssrc: Optional[int] = None
        self._stale_run = 0
        self.stale_dropped = 0

    def remove(self, count: int) -> None:
        self._generation += 1
        super().remove(count)

    def smart_remove(self, count: int) -> bool:
        self._generation += 1
        return super().smart_remove(count)

    def add(self, packet: Any) -> tuple[bool, Optional[JitterFrame]]:
        if self._is_video and packet.ssrc != self._ssrc:  # audio never sets _released
            self._ssrc, self._released = packet.ssrc, None
        released = self._released
        if released is not None and (released - packet.timestamp) & 0xFFFFFFFF < 0x80000000:
            # of a frame released already, or older than one (video only)
            self._stale_run += 1
            if self._stale_run < STALE_RESTART_PACKETS:
                self.stale_dropped += 1
                return False, None
            logger.info("video: %d packets in a row older than the last frame; the sender's clock restarted", self._stale_run)
            self._released = None
            self._stale_run = 0
            if self._origin is not None:
                self._skip_to(None)  # start afresh on a keyframe of the new timeline
            self._await_start = self._await_keyframe = True
            return True, self.add(packet)[1]  # asks for that keyframe
        self._stale_run = 0
        if self._is_video and self._await_start:
            # Emptied after a hole: start again on a frame start, never mid-frame.
            if not vp8_frame_start(packet.payload)[0]:
                return False, None
            self._await_start = False
        seq = packet.sequence_number
        pli, frame = super().add(packet)
        if not self._is_video:
            return pli, frame
        if self._packets[seq % self._capacity] is packet or frame is not None:
            # placed (a packet that completed a frame may be gone already): the newest
            # unless one further ahead of the head is buffered
            if self._newest is None or self._span(self._newest) >= self._capacity or self._span(seq) > self._span(self._newest):
                self._newest = seq
        if frame is None and self._head_blocked():
            now = time.monotonic()
            if self._blocked_since is None:
                self._blocked_since = now
            keyframe_behind = self._next_start(keyframe=True)
            timeout = KEYFRAME_HOLE_TIMEOUT_S if self._head_is_keyframe() else HOLE_TIMEOUT_S
            if keyframe_behind is not None or now - self._blocked_since >= timeout:
                logger.info("video: a lost packet given up after %.2f s (%s)", now - self._blocked_since,
                            "a keyframe behind it" if keyframe_behind is not None else "timed out; dropping to a keyframe")
                target = keyframe_behind if keyframe_behind is not None else self._next_start(keyframe=False)
                self._skip_to(target)
                self.holes_skipped += 1
                self._await_keyframe = keyframe_behind is None
                pli = pli or keyframe_behind is None
                frame = self._remove_frame(packet.sequence_number)
        elif frame is not None:
            self._blocked_since = None
        return pli, self._gate(frame)

    def _gate(self, frame: Optional[JitterFrame]) -> Optional[JitterFrame]:
        if frame is not None and self._await_keyframe:
            if frame.data and not frame.data[0] & 0x01:
                self._await_keyframe = False
            else:
                self.frames_dropped += 1
                return None
        return frame

    def drain(self) -> list[JitterFrame]:
        """Further frames completed by the last packet (``add`` returns only one).

        A retransmission that fills a hole completes every frame queued behind it; aiortc
        would release them one per later packet, adding latency to each.
        """
        frames: list[JitterFrame] = []
        while True:
            frame = self._remove_frame(0)
            if frame is None:
                return frames
            frame = self._gate(frame)
            if frame is not None:
                frames.append(frame)

    def _span(self, seq: int) -> int:
        """Offset of ``seq`` from the head (>= capacity: not in the buffer's window)."""
        assert self._origin is not None
        return (seq - self._origin) & 0xFFFF

    def _scan_length(self) -> int:
        """Slots from the head that can hold a packet: up to the newest, else all of them."""
        if self._newest is None:
            return self._capacity
        return min(self._span(self._newest) + 1, self._capacity)

    def _head_is_keyframe(self) -> bool:
        """The frame at the head of the buffer (the one held up) starts a keyframe."""
        if self._origin is None:
            return False
        head = self._packets[self._origin % self._capacity]
        return head is not None and vp8_frame_start(head.payload) == (True, True)

    def _head_blocked(self) -> bool:
        """Some packet is buffered beyond a missing one."""
        if self._origin is None:
            return False
        hole = self._known_hole()
        seen_hole = hole is not None
        for count in range(hole[0] + 1 if hole is not None else 0, self._scan_length()):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                seen_hole = True
            elif seen_hole:
                return True
        return False

    def _known_hole(self) -> Optional[tuple[int, Optional[int]]]:
        """Where the last walk from the current head stopped, if it still holds: the first
        missing packet's offset, and the timestamp of the frame at the head."""
        walk = self._walk
        if walk is not None and walk[0] == self._origin and walk[1] == self._generation:
            return walk[2], walk[3]
        return None

    def _next_start(self, keyframe: bool) -> Optional[int]:
        """Offset from the head of the first frame start (keyframe start) after a hole."""
        assert self._origin is not None
        seen_hole = False
        for count in range(self._scan_length()):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                seen_hole = True
                continue
            if seen_hole:
                start, key = vp8_frame_start(packet.payload)
                if start and (key or not keyframe):
                    return count
        return None

    def _skip_to(self, count: Optional[int]) -> None:
        self._blocked_since = None
        if count is None:
            self.remove(self.capacity)  # nothing usable behind the hole: start afresh
            self._origin = None
            self._newest = None
            self._await_start = True
        else:
            self.remove(count)

    def _remove_frame(self, sequence_number: int) -> Optional[JitterFrame]:
        origin = self._origin
        if origin is None:
            return None
        slots, mask = self._packets, self._capacity - 1
        if not self._is_video:  # an Opus packet is a frame by itself
            packet = slots[origin & mask]
            if packet is None:
                return None
            return self._take(1, packet.timestamp)
        start, timestamp = self._known_hole() or (0, None)
        for count in range(start, self._capacity):
            packet = slots[(origin + count) & mask]
            if packet is None:
                self._walk = (origin, self._generation, count, timestamp)
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                return self._take(count, timestamp)
            if packet.marker:
                return self._take(count + 1, timestamp)
        return None

    def _take(self, count: int, timestamp: int) -> JitterFrame:
        """The first ``count`` packets, as a frame, out of the buffer."""
        assert self._origin is not None
        origin, slots, mask = self._origin, self._packets, self._capacity - 1
        data = b"".join(slots[(origin + i) & mask]._data for i in range(count))  # type: ignore[union-attr]
        self.remove(count)
        if self._is_video:
            self._released = timestamp
        return JitterFrame(data=data, timestamp=timestamp)


def tap_receiver(receiver: RTCRtpReceiver, on_frame: FrameCallback) -> None:
    """Route the receiver's encoded frames to ``on_frame`` instead of its decoder.

    Must be called before the receiver starts (i.e. from the peer connection's
    ``track`` event, which fires before the transports connect).
    """
    if getattr(receiver, _STARTED_ATTR, False):
        raise RuntimeError("tap_receiver() must run before the receiver starts")
    if not hasattr(receiver, _QUEUE_ATTR):
        raise SeamMissing(f"RTCRtpReceiver has no {_QUEUE_ATTR}")
    frame_tap = _EncodedFrameTap(receiver.track.kind, on_frame)
    setattr(receiver, _QUEUE_ATTR, frame_tap)
    old = getattr(receiver, _JITTER_ATTR)
    buffer = _PassThroughJitterBuffer(capacity=old.capacity, is_video=receiver.track.kind == "video")
    setattr(receiver, _JITTER_ATTR, buffer)
    frame_tap.buffer = buffer
    frame_tap.timestamps = getattr(receiver, _TIMESTAMPS_ATTR)


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


def missing_packets(receiver: RTCRtpReceiver) -> set[int]:
    """Sequence numbers the receiver's NACK generator still misses (media SSRC's)."""
    generator = getattr(receiver, _NACK_ATTR, None)
    return set(generator.missing) if generator is not None else set()


async def send_nack(receiver: RTCRtpReceiver, sequence_numbers: list[int]) -> bool:
    """NACK ``sequence_numbers`` again to the publisher; False if no SSRC is known yet.

    aiortc NACKs a gap once, when it appears (and again only with the next new gap); on a
    lossy uplink the retransmission is lost as often as the packet, so holes are asked for
    again until repaired (libwebrtc's receivers retry too).
    """
    ssrc = publisher_ssrc(receiver)
    if ssrc is None or not sequence_numbers:
        return False
    await receiver._send_rtcp_nack(ssrc, sorted(sequence_numbers))
    return True


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the subscriber behind ``sender`` sends a PLI or FIR.

    With packets there is no encoder to force, so the request is routed to the
    publisher instead (by the caller).
    """
    sender._send_keyframe = callback  # type: ignore[method-assign]


# ---- transport-wide congestion control ----------------------------------------------------


def negotiate_transport_cc(pc: RTCPeerConnection) -> bool:
    """Accept the remote offer's transport-cc extension and ``rtcp-fb`` in our answer.

    Call after ``setRemoteDescription(offer)`` and before ``createAnswer()``. aiortc
    answers only the header extensions it knows (not transport-cc), from the transceiver's
    negotiated lists, which are per-transceiver copies: nothing process-wide changes. The
    offer's extension id is kept (with BUNDLE the id space is shared). True if any media
    section now has it.
    """
    remote = pc.remoteDescription
    if remote is None:
        raise RuntimeError("negotiate_transport_cc() needs the remote offer applied first")
    description = SessionDescription.parse(remote.sdp)
    negotiated = False
    for transceiver in pc.getTransceivers():
        media = next((m for m in description.media if m.rtp.muxId == transceiver.mid), None)
        if media is None:
            continue
        ext = next((e for e in media.rtp.headerExtensions if e.uri == twcc.URI), None)
        if ext is None:
            continue
        extensions: list[RTCRtpHeaderExtensionParameters] = transceiver._headerExtensions
        if all(e.uri != twcc.URI for e in extensions):
            extensions.append(RTCRtpHeaderExtensionParameters(id=ext.id, uri=twcc.URI))
        for codec in transceiver._codecs:
            offered = next((c for c in media.rtp.codecs if c.payloadType == codec.payloadType), None)
            if offered is None or not any(f.type == "transport-cc" for f in offered.rtcpFeedback):
                continue
            if not any(f.type == "transport-cc" for f in codec.rtcpFeedback):
                codec.rtcpFeedback.append(RTCRtcpFeedback(type="transport-cc"))
        negotiated = True
    return negotiated


class _TransportNumbering:
    """One transport's transport-wide sequence numbers for what we send on it.

    The number is written when a sender serializes a packet, and the packet handed to the
    transport's ``_send_rtp`` right after (no await between) is the one it went into: there
    its size and send time go to ``on_sent``.
    """

    def __init__(self, on_sent: Callable[[int, float, int, bool], None]) -> None:
        self._next = 0
        self._on_sent = on_sent
        self.pending: Optional[tuple[int, bool]] = None

    def take(self, video: bool) -> int:
        seq = self._next
        self._next = (seq + 1) & 0xFFFF
        self.pending = (seq, video)
        return seq

    def sent(self, pending: tuple[int, bool], size: int) -> None:
        try:
            self._on_sent(pending[0], time.monotonic(), size, pending[1])
        except Exception:
            logger.exception("send record failed")


class _NumberingExtensionsMap(HeaderExtensionsMap):
    """A sender's header extension map that gives every packet it serializes (RTX too) the
    transport's next transport-wide sequence number, once transport-cc is negotiated."""

    def __init__(self, numbering: _TransportNumbering, video: bool) -> None:
        super().__init__()
        self._numbering = numbering
        self._video = video
        self._numbers = False

    def configure(self, parameters: Any) -> None:
        super().configure(parameters)
        self._numbers = any(e.uri == twcc.URI for e in parameters.headerExtensions)

    def set(self, values: Any) -> tuple[int, bytes]:
        if self._numbers:
            values.transport_sequence_number = self._numbering.take(self._video)
        return super().set(values)


TransportFeedbackCallback = Callable[[twcc.Feedback], None]


#: ``pace(bytes, monotonic s)``: how long a video packet waits before it is sent (media/pacer.py).
Pace = Callable[[int, float], float]


def send_transport_cc(pc: RTCPeerConnection, on_sent: Callable[[int, float, int, bool], None],
                      on_feedback: TransportFeedbackCallback, pace: Optional[Pace] = None) -> int:
    """Number what our senders send on ``pc`` transport-wide and hand in the feedback on it.

    Call after :func:`negotiate_transport_cc` and before the senders start (they configure
    their map from the negotiated extensions when they do). ``on_sent(seq, monotonic s,
    bytes, video)`` for each RTP packet sent; ``on_feedback`` for each RTPFB FMT=15 packet
    the peer sends. ``pace``: video packets (RTX too) wait as long as it says before they
    are sent and their send time is taken; only where transport-cc is negotiated, since the
    abs-send-time aiortc wrote into the packet would read the wait as the link's queue to a
    receiver-side estimator. Returns how many senders number their packets.
    """
    numbering: Optional[_TransportNumbering] = None
    count = 0
    # Retransmissions are sent from the transport's receive loop (aiortc awaits them while
    # it handles the NACK): they must not wait there, so they are told apart by SSRC.
    rtx: set[int] = set()
    for transceiver in pc.getTransceivers():
        sender = transceiver.sender
        if getattr(sender, "track", None) is None:
            continue
        if not hasattr(sender, _SENDER_MAP_ATTR):
            raise SeamMissing(f"RTCRtpSender has no {_SENDER_MAP_ATTR}")
        dtls = sender.transport
        if numbering is None:
            numbering = _TransportNumbering(on_sent)
            _wrap_transport(dtls, numbering, on_feedback, pace, rtx)
        setattr(sender, _SENDER_MAP_ATTR, _NumberingExtensionsMap(numbering, transceiver.kind == "video"))
        rtx.add(getattr(sender, _SENDER_RTX_SSRC_ATTR))
        count += 1
    return count


def _wrap_transport(dtls: RTCDtlsTransport, numbering: _TransportNumbering,
                    on_feedback: TransportFeedbackCallback, pace: Optional[Pace], rtx: set[int]) -> None:
    send_rtp = dtls._send_rtp
    handle_rtcp = dtls._handle_rtcp_data

    async def numbered_send_rtp(data: bytes) -> None:
        pending = numbering.pending
        if pending is not None and not is_rtcp(data):
            # Taken before any wait: another sender may number its next packet meanwhile.
            numbering.pending = None
            if pending[1] and pace is not None:
                wait = pace(len(data), time.monotonic())  # a retransmission counts, and goes now
                if wait > 0 and int.from_bytes(data[8:12], "big") not in rtx:
                    await asyncio.sleep(wait)
            numbering.sent(pending, len(data))
        await send_rtp(data)

    async def read_feedback(data: bytes) -> None:
        pos = 0
        while pos + 4 <= len(data):
            length = (int.from_bytes(data[pos + 2 : pos + 4], "big") + 1) * 4
            if data[pos + 1] == twcc.RTCP_RTPFB and data[pos] & 0x1F == twcc.FMT_TRANSPORT_CC:
                try:
                    on_feedback(twcc.parse_feedback(data[pos : pos + length]))
                except ValueError:
                    pass  # malformed: aiortc drops what it cannot parse too
                except Exception:
                    logger.exception("transport feedback callback failed")
            pos += length
        await handle_rtcp(data)

    dtls._send_rtp = numbered_send_rtp  # type: ignore[method-assign]
    dtls._handle_rtcp_data = read_feedback  # type: ignore[method-assign]


PacketCallback = Callable[[RtpPacket], None]


def observe_rtp(receiver: RTCRtpReceiver, on_packet: PacketCallback, transport_cc_replaces_remb: bool = True) -> None:
    """Call ``on_packet`` with every RTP packet routed to ``receiver`` (RTX and padding too).

    With ``transport_cc_replaces_remb``, a packet that carries a transport-wide sequence
    number is not fed to aiortc's REMB estimator (its abs-send-time is hidden), as
    libwebrtc's receivers do: the sender then runs on transport feedback alone, and REMB
    stays the fallback for senders without transport-cc.
    """
    original = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        try:
            on_packet(packet)
        except Exception:
            logger.exception("RTP observer failed")
        if transport_cc_replaces_remb and packet.extensions.transport_sequence_number is not None:
            packet.extensions.abs_send_time = None
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


def rtx_ssrcs(receiver: RTCRtpReceiver) -> set[int]:
    """The publisher's retransmission SSRCs known to ``receiver``."""
    return set(getattr(receiver, _RTX_ATTR, {}))


def is_rtx_ssrc(receiver: RTCRtpReceiver, ssrc: int) -> bool:
    """``ssrc`` is one of the publisher's retransmission SSRCs (per packet: no copy)."""
    return ssrc in getattr(receiver, _RTX_ATTR, ())


def rtcp_ssrc(receiver: RTCRtpReceiver) -> Optional[int]:
    """The SSRC the receiver signs its RTCP with (None until the transceiver has one)."""
    value = getattr(receiver, _RTCP_SSRC_ATTR, None)
    return int(value) if value is not None else None


async def send_rtcp(receiver: RTCRtpReceiver, data: bytes) -> None:
    """Send a raw RTCP packet on the receiver's transport (raises ConnectionError if down)."""
    await receiver.transport._send_rtp(data)


RECEIVE_BUFFER_BYTES = 2 * 1024 * 1024
#: SRTP datagrams held behind a directly handled one that waits, at most (then the oldest go).
HELD_DATAGRAMS = 512
_SO_TIMESTAMPNS = 35  # Linux: SOL_SOCKET option, and the SCM_TIMESTAMPNS control message type
_TIMESPEC = struct.Struct("qq")


class _ArrivalClock:
    """Arrival time of the datagram the transport is processing now, and the direct path.

    aioice's socket callback (``Connection.data_received``) queues each datagram; the DTLS
    task takes them in order (``Connection.recvfrom``) and handles each one, RTP included,
    before it takes the next. The arrival time is the kernel's receive timestamp
    (SO_TIMESTAMPNS, read with ``recvmsg`` by :meth:`use_kernel_timestamps`) or else the
    time of the socket callback: either way the delays of our own busy event loop, or of a
    process waiting for a core, stay out of what the sender's delay-based estimator reads.

    Once this reader owns the socket, an SRTP or SRTCP datagram is handled on the socket
    callback itself, as the DTLS task would handle it (``RTCDtlsTransport._recv_next``'s
    SRTP branch: count, unprotect, ``_handle_rtp_data`` / ``_handle_rtcp_data``), instead of
    going through aioice's queue and a task wake-up: one asyncio hop per datagram, ~8 % of a
    loaded server's time. Order is kept: a datagram goes the queued way while the queue
    holds any or the DTLS task is in the middle of one, and while a directly handled one
    waits (a paced retransmission sleeps) later ones are held behind it. STUN, DTLS and
    anything before the SRTP keys exist take aioice's path as before.
    """

    def __init__(self, connection: Any, dtls: Optional[RTCDtlsTransport] = None) -> None:
        self._times: collections.deque[float] = collections.deque()
        self.current: Optional[float] = None
        self._kernel: Optional[float] = None  # stamp of the datagram being read right now
        self._sockets: set[int] = set()
        self.kernel_stamps = 0
        self._dtls = dtls
        #: The DTLS task has taken a datagram and not come back for the next one.
        self._task_busy = False
        #: A directly handled datagram's coroutine waits; later ones wait in ``_held``.
        self._waiting = False
        self._held: collections.deque[tuple[bytes, Optional[float]]] = collections.deque()
        self.direct = 0  # datagrams handled on the socket callback
        self.failures = 0  # of them, handlers that raised
        received = connection.data_received
        recvfrom = connection.recvfrom

        def data_received(data: bytes, component: int) -> None:
            stamp, self._kernel = self._kernel, None
            self._times.append(stamp if stamp is not None else time.monotonic())
            received(data, component)

        async def timed_recvfrom() -> tuple[bytes, int]:
            self._task_busy = False
            result = await recvfrom()
            self._task_busy = True
            self.current = self._times.popleft() if self._times else None
            return result  # type: ignore[no-any-return]

        connection.data_received = data_received
        connection.recvfrom = timed_recvfrom
        self._connection = connection

    def _take_direct(self, data: bytes, stamp: Optional[float]) -> bool:
        """Handle ``data`` (an SRTP/SRTCP datagram) here if that keeps the order; else False."""
        dtls = self._dtls
        if dtls is None or dtls._rx_srtp is None or dtls._state is not _DTLS_CONNECTED:
            return False
        if self._waiting:
            if len(self._held) >= HELD_DATAGRAMS:
                self._held.popleft()  # a handler that never resumes: bounded, like a socket buffer
            self._held.append((data, stamp))
            return True
        if self._task_busy or not self._connection._queue.empty():
            return False
        self._handle(dtls, data, stamp)
        return True

    def _handle(self, dtls: RTCDtlsTransport, data: bytes, stamp: Optional[float]) -> None:
        self.direct += 1
        self.current = stamp if stamp is not None else time.monotonic()
        setattr(dtls, _DTLS_RX_BYTES, getattr(dtls, _DTLS_RX_BYTES) + len(data))
        setattr(dtls, _DTLS_RX_PACKETS, getattr(dtls, _DTLS_RX_PACKETS) + 1)
        srtp = dtls._rx_srtp
        try:
            if is_rtcp(data):
                coro = dtls._handle_rtcp_data(srtp.unprotect_rtcp(data))
            else:
                coro = dtls._handle_rtp_data(srtp.unprotect(data), arrival_time_ms=_current_ms())
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)
            return
        if not self._step(coro):
            self._waiting = True

    def _step(self, coro: Any) -> bool:
        """Run ``coro`` until it finishes (True) or waits (False: it resumes by itself)."""
        try:
            waiting = coro.send(None)
        except StopIteration:
            return True
        except (ConnectionError, asyncio.CancelledError):
            return True  # the transport is closing: the DTLS task would stop here too
        except Exception:
            # aiortc's DTLS task would end here and the peer connection with it; one
            # participant's bad packet must not, and must not flood the log either.
            self.failures += 1
            if self.failures == 1 or self.failures % 1000 == 0:
                logger.exception("handling an SRTP datagram failed (%d so far on this connection)", self.failures)
            return True
        if waiting is None:  # a bare yield (asyncio.sleep(0))
            asyncio.get_running_loop().call_soon(self._resume, coro)
        else:  # a future, as a Task would wait for it
            waiting._asyncio_future_blocking = False
            waiting.add_done_callback(lambda _future: self._resume(coro))
        return False

    def _resume(self, coro: Any) -> None:
        if not self._step(coro):
            return
        self._waiting = False
        dtls = self._dtls
        assert dtls is not None  # only a directly handled datagram waits
        while self._held and not self._waiting:
            data, stamp = self._held.popleft()
            self._handle(dtls, data, stamp)

    def now(self) -> float:
        return self.current if self.current is not None else time.monotonic()

    def use_kernel_timestamps(self) -> int:
        """Read the connection's UDP sockets with recvmsg and kernel timestamps.

        asyncio's datagram transport reads with ``recvfrom`` (no ancillary data), so the
        socket's reader callback is replaced by one that does what it did (hand the
        datagram to the protocol) plus keeps the timestamp. Returns how many sockets now
        do; 0 where the loop or the transport is not the stock selector kind.
        """
        loop = asyncio.get_running_loop()
        if not hasattr(loop, "_add_reader") or not hasattr(loop, "_remove_reader"):
            return 0
        done = 0
        for protocol in list(getattr(self._connection, "_protocols", [])):
            transport = getattr(protocol, "transport", None)
            raw = getattr(transport, "_sock", None)
            if raw is None or raw.type != socket.SOCK_DGRAM or raw.fileno() in self._sockets:
                continue
            try:
                raw.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            except OSError:
                continue
            with contextlib.suppress(OSError):
                # A keyframe at 2.5 Mb/s while this process waits for a core overflowed the
                # default 208 KiB buffer (kernel RcvbufErrors); capped by net.core.rmem_max.
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            fd = raw.fileno()
            loop._remove_reader(fd)
            loop._add_reader(fd, self._reader(transport, raw, protocol))
            self._sockets.add(fd)
            done += 1
        return done

    def _reader(self, transport: Any, raw: socket.socket, protocol: Any) -> Callable[[], None]:
        size = getattr(transport, "max_size", 256 * 1024)
        space = socket.CMSG_SPACE(_TIMESPEC.size)

        def read_ready() -> None:
            if transport.is_closing():
                return
            try:
                data, ancillary, _flags, addr = raw.recvmsg(size, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            stamp = None
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack(value[: _TIMESPEC.size])
                    # realtime -> monotonic; the offset moves only if the clock is stepped
                    stamp = sec + nsec / 1e9 - (time.time() - time.monotonic())
            if stamp is not None:
                self.kernel_stamps += 1
            if data and 127 < data[0] < 192 and self._take_direct(data, stamp):
                return
            self._kernel = stamp
            try:
                protocol.datagram_received(data, addr)
            finally:
                self._kernel = None

        return read_ready


def arrival_clock(receiver: RTCRtpReceiver) -> Callable[[], float]:
    """A clock giving the socket arrival time (monotonic s) of the packet being handled.

    Install before the transport connects (e.g. right after ``setRemoteDescription``);
    with BUNDLE every receiver of a peer connection shares the one clock.
    """
    ice = receiver.transport.transport
    connection = getattr(ice, "_connection", None)
    if connection is None or not callable(getattr(connection, "recvfrom", None)):
        raise SeamMissing("RTCIceTransport has no aioice _connection with recvfrom()")
    clock = getattr(connection, "_takan_arrival_clock", None)
    if clock is None:
        clock = _ArrivalClock(connection, receiver.transport)
        connection._takan_arrival_clock = clock
    return clock.now


def _installed_clock(dtls: Any) -> Optional[_ArrivalClock]:
    """The arrival clock of a DTLS transport's ICE connection, if :func:`arrival_clock`
    installed one (with BUNDLE, a receiver's and a sender's transport are the same)."""
    connection = getattr(getattr(dtls, "transport", None), "_connection", None)
    return getattr(connection, "_takan_arrival_clock", None)


def use_kernel_timestamps(receiver: RTCRtpReceiver) -> int:
    """After ICE gathering: stamp arrivals in the kernel (see ``_ArrivalClock``)."""
    clock = _installed_clock(receiver.transport)
    return clock.use_kernel_timestamps() if clock is not None else 0


# ---- subscriber feedback ----------------------------------------------------------------------

#: (remb_bps, fraction_lost, the report's counts and round trip)
FeedbackCallback = Callable[[Optional[int], Optional[float], Optional[ReceiverReport]], None]


def report_rtt(lsr: int, dlsr: int, sent_lsr: Optional[int], sent_at: Optional[float], now: float) -> Optional[float]:
    """RFC 3550 6.4.1: the round trip from a report block naming our latest sender report.

    ``sent_lsr``/``sent_at``: the middle 32 bits of that report's NTP timestamp and the
    wall-clock time it was sent. aiortc stamps a sender report with the NTP time of the
    last RTP packet sent, not of the report, so the arithmetic on NTP timestamps alone
    would count a pause in the stream as queueing; the report's own send time is exact.
    None when the report names an older sender report (or none).
    """
    if lsr == 0 or sent_lsr != lsr or sent_at is None:
        return None
    rtt = now - sent_at - dlsr / 65536
    return rtt if 0 <= rtt < 60 else None


def _arrived_at(sender: RTCRtpSender) -> float:
    """Wall-clock arrival of the packet being handled on ``sender``'s transport: a loaded
    event loop that reads a report late must not count its own lag as the link's queue."""
    clock = _installed_clock(sender.transport)
    if clock is None:
        return time.time()
    return time.time() - (time.monotonic() - clock.now())


def on_subscriber_feedback(sender: RTCRtpSender, callback: FeedbackCallback) -> None:
    """Call ``callback(remb_bps, fraction_lost, counts)`` for the subscriber's reports on ``sender``.

    ``remb_bps``: the subscriber's receive-side estimate (REMB naming our SSRC), else None;
    ``fraction_lost`` (0..1) from its receiver reports, else None, with ``counts``: the
    report's cumulative number of packets lost, extended highest sequence number and the
    round trip it measures. aiortc itself only hands REMB to an encoder, which the
    pass-through path does not have, and keeps an RTT only of its latest sender report.
    """
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        try:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
                if sender._ssrc in ssrcs:
                    callback(int(bitrate), None, None)
            elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
                for report in packet.reports:
                    if report.ssrc == sender._ssrc:
                        sent_at, wall = getattr(sender, _SENDER_LSR_TIME_ATTR, None), _arrived_at(sender)
                        rtt = report_rtt(report.lsr, report.dlsr, getattr(sender, _SENDER_LSR_ATTR, None), sent_at, wall)
                        age = wall - sent_at if rtt is not None and sent_at is not None else 0.0
                        callback(None, report.fraction_lost / 256,
                                 ReceiverReport(report.packets_lost, report.highest_sequence, rtt, age))
        except ValueError:
            pass  # a malformed REMB: aiortc ignores it too
        except Exception:
            logger.exception("subscriber feedback callback failed")
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


#: A packet is retransmitted at most once per this long, or per 1.2 round trips if longer.
#: A retransmission lost too (5 % random loss: one in twenty) is asked for again one round
#: trip later; 100 ms here held that repair back into a visible freeze, and with the
#: subscriber's queue kept short by transport feedback the round trip is short too.
RETRANSMIT_MIN_INTERVAL_S = 0.04
#: On a capped link, retransmissions may take this share of the cap (a token bucket a
#: second deep); a packet is counted at this size.
RETRANSMIT_SHARE = 0.25
RETRANSMIT_PACKET_BITS = 1000 * 8


def paced_retransmission(sender: RTCRtpSender, rtt: Callable[[], Optional[float]],
                         cap_bps: Callable[[], Optional[float]]) -> None:
    """Retransmit a NACKed packet at most once per round trip, and on a capped link within
    a budget, as libwebrtc's sender does.

    The receiver asks again for a packet that has not come within its own idea of the round
    trip, and a queue on a weak link holds a retransmission far longer: aiortc resends on
    every NACK, so one lost packet became several copies. On an overfull link most losses
    are the queue's own drops, and resending them all keeps it overfull (measured: 130-185
    kb/s of retransmissions on a 400 kbit/s link for seconds after its onset). ``rtt()`` is
    the round trip the subscriber's reports measure, ``cap_bps()`` the cap to budget on
    (None: no budget; unknown or uncapped, or a link the caller reads as having room).
    """
    original = sender._retransmit
    last: dict[int, float] = {}
    bucket = [0.0, time.monotonic()]  # tokens (bits), when last filled

    async def retransmit(sequence_number: int) -> None:
        now = time.monotonic()
        interval = max(RETRANSMIT_MIN_INTERVAL_S, 1.2 * (rtt() or 0.0))
        if now - last.get(sequence_number, -math.inf) < interval:
            return
        cap = cap_bps()
        if cap is not None:
            rate = RETRANSMIT_SHARE * cap
            bucket[0] = min(rate, bucket[0] + rate * (now - bucket[1]))
            bucket[1] = now
            if bucket[0] < RETRANSMIT_PACKET_BITS:
                return
            bucket[0] -= RETRANSMIT_PACKET_BITS
        if len(last) > 4096:  # sequence numbers wrap: forget the long past
            for seq in [seq for seq, at in last.items() if now - at > 5.0]:
                del last[seq]
            if len(last) > 4096:
                last.clear()
        last[sequence_number] = now
        await original(sequence_number)

    sender._retransmit = retransmit  # type: ignore[method-assign]


def directly_handled(receiver: RTCRtpReceiver) -> int:
    """How many SRTP/SRTCP datagrams of the receiver's transport skipped aioice's queue."""
    clock = _installed_clock(receiver.transport)
    return int(clock.direct) if clock is not None else 0


def kernel_stamped(receiver: RTCRtpReceiver) -> int:
    """How many datagrams of the receiver's transport got a kernel arrival timestamp."""
    clock = _installed_clock(receiver.transport)
    return int(clock.kernel_stamps) if clock is not None else 0


# ---- sender reports in the publisher's clock (media/capture_clock.py) -----------------------

_SENDER_SSRC_ATTR = "_ssrc"
_RTP_MASK = 0xFFFFFFFF
#: ``(pts, ntp)``: the pts of the last frame a forwarded track handed its sender and the
#: publisher's NTP time of its capture (None: not known yet).
CaptureReference = Callable[[], Optional[tuple[int, int]]]


def on_sender_report(receiver: RTCRtpReceiver, callback: Callable[[int, int], None]) -> None:
    """Call ``callback(ntp, pts)`` for each sender report of the publisher's media stream on
    ``receiver``: its NTP timestamp (64-bit) and its RTP time as the pts the tap gives
    frames (:func:`frame_pts`). Retransmission streams' reports are skipped; so is one
    before the first frame (no pts yet)."""
    original = receiver._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket) and not is_rtx_ssrc(receiver, packet.ssrc):
            pts = frame_pts(receiver, packet.sender_info.rtp_timestamp)
            if pts is not None:
                try:
                    callback(packet.sender_info.ntp_timestamp, pts)
                except Exception:
                    logger.exception("sender report callback failed")
        await original(packet)

    receiver._handle_rtcp_packet = handle  # type: ignore[method-assign]


def frame_pts(receiver: RTCRtpReceiver, rtp_timestamp: int) -> Optional[int]:
    """The pts the tap gives a frame of RTP time ``rtp_timestamp`` (aiortc's TimestampMapper
    counts from the first frame and unwraps): read, not advanced; None before a first frame."""
    mapper = getattr(receiver, _TIMESTAMPS_ATTR, None)
    origin, last = getattr(mapper, "_origin", None), getattr(mapper, "_last", None)
    if origin is None or last is None:
        return None
    delta = (rtp_timestamp - last) & _RTP_MASK
    if delta >= 1 << 31:
        delta -= 1 << 32
    return int(last - origin + delta)


def report_capture_time(sender: RTCRtpSender, reference: CaptureReference) -> None:
    """Make ``sender``'s reports pair RTP time with the publisher's capture time.

    aiortc's sender report pairs the last packet's RTP time with the moment we sent it.
    Here it pairs the last frame's RTP time with ``reference()``'s NTP time instead; while
    that is not known (the publisher's first report is up to seconds away: Chromium reports
    audio every 5 s), the report is left out, so that a subscriber never sees pairs from two
    clocks. The RTP time is the sender's: its random origin is learnt from the first packet
    it sends of each frame (``_next_encoded_frame`` returns a frame's pts; the last packet's
    RTP time, read when the next frame is asked for, is that pts plus the origin)."""
    next_frame = sender._next_encoded_frame
    send_rtcp = sender._send_rtcp
    state: dict[str, Optional[int]] = {"pts": None, "origin": None}

    async def next_encoded_frame(codec: Any) -> Any:
        pts = state["pts"]
        if pts is not None:  # that frame's packets have all been sent by now
            state["origin"] = (getattr(sender, _SENDER_RTP_TIMESTAMP_ATTR) - pts) & _RTP_MASK
        frame = await next_frame(codec)
        state["pts"] = frame.timestamp if frame is not None else None
        return frame

    sent: list[Optional[float]] = [None, None]  # LSR and wall time of the last report sent

    async def send_reports(packets: list[Any]) -> None:
        kept = []
        for packet in packets:
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == getattr(sender, _SENDER_SSRC_ATTR):
                known = reference()
                origin = state["origin"]
                if known is None or origin is None:
                    # aiortc noted this report as the latest sent: the subscriber's reports
                    # still name the one before, whose round trip then still counts
                    setattr(sender, _SENDER_LSR_ATTR, sent[0])
                    setattr(sender, _SENDER_LSR_TIME_ATTR, sent[1])
                    continue
                pts, ntp = known
                packet.sender_info.ntp_timestamp = ntp
                packet.sender_info.rtp_timestamp = (origin + pts) & _RTP_MASK
                # what the subscriber's report will echo as LSR (its round trip: on_subscriber_feedback)
                setattr(sender, _SENDER_LSR_ATTR, (ntp >> 16) & _RTP_MASK)
                sent[:] = [getattr(sender, _SENDER_LSR_ATTR), getattr(sender, _SENDER_LSR_TIME_ATTR)]
            kept.append(packet)
        if kept:
            await send_rtcp(kept)

    sender._next_encoded_frame = next_encoded_frame  # type: ignore[method-assign]
    sender._send_rtcp = send_reports  # type: ignore[method-assign]
