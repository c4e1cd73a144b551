"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).

A libwebrtc sender (Chromium) numbers every RTP packet of a transport with the
transport-wide sequence number header extension and runs its bandwidth estimator on the
receiver's reports of when each packet arrived (RTCP RTPFB, FMT=15). aiortc only sends
REMB, which Chromium's send-side estimator takes as a cap at best; this module is the
receiver's half of transport-cc:

* :class:`ArrivalRecorder` collects (sequence number, arrival time) and builds feedback
  packets: packet status chunks (run length, 1-bit and 2-bit status vectors), receive
  deltas in 250 us ticks against a reference time in 64 ms ticks, a feedback packet count,
  RTCP padding as libwebrtc writes it;
* :class:`TransportFeedback` sends them every ``interval_s`` (libwebrtc's own receiver
  sends every 50 ms at low rates, up to 250 ms at high ones);
* :func:`parse_feedback` reads them back (for tests and tools).

Nothing here knows aiortc: ``media/tap.py`` feeds the packets in and sends the bytes out
(through ``media/rtcp_loop.py``).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Optional

from .rtcp_loop import PeriodicRtcp, SendRtcp, Ssrcs


URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTCP_RTPFB = 205
FMT_TRANSPORT_CC = 15
DELTA_TICK_US = 250
REFERENCE_TICK_US = 64_000
#: Packet status symbols.
NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2
#: At most this many packet statuses in one feedback packet (keeps it under ~1200 bytes).
MAX_STATUSES = 400
#: Arrivals further back than this (in sequence numbers) are forgotten unreported.
MAX_BACKLOG = 10_000
_MAX_RUN = 0x1FFF


class SequenceUnwrapper:
    """Turns 16-bit sequence numbers into a monotonic integer (RFC 3550 A.1 style)."""

    def __init__(self) -> None:
        self._last: Optional[int] = None

    def unwrap(self, seq: int) -> int:
        if self._last is None:
            self._last = seq + 0x10000  # room below for reordered packets
            return self._last
        delta = (seq - self._last) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        value = self._last + delta
        if value > self._last:
            self._last = value
        return value


def _chunks(symbols: list[int]) -> bytes:
    """Encode status symbols as packet status chunks (section 3.1.1-3.1.4)."""
    out = bytearray()
    i, n = 0, len(symbols)
    while i < n:
        run = 1
        while i + run < n and symbols[i + run] == symbols[i] and run < _MAX_RUN:
            run += 1
        if run >= 14 or i + run == n:
            # Run length chunk: T=0, S (2 bits), run length (13 bits).
            out += struct.pack("!H", (symbols[i] << 13) | run)
            i += run
            continue
        window = symbols[i : i + 14]
        if LARGE_DELTA not in window:
            # Status vector chunk, one-bit symbols: T=1, S=0, 14 symbols.
            value = 0x8000
            for k, symbol in enumerate(window):
                value |= symbol << (13 - k)
            out += struct.pack("!H", value)
            i += len(window)
        else:
            # Status vector chunk, two-bit symbols: T=1, S=1, 7 symbols.
            value = 0xC000
            for k, symbol in enumerate(symbols[i : i + 7]):
                value |= symbol << (12 - 2 * k)
            out += struct.pack("!H", value)
            i += min(7, n - i)
    return bytes(out)


