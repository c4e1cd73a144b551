"""The bytes of segment files: VP8 keyframe headers, Opus TOCs, the timeline's RTP clock."""

from __future__ import annotations

import fractions

import pytest

from recorder.timeline import RtpClock
from recorder.webm import EncodedFrame, mux_opus, mux_vp8, opus_packet_samples, vp8_keyframe_size
from testkit.media import encode_vp8


def test_vp8_keyframe_size() -> None:
    frames = encode_vp8(352, 288, frames=3)
    assert vp8_keyframe_size(frames[0]) == (352, 288)
    assert vp8_keyframe_size(frames[1]) is None  # a delta frame
    # the top two bits of each field are a scaling hint, not size
    header = bytearray(frames[0][:10])
    header[7] |= 0xC0
    assert vp8_keyframe_size(bytes(header)) == (352, 288)
    assert vp8_keyframe_size(b"\x00\x00\x00\x9d\x01\x2b\x60\x01\x20\x01") is None  # bad start code
    assert vp8_keyframe_size(b"") is None


@pytest.mark.parametrize(
    "packet, samples",
    [
        (bytes([0xFC]), 960),  # CELT 20 ms, one frame
        (bytes([0x78 | 0x01]), 2 * 960),  # hybrid 20 ms, two frames
        (bytes([0x08]), 960),  # SILK 20 ms
        (bytes([0x18]), 2880),  # SILK 60 ms
        (bytes([0x80 | 0x03, 0x03]), 3 * 120),  # CELT 2.5 ms, code 3 with 3 frames
        (bytes([0x03]), None),  # code 3 without its count byte
        (b"", None),
    ],
)
def test_opus_packet_samples(packet: bytes, samples: int | None) -> None:
    assert opus_packet_samples(packet) == samples


def test_a_vp8_segment_must_start_on_a_keyframe() -> None:
    frames = encode_vp8(160, 120, frames=2)
    with pytest.raises(ValueError):
        mux_vp8([EncodedFrame(frames[1], 0, 50, False)], 160, 120)
    with pytest.raises(ValueError):
        mux_opus([])


def test_rtp_clock_unwraps_and_follows_the_rate() -> None:
    clock = RtpClock((1 << 32) - 4500, fractions.Fraction(1, 90000), base_ms=1000)
    assert clock.to_ms((1 << 32) - 4500) == 1000
    assert clock.to_ms(0) == 1050  # wrapped
    assert clock.to_ms(90000) == 2050
    assert clock.to_ms(90000 - 900) == 2040  # a little backwards is allowed
