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

These names are private. aiortc is pinned in pyproject.toml and ``check_aiortc_seams``
fails loudly at start-up (and in tests) if an upgrade moves them.
"""

from __future__ import annotations

import collections
import fractions
import logging
import threading
import time
from typing import Any, Callable, Optional

import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from aiortc.sdp import SessionDescription

from . import twcc

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)

_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_STARTED_ATTR = "_RTCRtpReceiver__started"
_RTX_ATTR = "_RTCRtpReceiver__rtx_ssrc"
_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_RTCP_SSRC_ATTR = "_RTCRtpReceiver__rtcp_ssrc"

FrameCallback = Callable[[av.Packet], None]


class SeamMissing(RuntimeError):
    """aiortc no longer has a private name this module relies on."""


def check_aiortc_seams() -> None:
    """Fail loudly if the installed aiortc moved one of the seams we tap."""
    missing = []
    for attr in (_QUEUE_ATTR, _RTX_ATTR, _JITTER_ATTR, _RTCP_SSRC_ATTR):
        if attr not in RTCRtpReceiver.__init__.__code__.co_names:
            missing.append(attr)
    for cls, name in (
        (RTCRtpReceiver, "_send_rtcp_pli"),
        (RTCRtpReceiver, "_handle_rtp_packet"),
        (RTCRtpReceiver, "getSynchronizationSources"),
        (RTCRtpSender, "_send_keyframe"),
        (RTCRtpSender, "_next_encoded_frame"),
        (RTCRtpSender, "_handle_rtcp_packet"),
        (RTCDtlsTransport, "_send_rtp"),
    ):
        if not callable(getattr(cls, name, None)):
            missing.append(f"{cls.__name__}.{name}")
    for attr in ("_headerExtensions", "_codecs"):
        if attr not in RTCRtpTransceiver.__init__.__code__.co_names:
            missing.append(f"RTCRtpTransceiver.{attr}")
    # aiortc must parse the transport-wide sequence number once the URI is negotiated.
    probe = HeaderExtensionsMap()
    probe.configure(type("P", (), {"headerExtensions": [RTCRtpHeaderExtensionParameters(id=5, uri=twcc.URI)]})())  # type: ignore[arg-type]
    if probe.get(0xBEDE, bytes([0x51, 0x12, 0x34, 0x00])).transport_sequence_number != 0x1234:
        missing.append("transport-wide sequence number parsing (aiortc.rtp.HeaderExtensionsMap)")
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


def rtcp_ssrc(receiver: RTCRtpReceiver) -> Optional[int]:
    """The SSRC the receiver signs its RTCP with (None until the transceiver has one)."""
    value = getattr(receiver, _RTCP_SSRC_ATTR, None)
    return int(value) if value is not None else None


async def send_rtcp(receiver: RTCRtpReceiver, data: bytes) -> None:
    """Send a raw RTCP packet on the receiver's transport (raises ConnectionError if down)."""
    await receiver.transport._send_rtp(data)


class _ArrivalClock:
    """Arrival time of the datagram the transport is processing now.

    aioice's socket callback (``Connection.data_received``) queues each datagram; the DTLS
    task takes them in order (``Connection.recvfrom``) and handles each one, RTP included,
    before it takes the next. Stamping at the callback keeps the queueing delay of our own
    busy event loop out of the arrival times that the sender's delay-based estimator reads.
    """

    def __init__(self, connection: Any) -> None:
        self._times: collections.deque[float] = collections.deque()
        self.current: Optional[float] = None
        received = connection.data_received
        recvfrom = connection.recvfrom

        def data_received(data: bytes, component: int) -> None:
            self._times.append(time.monotonic())
            received(data, component)

        async def timed_recvfrom() -> tuple[bytes, int]:
            result = await recvfrom()
            self.current = self._times.popleft() if self._times else None
            return result  # type: ignore[no-any-return]

        connection.data_received = data_received
        connection.recvfrom = timed_recvfrom

    def now(self) -> float:
        return self.current if self.current is not None else time.monotonic()


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
        clock = _ArrivalClock(connection)
        connection._takan_arrival_clock = clock
    return clock.now  # type: ignore[no-any-return]
