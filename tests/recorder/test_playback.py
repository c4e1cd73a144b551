"""Segments play in Chromium: the browsers auditors replay evidence in."""

from __future__ import annotations

import base64

import pytest

from recorder.segments import Segment, SegmentWriter
from recorder.timeline import Timeline
from testkit.browser import chromium, chromium_available
from testkit.media import encode_vp8
from testkit.recording import Collected, FakeClock, FakeSource, encode_opus, vp8_packets

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="Debian chromium is not installed (scripts/install.sh installs it)"),
]

PLAY = """async ([b64, tag]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], {type: tag === 'video' ? 'video/webm' : 'audio/webm'}));
  const el = document.createElement(tag);
  el.muted = true;
  document.body.appendChild(el);
  const result = await new Promise(resolve => {
    el.onerror = () => resolve({error: el.error ? `${el.error.code} ${el.error.message}` : 'error'});
    el.onended = () => resolve({ended: true});
    el.onloadedmetadata = () => el.play().catch(e => resolve({error: String(e)}));
    setTimeout(() => resolve({error: 'timeout', currentTime: el.currentTime}), 15000);
    el.src = url;
  });
  result.duration = el.duration;
  if (tag === 'video') {
    result.width = el.videoWidth;
    result.height = el.videoHeight;
    result.frames = el.getVideoPlaybackQuality().totalVideoFrames;
  }
  return result;
}"""


async def segments_of(kind: str, packets: list, every_s: float) -> list[Segment]:
    clock = FakeClock()
    got = Collected()
    writer = SegmentWriter(
        f"applicant-{kind}", kind, got, inspection_id="playback", timeline=Timeline(clock), segment_s=2.0
    )
    await writer.start()
    writer.attach(FakeSource(kind))
    for packet in packets:
        writer.write(packet)
        clock.advance(every_s)
    await writer.close()
    return got.segments


async def test_video_and_audio_segments_play_in_chromium() -> None:
    video = await segments_of("video", vp8_packets(encode_vp8(320, 240, frames=20), 60), 0.05)
    audio = await segments_of("audio", encode_opus(3.0), 0.02)
    assert len(video) == 2 and len(audio) == 2
    async with chromium() as browser:
        page = await browser.new_page()  # type: ignore[attr-defined]  # testkit.browser yields object
        for segment in (video[1], audio[0]):  # a later segment plays on its own too
            tag = "video" if segment.codec == "vp8" else "audio"
            result = await page.evaluate(PLAY, [base64.b64encode(segment.data).decode(), tag])
            assert result.get("ended"), result
            assert abs(result["duration"] * 1000 - segment.duration_ms) <= 50, result
            if tag == "video":
                assert (result["width"], result["height"]) == (320, 240)
                assert result["frames"] >= segment.frames - 2, result
