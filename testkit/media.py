"""Real aiortc peers for tests and benchmarks: publish pre-encoded VP8, count what arrives.

Publishing packets that were encoded once up front (instead of encoding live) keeps the
test process's own CPU out of the measurement and lets a test assert that nothing in the
whole process decodes or encodes while frames are relayed.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any, Optional

import av
from PIL import Image, ImageDraw
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import tap

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
OPUS_FRAME_SAMPLES = 960  # 20 ms at 48 kHz, what browsers send


def encode_vp8(
    width: int,
    height: int,
    frames: int = 40,
    fps: int = 20,
    bitrate: int = 600_000,
    detail: float = 0.0,
) -> list[bytes]:
    """Encode a moving test pattern once; the first frame is a keyframe.

    The plain pattern is so easy to code that libvpx spends far less than ``bitrate``
    (about 230 kb/s at 640x480 for 600 kb/s asked). ``detail`` > 0 (0.15 is a good value)
    blends fresh sensor-like noise of that strength into every frame, so that the stream
    comes out near ``bitrate`` like a real camera's, and caps keyframes at 9x an average
    frame (roughly what Chrome allows) instead of one huge first frame.
    """
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, fps)
    codec.gop_size = frames  # one keyframe per loop
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    if detail > 0:
        codec.options = {**codec.options, "max-intra-rate": "900"}
    out: list[bytes] = []
    background = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    for i in range(frames):
        img = background.copy()
        if detail > 0:
            noise = Image.effect_noise((width, height), 64).convert("RGB")
            img = Image.blend(img, noise, detail)
        draw = ImageDraw.Draw(img)
        x = (i * 16) % width
        draw.rectangle([x, height // 4, x + width // 6, height // 2], fill=(200, 40, 40))
        draw.ellipse([width // 2, (i * 8) % height, width // 2 + 60, (i * 8) % height + 60], fill=(40, 40, 220))
        frame = av.VideoFrame.from_image(img).reformat(format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out


def encode_opus(seconds: float = 1.0, bitrate: int = 32_000) -> list[bytes]:
    """Encode a warbling tone once into 20 ms Opus packets (a voice-like 32 kb/s by default).

    A pure tone codes into tiny packets; the slow frequency sweep keeps them near what a
    phone's voice call sends, so the relay handles realistic packet sizes.
    """
    import math

    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = bitrate
    codec.time_base = AUDIO_TIME_BASE
    out: list[bytes] = []
    total = int(seconds * 48000) // OPUS_FRAME_SAMPLES
    phase = 0.0
    for i in range(total):
        samples = bytearray()
        for k in range(OPUS_FRAME_SAMPLES):
            t = (i * OPUS_FRAME_SAMPLES + k) / 48000
            phase += 2 * math.pi * (300 + 200 * math.sin(2 * math.pi * 0.7 * t)) / 48000
            samples += int(8000 * math.sin(phase)).to_bytes(2, "little", signed=True)
        frame = av.AudioFrame(format="s16", layout="mono", samples=OPUS_FRAME_SAMPLES)
        frame.planes[0].update(bytes(samples))
        frame.sample_rate = 48000
        frame.pts = i * OPUS_FRAME_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out


class PacketAudioTrack(MediaStreamTrack):
    """Sends the same pre-encoded Opus packets in a loop, one every 20 ms."""

    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        super().__init__()
        self._packets = packets
        self._index = 0
        self._start: Optional[float] = None
        self.halted = False

    @property
    def frames_sent(self) -> int:
        """Packets handed to the sender so far."""
        return self._index

    def halt(self) -> None:
        """Send nothing more (a benchmark lets the pipeline drain, then counts)."""
        self.halted = True

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        if self.halted:
            await asyncio.get_running_loop().create_future()  # until the sender is stopped
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._index * OPUS_FRAME_SAMPLES / 48000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._packets[self._index % len(self._packets)])
        packet.pts = self._index * OPUS_FRAME_SAMPLES
        packet.time_base = AUDIO_TIME_BASE
        self._index += 1
        return packet


class PacketVideoTrack(MediaStreamTrack):
    """Sends the same pre-encoded VP8 frames in a loop at ``fps``.

    With ``restart_on_keyframe_request`` the track honours keyframe requests the way a
    browser's encoder does: :meth:`request_keyframe` makes the next frame sent the loop's
    first frame (its keyframe), while the timing and timestamps carry on. ClientPeer wires
    such a track to its sender's PLI/FIR (``media.tap.on_keyframe_request``); with the
    default (False) requests are only counted and the loop's own keyframe is the next one.
    """

    kind = "video"

    def __init__(self, frames: list[bytes], fps: int = 20, restart_on_keyframe_request: bool = False) -> None:
        super().__init__()
        self._frames = frames
        self._fps = fps
        self._index = 0
        self._start: Optional[float] = None
        self.restart_on_keyframe_request = restart_on_keyframe_request
        self.keyframe_requests = 0
        self._loop_origin = 0
        self._restart_pending = False
        self.halted = False

    def halt(self) -> None:
        """Send nothing more (a benchmark lets the pipeline drain, then counts)."""
        self.halted = True

    @property
    def frames_sent(self) -> int:
        """Frames handed to the sender so far."""
        return self._index

    def request_keyframe(self) -> None:
        """A PLI/FIR from the receiver: restart the loop on its keyframe if opted in."""
        self.keyframe_requests += 1
        if self.restart_on_keyframe_request:
            self._restart_pending = True

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        if self.halted:
            await asyncio.get_running_loop().create_future()  # until the sender is stopped
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index / self._fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._restart_pending:
            self._restart_pending = False
            self._loop_origin = self._index
        data = self._frames[(self._index - self._loop_origin) % len(self._frames)]
        packet = av.Packet(data)
        packet.pts = self._index * (90000 // self._fps)
        packet.time_base = VIDEO_TIME_BASE
        self._index += 1
        return packet


class CountingSink:
    """Counts the encoded frames a client receives, without decoding them."""

    def __init__(self) -> None:
        self.frames = 0
        self.keyframes = 0
        self.first_frame_at: Optional[float] = None
        self.sizes: list[int] = []
        #: With ``step`` (the publisher's timestamp increment per frame: 4500 for 20 fps
        #: video, 960 for 20 ms Opus), ``skipped`` counts the frames missing between two
        #: received ones: loss, whatever the delay.
        self.step: Optional[int] = None
        self.skipped = 0
        self._last_pts: Optional[int] = None

    def __call__(self, packet: av.Packet) -> None:
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        self.frames += 1
        if self.step is not None and packet.pts is not None:
            # RTP timestamps are 32-bit and aiortc's mapper reads any step back as a wrap
            # (+2**32): compare modulo 2**32, and a step back is a reordered frame.
            delta = (packet.pts - self._last_pts) & 0xFFFFFFFF if self._last_pts is not None else 0
            if delta < 0x80000000:
                self.skipped += max(0, round(delta / self.step) - 1)
                self._last_pts = packet.pts
        self.sizes.append(packet.size)
        if packet.is_keyframe:
            self.keyframes += 1


_TRANSPORT_CC_ID = 5  # aiortc's own extensions use ids 1-3


def enable_transport_cc() -> None:
    """Make this process's aiortc senders behave like Chromium's: offer transport-wide
    congestion control and number every RTP packet of a peer connection's transport.

    aiortc never writes the transport-wide sequence number, so a server receiving only
    aiortc clients would run aiortc's REMB estimator instead of its transport-cc path
    (media/twcc.py), which is what browsers exercise. Process-wide (it edits aiortc's
    capability lists): for client processes only, never one that runs a server.
    """
    import itertools

    from aiortc import codecs as aiortc_codecs
    from aiortc import rtp
    from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpHeaderExtensionParameters

    from media import twcc

    global _transport_cc
    if _transport_cc:
        return
    _transport_cc = True
    for kind in ("audio", "video"):
        aiortc_codecs.HEADER_EXTENSIONS[kind].append(RTCRtpHeaderExtensionParameters(id=_TRANSPORT_CC_ID, uri=twcc.URI))
        for codec in aiortc_codecs.CODECS[kind]:
            if codec.mimeType.lower() in ("video/vp8", "audio/opus"):
                codec.rtcpFeedback.append(RTCRtcpFeedback(type="transport-cc"))
    serialize = rtp.RtpPacket.serialize

    def numbered(self: rtp.RtpPacket, extensions_map: rtp.HeaderExtensionsMap = rtp.HeaderExtensionsMap()) -> bytes:
        counter = getattr(extensions_map, "_transport_cc_counter", None)
        if counter is not None:
            self.extensions.transport_sequence_number = next(counter) & 0xFFFF
        return serialize(self, extensions_map)

    rtp.RtpPacket.serialize = numbered  # type: ignore[method-assign]
    _counter_factory[0] = itertools.count


_transport_cc = False
_counter_factory: list[Any] = [None]


class ClientPeer:
    """A browser stand-in made of a real aiortc peer connection."""

    def __init__(
        self, video: Optional[MediaStreamTrack] = None, receive: bool = True, audio: Optional[MediaStreamTrack] = None
    ) -> None:
        self.pc = RTCPeerConnection()
        self.video_track = video
        self.audio_track = audio
        self.video_sink = CountingSink()
        self.audio_sink = CountingSink()
        if video is not None:
            transceiver = self.pc.addTransceiver(video, direction="sendrecv" if receive else "sendonly")
            if getattr(video, "restart_on_keyframe_request", False):
                tap.on_keyframe_request(transceiver.sender, video.request_keyframe)  # type: ignore[attr-defined]
        else:
            self.pc.addTransceiver("video", direction="recvonly")
        if audio is not None:
            self.pc.addTransceiver(audio, direction="sendrecv" if receive else "sendonly")
        else:
            self.pc.addTransceiver("audio", direction="recvonly" if receive else "inactive")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            for t in self.pc.getTransceivers():
                if t.receiver.track is track:
                    sink = self.video_sink if track.kind == "video" else self.audio_sink
                    tap.tap_receiver(t.receiver, sink)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._enlarge_receive_buffers()
        return self.pc.localDescription.sdp

    def _enlarge_receive_buffers(self) -> None:
        """2 MiB socket receive buffers, as the server's (media/tap.py): a stand-in whose
        process waits for a core on a shared machine must not drop a keyframe's burst
        in its own socket and make the server look lossy."""
        import socket

        for transceiver in self.pc.getTransceivers():
            connection = getattr(transceiver.receiver.transport.transport, "_connection", None)
            for protocol in getattr(connection, "_protocols", []):
                sock = protocol.transport.get_extra_info("socket") if protocol.transport is not None else None
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, tap.RECEIVE_BUFFER_BYTES)
                    except OSError:
                        pass

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        if _transport_cc:
            # one sequence for every sender of the (bundled) transport, as libwebrtc numbers them
            counter = _counter_factory[0](1)
            for transceiver in self.pc.getTransceivers():
                extensions = getattr(transceiver.sender, "_RTCRtpSender__rtp_header_extensions_map")
                extensions._transport_cc_counter = counter

    async def close(self) -> None:
        await self.pc.close()


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()
