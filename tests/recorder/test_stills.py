"""Stills: a JPEG of the publisher's full-resolution video, decoded only on demand."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from PIL import Image

from media.relay import MediaRoom
from recorder.stills import NoVideo, StillCapture
from testkit.media import encode_vp8, wait_for
from testkit.recording import FakeSource, connect, publisher, vp8_packets


@pytest.fixture(scope="module")
def vp8_720p() -> list[bytes]:
    """3 s of 1280x720 at 5 fps with one keyframe (few frames: encoding 720p is slow)."""
    return encode_vp8(1280, 720, frames=15, fps=5)


@pytest.fixture(scope="module")
def vp8_small() -> list[bytes]:
    return encode_vp8(320, 240, frames=4)


async def test_a_still_of_a_live_stream_is_full_resolution_and_quick(vp8_720p) -> None:
    room = MediaRoom("still-live")
    client, track = publisher(vp8_720p, fps=5)
    server = await connect(room, client, "a", "applicant", "inspector")
    stills = StillCapture(room, "insp-still")
    await stills.start()
    try:
        assert await wait_for(lambda: (up := room.publisher(("applicant", "video"))) is not None and up.frames >= 5, 15)
        # 1 s after the last keyframe, 2 s before the next: the capture must ask for one
        began = time.monotonic()
        still = await stills.capture()
        took = time.monotonic() - began
    finally:
        await stills.close()
        await server.close()
        await client.close()
        await room.close()
    await stills.close()

    assert took < 1.0
    assert track.keyframe_requests >= 1
    assert (still.width, still.height) == (1280, 720)
    image = Image.open(io.BytesIO(still.data))
    assert (image.format, image.size) == ("JPEG", (1280, 720))
    assert still.captured_at.tzinfo is not None


async def test_no_video_without_a_publisher() -> None:
    room = MediaRoom("still-empty")
    stills = StillCapture(room, "insp-empty")
    await stills.start()
    with pytest.raises(NoVideo, match="nobody publishes applicant video"):
        await stills.capture()
    await stills.close()
    await stills.close()
    with pytest.raises(NoVideo):
        await stills.capture()


async def test_no_video_when_no_keyframe_comes_in_time() -> None:
    stills = StillCapture(MediaRoom("still-silent"), "insp-silent")
    source = FakeSource()
    stills.attach(source)
    began = time.monotonic()
    with pytest.raises(NoVideo, match="no keyframe"):
        await stills.capture(timeout_s=0.6)
    assert 0.5 < time.monotonic() - began < 1.5
    assert source.keyframe_requests >= 2  # asked again while waiting


async def test_a_recent_keyframe_is_used_without_asking(vp8_small) -> None:
    stills = StillCapture(MediaRoom("still-recent"), "insp-recent")
    source = FakeSource()
    stills.attach(source)
    keyframe = vp8_packets(vp8_small, 1, first_ts=4242)[0]
    stills.write(keyframe)
    still = await stills.capture()
    assert source.keyframe_requests == 0
    assert (still.width, still.height, still.rtp_timestamp) == (320, 240, 4242)


async def test_capture_waits_for_the_next_keyframe_and_ignores_delta_frames(vp8_small) -> None:
    stills = StillCapture(MediaRoom("still-wait"), "insp-wait")
    source = FakeSource()
    stills.attach(source)
    capture = asyncio.ensure_future(stills.capture())
    await asyncio.sleep(0.05)
    assert source.keyframe_requests == 1 and not capture.done()
    for packet in vp8_packets(vp8_small, 3, first_index=1):  # delta frames only
        stills.write(packet)
    await asyncio.sleep(0.05)
    assert not capture.done()
    stills.write(vp8_packets(vp8_small, 1, first_ts=9000)[0])
    still = await asyncio.wait_for(capture, 2)
    assert still.rtp_timestamp == 9000


async def test_the_publisher_leaving_fails_a_pending_capture() -> None:
    stills = StillCapture(MediaRoom("still-gone"), "insp-gone")
    stills.attach(FakeSource())
    capture = asyncio.ensure_future(stills.capture())
    await asyncio.sleep(0.05)
    stills.attach(None)
    with pytest.raises(NoVideo, match="stopped publishing"):
        await asyncio.wait_for(capture, 1)


def test_vp8_keyframe_width_reads_the_frame_header(vp8_small, vp8_720p) -> None:
    from recorder.stills import vp8_keyframe_width

    assert vp8_keyframe_width(vp8_small[0]) == 320
    assert vp8_keyframe_width(vp8_720p[0]) == 1280
    assert vp8_keyframe_width(vp8_small[1]) == 0  # an inter frame
    assert vp8_keyframe_width(b"\x00\x01") == 0


async def test_a_sharpened_still_waits_for_a_full_resolution_keyframe(vp8_small, vp8_720p) -> None:
    # The phone had lowered its resolution; told to sharpen, its next keyframe is 720p.
    stills = StillCapture(MediaRoom("still-sharp"), "insp-sharp")
    stills.attach(FakeSource())
    capture = asyncio.ensure_future(stills.capture(sharpen=True))
    await asyncio.sleep(0.05)
    stills.write(vp8_packets(vp8_small, 1, first_ts=1000)[0])  # still the narrow stream
    await asyncio.sleep(0.1)
    assert not capture.done()
    stills.write(vp8_packets(vp8_720p, 1, first_ts=2000)[0])
    still = await asyncio.wait_for(capture, 3)
    assert (still.width, still.height, still.rtp_timestamp) == (1280, 720, 2000)


async def test_a_sharpened_still_takes_the_narrow_keyframe_when_no_wider_one_comes(vp8_small, monkeypatch) -> None:
    from recorder import stills as stills_module

    monkeypatch.setattr(stills_module, "SHARPEN_WAIT_S", 0.4)
    stills = StillCapture(MediaRoom("still-narrow"), "insp-narrow")
    stills.attach(FakeSource())
    stills.write(vp8_packets(vp8_small, 1, first_ts=3000)[0])
    still = await asyncio.wait_for(stills.capture(sharpen=True), 3)
    assert (still.width, still.rtp_timestamp) == (320, 3000)  # a camera that gives no more