def encode_feedback(
    sender_ssrc: int,
    media_ssrc: int,
    base_seq: int,
    feedback_count: int,
    reference_time: int,
    symbols: list[int],
    deltas: list[int],
) -> bytes:
    """One RTCP transport feedback packet, padded to 32 bits as libwebrtc pads it.

    ``reference_time`` is in 64 ms ticks, ``deltas`` in 250 us ticks, one per received
    symbol (1 byte for SMALL_DELTA, 2 bytes signed for LARGE_DELTA).
    """
    body = bytearray(
        struct.pack(
            "!IIHHI",
            sender_ssrc,
            media_ssrc,
            base_seq & 0xFFFF,
            len(symbols),
            ((reference_time & 0xFFFFFF) << 8) | (feedback_count & 0xFF),
        )
    )
    body += _chunks(symbols)
    received = [s for s in symbols if s != NOT_RECEIVED]
    if len(received) != len(deltas):
        raise ValueError(f"{len(received)} received symbols but {len(deltas)} deltas")
    for symbol, delta in zip(received, deltas):
        body += struct.pack("!B", delta) if symbol == SMALL_DELTA else struct.pack("!h", delta)
    padding = (-len(body)) % 4
    if padding:
        body += b"\x00" * (padding - 1) + bytes([padding])
    first = 0x80 | (0x20 if padding else 0) | FMT_TRANSPORT_CC
    return struct.pack("!BBH", first, RTCP_RTPFB, len(body) // 4) + bytes(body)


@dataclass(frozen=True)
class Feedback:
    """A parsed transport feedback packet; arrivals in microseconds since reference 0."""

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    feedback_count: int
    reference_time: int
    statuses: list[int] = field(default_factory=list)
    arrivals_us: dict[int, int] = field(default_factory=dict)  # 16-bit seq -> arrival


def parse_feedback(data: bytes) -> Feedback:
    """Read one transport feedback packet (raises ValueError on anything malformed)."""
    if len(data) < 20:
        raise ValueError("transport feedback shorter than 20 bytes")
    first, packet_type, length = struct.unpack("!BBH", data[:4])
    if first >> 6 != 2 or packet_type != RTCP_RTPFB or first & 0x1F != FMT_TRANSPORT_CC:
        raise ValueError("not an RTPFB FMT=15 packet")
    end = 4 + 4 * length
    if end > len(data):
        raise ValueError("transport feedback length runs past the data")
    if first & 0x20:
        end -= data[end - 1]
    sender, media, base, count, ref_fb = struct.unpack("!IIHHI", data[4:20])
    reference = ref_fb >> 8
    if reference & 0x800000:
        reference -= 0x1000000
    pos = 20
    statuses: list[int] = []
    while len(statuses) < count:
        if pos + 2 > end:
            raise ValueError("packet status chunks run past the packet")
        (chunk,) = struct.unpack("!H", data[pos : pos + 2])
        pos += 2
        if not chunk & 0x8000:
            statuses += [(chunk >> 13) & 0x3] * (chunk & _MAX_RUN)
        elif not chunk & 0x4000:
            statuses += [(chunk >> (13 - k)) & 0x1 for k in range(14)]
        else:
            statuses += [(chunk >> (12 - 2 * k)) & 0x3 for k in range(7)]
    statuses = statuses[:count]
    arrivals: dict[int, int] = {}
    now = reference * REFERENCE_TICK_US
    for index, status in enumerate(statuses):
        if status == NOT_RECEIVED:
            continue
        if status == SMALL_DELTA:
            (delta,) = struct.unpack("!B", data[pos : pos + 1])
            pos += 1
        elif status == LARGE_DELTA:
            (delta,) = struct.unpack("!h", data[pos : pos + 2])
            pos += 2
        else:
            raise ValueError("reserved packet status symbol 3")
        if pos > end:
            raise ValueError("receive deltas run past the packet")
        now += delta * DELTA_TICK_US
        arrivals[(base + index) & 0xFFFF] = now
    return Feedback(sender, media, base, ref_fb & 0xFF, reference, statuses, arrivals)


class ArrivalRecorder:
    """Arrival times of transport-wide sequence numbers, turned into feedback packets."""

    def __init__(self) -> None:
        self._unwrapper = SequenceUnwrapper()
        self._arrivals: dict[int, int] = {}
        self._next: Optional[int] = None  # first sequence number not yet reported
        self._highest: Optional[int] = None
        self._feedback_count = 0
        self.packets = 0
        self.late = 0
        self.sent_any = False

    def add(self, seq: int, arrival_us: int) -> None:
        """One RTP packet with transport-wide sequence number ``seq`` arrived."""
        value = self._unwrapper.unwrap(seq)
        self.packets += 1
        if self._next is not None and value < self._next:
            if self.sent_any:
                self.late += 1  # already reported as lost; libwebrtc's receiver drops these too
                return
            self._next = value  # reordered before the first report: start earlier
        if self._next is None:
            self._next = value
        self._arrivals.setdefault(value, arrival_us)
        if self._highest is None or value > self._highest:
            self._highest = value

    def build(self, sender_ssrc: int, media_ssrc: int) -> list[bytes]:
        """Feedback for everything that arrived since the last call ([] if nothing did)."""
        if self._next is None or self._highest is None or self._highest < self._next:
            return []
        if self._highest - self._next > MAX_BACKLOG:
            self._forget_before(self._highest - MAX_BACKLOG)
        packets: list[bytes] = []
        self.sent_any = True
        while self._next <= self._highest:
            first = next(v for v in range(self._next, self._highest + 1) if v in self._arrivals)
            if first - self._next >= MAX_STATUSES:
                # A long gap of lost packets: leave its start unreported (also lost to
                # the sender) so that one packet still reaches a received one.
                self._forget_before(first - MAX_STATUSES // 2)
            packet, consumed = self._one(sender_ssrc, media_ssrc, self._next, self._highest)
            packets.append(packet)
            for value in range(self._next, self._next + consumed):
                self._arrivals.pop(value, None)
            self._next += consumed
        return packets

    def _forget_before(self, value: int) -> None:
        for old in [v for v in self._arrivals if v < value]:
            del self._arrivals[old]
        self._next = value

    def _one(self, sender_ssrc: int, media_ssrc: int, start: int, end: int) -> tuple[bytes, int]:
        first = next(v for v in range(start, end + 1) if v in self._arrivals)
        reference = self._arrivals[first] // REFERENCE_TICK_US
        last_us = reference * REFERENCE_TICK_US
        symbols: list[int] = []
        deltas: list[int] = []
        for value in range(start, end + 1):
            if len(symbols) >= MAX_STATUSES:
                break
            arrival = self._arrivals.get(value)
            if arrival is None:
                symbols.append(NOT_RECEIVED)
                continue
            ticks = round((arrival - last_us) / DELTA_TICK_US)
            if 0 <= ticks <= 0xFF:
                symbols.append(SMALL_DELTA)
            elif -0x8000 <= ticks <= 0x7FFF:
                symbols.append(LARGE_DELTA)
            else:
                break  # too far from the previous arrival: the next packet starts here
            deltas.append(ticks)
            last_us += ticks * DELTA_TICK_US
        while symbols and symbols[-1] == NOT_RECEIVED:
            symbols.pop()  # the next packet reports them, after a received one
        packet = encode_feedback(sender_ssrc, media_ssrc, start, self._feedback_count, reference, symbols, deltas)
        self._feedback_count = (self._feedback_count + 1) & 0xFF
        return packet, len(symbols)


class TransportFeedback(PeriodicRtcp):
    """Sends transport feedback for one transport every ``interval_s``.

    ``ssrcs()`` gives (sender SSRC, media SSRC) for the packets, or None while unknown;
    libwebrtc takes feedback only when the media SSRC is one of its own. A round that
    cannot be sent (ICE down) is not repeated: the sender's estimator sees the gap anyway.
    """

    what = "transport feedback"

    def __init__(self, send: SendRtcp, ssrcs: Ssrcs, interval_s: float = 0.05, name: str = "") -> None:
        super().__init__(send, ssrcs, interval_s, name)
        self.recorder = ArrivalRecorder()

    def on_packet(self, seq: int, arrival_s: Optional[float] = None) -> None:
        self.recorder.add(seq, int((time.monotonic() if arrival_s is None else arrival_s) * 1_000_000))

    def packets(self, sender_ssrc: int, media_ssrc: int) -> list[bytes]:
        return self.recorder.build(sender_ssrc, media_ssrc)
