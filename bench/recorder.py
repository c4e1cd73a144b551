"""Recorder CPU: remux (Takan) against aiortc's MediaRecorder (re-encode), and still latency.

    .venv/bin/python bench/recorder.py [--seconds 20]

CPU is this process's CPU time (time.process_time: all threads) per second of media
recorded, i.e. server cores per recorded stream. Both paths get the same 20 fps media:
the remux path its encoded VP8 packets, MediaRecorder the decoded frames of those packets
(decoded once beforehand, not counted), as aiortc's recorder would get them from a track.
Then: still capture latency on a live relay between real aiortc peers at 1280x720.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402
from aiortc import RTCPeerConnection  # noqa: E402
from aiortc.contrib.media import MediaRecorder  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402

from media.peer import ServerPeer  # noqa: E402
from media.relay import MediaRoom  # noqa: E402
from recorder.segments import SegmentWriter  # noqa: E402
from recorder.stills import StillCapture  # noqa: E402
from testkit.media import ClientPeer, PacketVideoTrack, encode_vp8, wait_for  # noqa: E402
from testkit.recording import vp8_packets  # noqa: E402

FPS = 20


async def remux_cpu(frames: list[bytes], seconds: int) -> tuple[float, int]:
    segments = []

    async def on_segment(segment) -> None:  # type: ignore[no-untyped-def]
        segments.append(segment)

    writer = SegmentWriter("applicant-video", "video", on_segment, inspection_id="bench")
    await writer.start()
    packets = vp8_packets(frames, seconds * FPS, fps=FPS)
    start = time.process_time()
    for packet in packets:
        writer.write(packet)
        await asyncio.sleep(0)
    await writer.close()
    return (time.process_time() - start) / seconds, len(segments)


class FrameTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, frames: list[av.VideoFrame], count: int) -> None:
        super().__init__()
        self._frames = frames
        self._count = count
        self._i = 0

    async def recv(self) -> av.VideoFrame:  # type: ignore[override]
        if self._i >= self._count:
            self.stop()
            raise MediaStreamError
        frame = self._frames[self._i % len(self._frames)]
        frame.pts = self._i
        frame.time_base = fractions.Fraction(1, FPS)
        self._i += 1
        return frame


async def mediarecorder_cpu(frames: list[bytes], seconds: int) -> float:
    decoder = av.CodecContext.create("libvpx", "r")
    decoded: list[av.VideoFrame] = []
    for data in frames:
        decoded += decoder.decode(av.Packet(data))
    with tempfile.TemporaryDirectory() as tmp:
        recorder = MediaRecorder(str(Path(tmp) / "out.webm"))
        track = FrameTrack(decoded, seconds * FPS)
        recorder.addTrack(track)
        start = time.process_time()
        await recorder.start()
        while track.readyState == "live":
            await asyncio.sleep(0.05)
        await recorder.stop()
        return (time.process_time() - start) / seconds


async def still_latency(trials: int) -> list[float]:
    frames = encode_vp8(1280, 720, frames=60, detail=0.15)
    room = MediaRoom("bench")
    publisher = ClientPeer(video=PacketVideoTrack(frames, restart_on_keyframe_request=True))
    server = ServerPeer("applicant", "applicant", room, RTCPeerConnection, publishes=True, source_role="inspector")
    await publisher.accept(await server.answer(await publisher.offer()))
    stills = StillCapture(room, "bench")
    await stills.start()
    latencies = []
    try:
        assert await wait_for(lambda: room.publisher(("applicant", "video")) is not None and room.publisher(("applicant", "video")).frames > 20, 20)
        for _ in range(trials):
            await asyncio.sleep(0.7)  # no recent keyframe to reuse
            start = time.perf_counter()
            still = await stills.capture()
            latencies.append(time.perf_counter() - start)
            assert (still.width, still.height) == (1280, 720)
    finally:
        await stills.close()
        await server.close()
        await publisher.close()
        await room.close()
    return latencies


async def main(seconds: int) -> None:
    print(f"recording {seconds} s of 20 fps VP8 per point")
    for width, height in ((640, 480), (1280, 720)):
        frames = encode_vp8(width, height, frames=60, detail=0.15)
        remux, segments = await remux_cpu(frames, seconds)
        reencode = await mediarecorder_cpu(frames, seconds)
        print(f"  {width}x{height}: remux {remux:.4f} cores/stream ({segments} segments), "
              f"MediaRecorder re-encode {reencode:.3f} cores/stream: {reencode / remux:.0f}x")
    latencies = await still_latency(10)
    print(f"still capture at 1280x720 (keyframe request, decode, JPEG), n={len(latencies)}: "
          f"p50 {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    asyncio.run(main(parser.parse_args().seconds))
