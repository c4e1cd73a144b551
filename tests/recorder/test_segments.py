"""SegmentWriter: synthetic encoded media in, ffprobe-valid WebM segments out."""

from __future__ import annotations

import asyncio
import time

import pytest

from recorder.segments import Segment, SegmentWriter
from recorder.timeline import Timeline
from testkit.media import encode_vp8
from testkit.recording import (
    Collected,
    FakeClock,
    FakeSource,
    decode_errors,
    encode_opus,
    probe,
    vp8_packets,
)

FPS = 20
FRAME_S = 1 / FPS


@pytest.fixture(scope="module")
def vp8_320() -> list[bytes]:
    """2 s of 320x240 VP8: a keyframe, then 39 delta frames."""
    return encode_vp8(320, 240, frames=40, fps=FPS)


@pytest.fixture(scope="module")
def vp8_640() -> list[bytes]:
    """1 s of 640x480 VP8, starting on a keyframe."""
    return encode_vp8(640, 480, frames=20, fps=FPS)


@pytest.fixture(scope="module")
def opus_10s() -> list:
    return encode_opus(10.0, first_ts=123456)


def make_writer(kind: str = "video", **kwargs) -> tuple[SegmentWriter, Collected, FakeClock]:
    clock = FakeClock()
    got = Collected()
    track = "applicant-" + kind
    writer = SegmentWriter(track, kind, got, inspection_id="test", timeline=Timeline(clock), **kwargs)
    return writer, got, clock


def feed(writer: SegmentWriter, clock: FakeClock, packets: list, every_s: float = FRAME_S) -> None:
    for packet in packets:
        writer.write(packet)
        clock.advance(every_s)


def check_file(segment: Segment) -> dict:
    """The segment is a valid WebM whose length, frames and first keyframe match its record."""
    info = probe(segment.data)
    assert info["format"]["format_name"] == "matroska,webm"
    (stream,) = info["streams"]
    assert stream["codec_name"] == segment.codec
    packets = info["packets"]
    assert len(packets) == segment.frames
    assert float(packets[0]["pts_time"]) == 0.0
    assert packets[0]["flags"].startswith("K")
    assert abs(float(info["format"]["duration"]) * 1000 - segment.duration_ms) <= 1000 * FRAME_S
    assert decode_errors(segment.data) == ""
    assert (segment.wall_end - segment.wall_start).total_seconds() * 1000 == segment.duration_ms
    return stream


def check_contiguous(segments: list[Segment]) -> None:
    assert [s.seq for s in segments] == list(range(1, len(segments) + 1))
    for before, after in zip(segments, segments[1:]):
        assert after.media_start_ms == before.media_end_ms
        assert after.wall_start == before.wall_end


async def test_video_is_cut_at_the_first_keyframe_after_segment_s(vp8_320) -> None:
    writer, got, clock = make_writer()
    await writer.start()
    writer.attach(FakeSource())
    feed(writer, clock, vp8_packets(vp8_320, 12 * FPS))  # 12 s, a keyframe every 2 s
    await writer.close()

    segments = got.segments
    assert [s.duration_ms for s in segments] == [4000, 4000, 4000]
    assert segments[0].media_start_ms == 0
    check_contiguous(segments)
    assert abs(sum(s.duration_ms for s in segments) - 12000) <= 100
    assert [(s.frames, s.keyframes) for s in segments] == [(80, 2)] * 3
    for segment in segments:
        stream = check_file(segment)
        assert (stream["width"], stream["height"]) == (320, 240) == (segment.width, segment.height)
    assert writer.frames == 240 and writer.dropped == 0 and writer.segments == 3


async def test_frames_before_the_first_keyframe_are_dropped(vp8_320) -> None:
    writer, got, clock = make_writer()
    await writer.start()
    writer.attach(FakeSource())
    feed(writer, clock, vp8_packets(vp8_320, 75, first_index=5))  # 35 delta frames, then 2 s
    await writer.close()

    assert writer.dropped == 35
    (segment,) = got.segments
    # the first packet set the clock at its arrival; the keyframe came 35 frames later
    assert segment.media_start_ms == 35 * 50
    assert segment.frames == 40 and segment.duration_ms == 2000
    check_file(segment)


async def test_a_resolution_change_starts_a_new_segment(vp8_320, vp8_640) -> None:
    writer, got, clock = make_writer()
    await writer.start()
    writer.attach(FakeSource())
    feed(writer, clock, vp8_packets(vp8_320, 40))
    feed(writer, clock, vp8_packets(vp8_640, 20, first_ts=40 * 4500))  # same source, bigger
    await writer.close()

    first, second = got.segments
    assert (first.width, first.height, first.duration_ms) == (320, 240, 2000)
    assert (second.width, second.height, second.duration_ms) == (640, 480, 1000)
    check_contiguous(got.segments)
    stream = check_file(second)
    assert (stream["width"], stream["height"]) == (640, 480)
    check_file(first)


async def test_audio_is_cut_every_segment_s(opus_10s) -> None:
    writer, got, clock = make_writer("audio")
    await writer.start()
    writer.attach(FakeSource("audio"))
    feed(writer, clock, opus_10s, every_s=0.02)
    await writer.close()

    segments = got.segments
    assert [s.duration_ms for s in segments] == [4000, 4000, 2000]
    assert [s.frames for s in segments] == [200, 200, 100]
    check_contiguous(segments)
    for segment in segments:
        assert segment.codec == "opus" and segment.sample_rate == 48000 and segment.width is None
        stream = check_file(segment)
        assert (stream["sample_rate"], stream["channels"]) == ("48000", 2)
        assert b"OpusHead" in segment.data  # CodecPrivate, as WebM's Opus mapping asks


