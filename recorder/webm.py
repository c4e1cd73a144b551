"""WebM files made of encoded frames, by remuxing only (nothing is decoded or encoded).

The recorder cuts each track into short, self-contained WebM files. This module knows the
bytes: the size in a VP8 keyframe header, the duration of an Opus packet, and how to mux a
run of frames into a WebM with PyAV. It holds no state; :mod:`recorder.segments` decides
where files begin and end.
"""

from __future__ import annotations

import fractions
import io
import struct
from dataclasses import dataclass
from typing import Optional, Sequence

import av

#: Every timestamp in a segment file is in milliseconds (Matroska's default timecode scale).
MS = fractions.Fraction(1, 1000)
OPUS_SAMPLE_RATE = 48000
OPUS_CHANNELS = 2

_VP8_START_CODE = b"\x9d\x01\x2a"


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame placed on a segment's own timeline (ms from the segment start)."""

    data: bytes
    pts_ms: int
    duration_ms: int
    keyframe: bool


def vp8_keyframe_size(data: bytes) -> Optional[tuple[int, int]]:
    """Width and height from a VP8 keyframe (RFC 6386 9.1), or None if ``data`` is not one.

    A keyframe has bit 0 of its first byte clear, then after the 3-byte frame tag the start
    code ``9d 01 2a`` and two 16-bit little-endian fields whose low 14 bits are the width
    and the height (the top 2 bits are a scaling hint).
    """
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != _VP8_START_CODE:
        return None
    width, height = struct.unpack_from("<HH", data, 6)
    width &= 0x3FFF
    height &= 0x3FFF
    if not width or not height:
        return None
    return width, height


def opus_packet_samples(data: bytes) -> Optional[int]:
    """Samples (at 48 kHz) that an Opus packet decodes to, from its TOC byte (RFC 6716 3.1)."""
    if not data:
        return None
    toc = data[0]
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:  # hybrid: 10, 20 ms
        frame = (480, 960)[config % 2]
    else:  # CELT: 2.5, 5, 10, 20 ms
        frame = (120, 240, 480, 960)[config % 4]
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    elif len(data) >= 2:
        count = data[1] & 0x3F
    else:
        return None
    return frame * count if count else None


def mux_vp8(frames: Sequence[EncodedFrame], width: int, height: int) -> bytes:
    """A WebM file with one VP8 track made of ``frames`` (the first must be a keyframe)."""
    if not frames or not frames[0].keyframe:
        raise ValueError("a VP8 segment must start on a keyframe")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as output:
        stream = output.add_mux_stream("vp8", width=width, height=height, time_base=MS)
        _mux_all(output, stream, frames)
    return buffer.getvalue()


def mux_opus(frames: Sequence[EncodedFrame]) -> bytes:
    """A WebM file with one Opus track (48 kHz, stereo) made of ``frames``."""
    if not frames:
        raise ValueError("an Opus segment needs at least one packet")
    buffer = io.BytesIO()
    # The WebM Opus mapping puts the OpusHead in CodecPrivate (Firefox, for one, needs it).
    # PyAV cannot set a mux stream's CodecPrivate, so copy the parameters of a template.
    with av.open(io.BytesIO(_OPUS_TEMPLATE), "r", format="ogg") as template:
        with av.open(buffer, "w", format="webm") as output:
            stream = output.add_stream_from_template(template.streams.audio[0], time_base=MS)
            _mux_all(output, stream, frames)
    return buffer.getvalue()


def _mux_all(output: av.container.OutputContainer, stream: av.stream.Stream, frames: Sequence[EncodedFrame]) -> None:
    for frame in frames:
        packet = av.Packet(frame.data)
        packet.pts = frame.pts_ms
        packet.dts = frame.pts_ms
        packet.duration = frame.duration_ms
        packet.time_base = MS
        packet.is_keyframe = frame.keyframe
        packet.stream = stream
        output.mux(packet)


# ---- the Opus stream template ---------------------------------------------------------
#
# A minimal Ogg Opus file (RFC 7845): the identification header (OpusHead: version 1, two
# channels, no pre-skip since segments start mid-stream, 48 kHz, 0 dB, mapping family 0),
# the comment header, and one empty packet so that the demuxer finishes reading headers.


def _ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04c11db7, not reflected, no final xor)."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


def _ogg_page(payload: bytes, sequence: int, flags: int, granule: int = 0) -> bytes:
    assert len(payload) < 255  # one lacing value
    header = b"OggS" + bytes([0, flags]) + struct.pack("<qII", granule, 1, sequence)
    page = header + b"\0\0\0\0" + bytes([1, len(payload)]) + payload
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, OPUS_CHANNELS, 0, OPUS_SAMPLE_RATE, 0, 0)
_OPUS_TAGS = b"OpusTags" + struct.pack("<I", 5) + b"takan" + struct.pack("<I", 0)
_OPUS_TEMPLATE = (
    _ogg_page(OPUS_HEAD, 0, 0x02)
    + _ogg_page(_OPUS_TAGS, 1, 0x00)
    + _ogg_page(b"\xfc", 2, 0x04, granule=960)  # one 20 ms CELT frame of length 0
)
