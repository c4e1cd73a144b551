"""The recorder as a participant of a room with a real aiortc publisher."""

from __future__ import annotations

import asyncio
import time

import pytest

from media.relay import MediaRoom
from recorder.recorder import Recorder
from testkit.media import encode_vp8, wait_for
from testkit.recording import Collected, connect, decode_errors, probe, publisher


FPS = 10


@pytest.fixture(scope="module")
def vp8_loop() -> list[bytes]:
    """5 s of 640x480 at 10 fps with one keyframe: the publisher's next natural keyframe is far."""
    return encode_vp8(640, 480, frames=50, fps=FPS)


async def test_recorder_records_a_live_publisher(vp8_loop) -> None:
    room = MediaRoom("rec-live")
    client, track = publisher(vp8_loop, fps=FPS)
    server = await connect(room, client, "a", "applicant", "inspector")
    got = Collected()
    recorder = Recorder(room, "insp-live", got)
    try:
        assert await wait_for(lambda: (up := room.publisher(("applicant", "video"))) is not None and up.frames >= 15, 15)
        up = room.publisher(("applicant", "video"))
        assert up is not None
        # 1.5 s into the loop: without a keyframe request the first keyframe is 3.5 s away
        await recorder.start()
        await recorder.start()
        started = time.monotonic()
        writer = recorder.writers["applicant-video"]
        assert await wait_for(lambda: writer.frames > 0, timeout=3.0)
        assert time.monotonic() - started < 1.0, "the keyframe request at start was not honoured"
        assert track.keyframe_requests >= 1 and up.keyframe_requests >= 1
        await asyncio.sleep(6.0 - (time.monotonic() - started))
        elapsed = time.monotonic() - started
    finally:
        await recorder.close()
        await server.close()
        await client.close()
        await room.close()
    await recorder.close()

    video = got.of("applicant-video")
    assert set(recorder.writers) == {"applicant-video", "applicant-audio", "inspector-video", "inspector-audio"}
    assert [s.track for s in got.segments] == ["applicant-video"] * len(video)  # silent tracks: nothing
    # cut at the keyframe asked for after 4 s without one, then flushed at close
    assert len(video) == 2, [(s.seq, s.duration_ms) for s in video]
    assert 3900 <= video[0].duration_ms <= 4700  # the loop's own keyframe would make it ~5000
    assert [s.seq for s in video] == [1, 2]
    assert video[1].media_start_ms == video[0].media_end_ms
    assert abs(sum(s.duration_ms for s in video) - elapsed * 1000) < 1000
    for segment in video:
        info = probe(segment.data)
        (stream,) = info["streams"]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("vp8", 640, 480)
        assert info["packets"][0]["flags"].startswith("K")
        assert len(info["packets"]) == segment.frames
        assert abs(float(info["format"]["duration"]) * 1000 - segment.duration_ms) <= 1000 / FPS
        assert decode_errors(segment.data) == ""