async def test_a_new_source_restarts_the_clock_and_the_timeline_moves_on(vp8_320) -> None:
    writer, got, clock = make_writer()
    await writer.start()
    first, second = FakeSource(), FakeSource()
    writer.attach(first)
    # 3 s whose RTP timestamps wrap around 2**32 after 1 s
    feed(writer, clock, vp8_packets(vp8_320, 60, first_ts=(1 << 32) - 90000))
    writer.attach(None)  # the publisher's connection dropped...
    clock.advance(1.5)
    writer.attach(second)  # ...and it came back with a new RTP clock
    feed(writer, clock, vp8_packets(vp8_320, 60, first_ts=777))
    await writer.close()

    a, b = got.segments
    assert (a.seq, a.media_start_ms, a.duration_ms, a.frames) == (1, 0, 3000, 60)
    # placed at its arrival: 3 s of frames plus 1.5 s away
    assert (b.seq, b.media_start_ms, b.duration_ms, b.frames) == (2, 4500, 3000, 60)
    assert first.keyframe_requests == 1 and second.keyframe_requests == 1
    check_file(a)
    check_file(b)


async def test_keyframes_are_requested_at_attach_while_waiting_and_when_overdue(vp8_320) -> None:
    writer, got, clock = make_writer(watchdog_tick_s=0.005)
    await writer.start()
    source = FakeSource()
    keyframe = vp8_320[0]

    def write_keyframe(at_s: float) -> None:
        writer.write(vp8_packets([keyframe], 1, first_ts=round(at_s * 90000))[0])

    async def requests_after(seconds: float) -> int:
        clock.advance(seconds)
        await asyncio.sleep(0.05)  # several watchdog ticks
        return source.keyframe_requests

    writer.attach(source)
    assert source.keyframe_requests == 1  # recording starts
    assert await requests_after(0.5) == 1
    assert await requests_after(0.6) == 2  # still waiting for the first: once a second
    write_keyframe(0.0)  # the first segment starts
    assert await requests_after(3.0) == 2
    write_keyframe(3.0)  # someone else's keyframe (a still): too early to cut at
    assert await requests_after(1.1) == 3  # the segment is 4 s old: ask for a keyframe to cut at
    assert await requests_after(0.5) == 3  # at most once a second
    assert await requests_after(0.6) == 4
    write_keyframe(5.2)  # cut here
    assert await requests_after(3.9) == 4
    assert await requests_after(1.0) == 5  # silent for 4 s (and due for a cut)
    assert writer.keyframe_requests == 5
    await writer.close()
    assert await requests_after(5) == 5  # the watchdog is gone
    assert [s.duration_ms for s in got.segments] == [5200, 33]


async def test_slow_callbacks_never_block_write_and_keep_order(vp8_320) -> None:
    writer, got, clock = make_writer(segment_s=2.0)
    got.delay_s = 0.05
    failing = {2}

    async def on_segment(segment: Segment) -> None:
        if segment.seq in failing:
            raise RuntimeError("storage hiccup")
        await got(segment)

    writer._on_segment = on_segment  # noqa: SLF001 - swap in the failing callback
    await writer.start()
    writer.attach(FakeSource())
    began = time.perf_counter()
    feed(writer, clock, vp8_packets(vp8_320, 8 * FPS))
    assert time.perf_counter() - began < 0.5  # no callback ran inside write()
    await writer.close()  # waits for every delivery
    assert [s.seq for s in got.segments] == [1, 3, 4]  # 2 failed, was logged, the rest went on
    assert writer.segments == 4


async def test_close_is_idempotent_and_ends_writing(vp8_320) -> None:
    writer, got, clock = make_writer()
    await writer.start()
    await writer.start()
    writer.attach(FakeSource())
    feed(writer, clock, vp8_packets(vp8_320, 10))
    await asyncio.gather(writer.close(), writer.close())
    await writer.close()
    feed(writer, clock, vp8_packets(vp8_320, 10))
    assert len(got.segments) == 1 and writer.frames == 10
    with pytest.raises(RuntimeError):
        await writer.start()


async def test_close_without_start_still_delivers(vp8_320) -> None:
    writer, got, clock = make_writer()
    feed(writer, clock, vp8_packets(vp8_320, 10))
    await writer.close()
    assert [s.frames for s in got.segments] == [10]


async def test_a_track_without_media_produces_nothing() -> None:
    writer, got, _ = make_writer()
    await writer.start()
    writer.attach(FakeSource())
    writer.attach(None)
    await writer.close()
    assert got.segments == []


async def test_an_outage_is_reported_as_a_gap(vp8_320) -> None:
    """Media missing for more than GAP_MS (the publisher gone, then back) is a gap the next
    segment carries; the segments on either side stay playable."""
    writer, got, clock = make_writer()
    await writer.start()
    first, second = FakeSource(), FakeSource()
    writer.attach(first)
    feed(writer, clock, vp8_packets(vp8_320, 40))
    writer.attach(None)
    clock.advance(8.0)  # an 8 s outage
    writer.attach(second)
    feed(writer, clock, vp8_packets(vp8_320, 40, first_ts=555))
    await writer.close()

    a, b = got.segments
    assert a.gaps == ()
    assert len(b.gaps) == 1
    start, end = b.gaps[0]
    assert start == a.media_start_ms + 39 * 50 and end == b.media_start_ms
    assert 7900 <= end - start <= 8200
    check_file(a)
    check_file(b)
