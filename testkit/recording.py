"""Helpers for recorder tests: synthetic encoded media, fakes at the edges, ffprobe/ffmpeg."""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import struct
import subprocess
from typing import Any, Optional

import av
from aiortc import RTCPeerConnection

from media.peer import ServerPeer
from media.relay import MediaRoom
from recorder.segments import Segment
from testkit.media import ClientPeer, PacketVideoTrack

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
FFPROBE = "/usr/bin/ffprobe"
FFMPEG = "/usr/bin/ffmpeg"


# ---- synthetic encoded media ------------------------------------------------------------


def vp8_packets(
    frames: list[bytes], count: int, fps: int = 20, first_ts: int = 0, first_index: int = 0
) -> list[av.Packet]:
    """``count`` packets cycling through ``frames``, timestamps in the 90 kHz RTP clock
    (wrapping at 2**32 like RTP), keyframe flag from the VP8 payload header (as the tap sets it)."""
    step = 90000 // fps
    out = []
    for i in range(count):
        data = frames[(first_index + i) % len(frames)]
        packet = av.Packet(data)
        packet.pts = (first_ts + i * step) % (1 << 32)
        packet.dts = packet.pts
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = not data[0] & 0x01
        out.append(packet)
    return out


def encode_opus(seconds: float, first_ts: int = 0) -> list[av.Packet]:
    """A 400 Hz tone encoded with libopus (20 ms packets), timestamps in the 48 kHz clock."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.bit_rate = 64000
    # 400 Hz has a period of 120 samples: every 20 ms frame is the same
    tone = [int(8000 * math.sin(2 * math.pi * 400 * n / 48000)) for n in range(960)]
    pcm = struct.pack("<1920h", *[s for s in tone for _ in (0, 1)])
    encoded: list[bytes] = []
    for i in range(round(seconds * 50)):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(pcm)
        frame.sample_rate = 48000
        frame.pts = i * 960
        encoded += [bytes(p) for p in encoder.encode(frame)]
    out = []
    for i, data in enumerate(encoded):
        packet = av.Packet(data)
        packet.pts = (first_ts + i * 960) % (1 << 32)
        packet.dts = packet.pts
        packet.time_base = AUDIO_TIME_BASE
        packet.is_keyframe = True
        out.append(packet)
    return out


# ---- fakes at the edges ------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that tests move by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSource:
    """A media Source that counts keyframe requests."""

    def __init__(self, kind: str = "video") -> None:
        self.kind = kind
        self.keyframe_requests = 0

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    def capture_ntp(self, pts: int) -> Optional[int]:
        return None


class Collected:
    """An ``on_segment`` callback that keeps what it is given."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.segments: list[Segment] = []
        self.delay_s = delay_s

    async def __call__(self, segment: Segment) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.segments.append(segment)

    def of(self, track: str) -> list[Segment]:
        return [s for s in self.segments if s.track == track]


# ---- real peers --------------------------------------------------------------------------

def publisher(frames: list[bytes], fps: int = 20) -> tuple[ClientPeer, PacketVideoTrack]:
    """A client peer publishing ``frames`` in a loop; a PLI/FIR restarts the loop on its keyframe."""
    track = PacketVideoTrack(frames, fps=fps, restart_on_keyframe_request=True)
    return ClientPeer(video=track), track


async def connect(room: MediaRoom, client: ClientPeer, peer_id: str, role: str, source: Optional[str]) -> ServerPeer:
    server = ServerPeer(peer_id, role, room, RTCPeerConnection, publishes=role != "observer", source_role=source)
    await client.accept(await server.answer(await client.offer()))
    return server


# ---- checking files ----------------------------------------------------------------------


def probe(data: bytes) -> dict[str, Any]:
    """ffprobe's view of a file: format, streams and packets (raises if ffprobe complains)."""
    result = subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-show_packets", "-i", "pipe:0"],
        input=data, capture_output=True, check=True, timeout=30,
    )
    assert result.stderr == b"", result.stderr.decode()
    return json.loads(result.stdout)


def decode_errors(data: bytes) -> str:
    """What ``ffmpeg -v error -i seg.webm -f null -`` prints (empty when all decodes)."""
    result = subprocess.run(
        [FFMPEG, "-v", "error", "-i", "pipe:0", "-f", "null", "-"], input=data, capture_output=True, timeout=60
    )
    return result.stderr.decode() + ("" if result.returncode == 0 else f"exit {result.returncode}")
