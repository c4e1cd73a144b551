"""Transport feedback packets in the format of draft-holmer-rmcat-transport-wide-cc-extensions-01."""

from __future__ import annotations

import asyncio
import random

import pytest

from media import twcc
from media.twcc import (
    LARGE_DELTA,
    NOT_RECEIVED,
    SMALL_DELTA,
    ArrivalRecorder,
    SequenceUnwrapper,
    TransportFeedback,
    encode_feedback,
    parse_feedback,
)


def test_draft_examples_of_packet_status_chunks() -> None:
    # 3.1.3, example 1: a run length chunk of 221 "packet not received".
    assert twcc._chunks([NOT_RECEIVED] * 221) == bytes.fromhex("00dd")
    # 3.1.4: a one-bit status vector chunk: 1x not received, 5x received, 3x not
    # received, 3x received, 2x not received.
    symbols = [0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0]
    assert twcc._chunks(symbols) == bytes.fromhex("9f1c")


def test_a_whole_packet_byte_by_byte() -> None:
    packet = encode_feedback(
        sender_ssrc=0x11111111, media_ssrc=0x22222222, base_seq=100, feedback_count=7,
        reference_time=1, symbols=[SMALL_DELTA, NOT_RECEIVED, LARGE_DELTA], deltas=[4, -8],
    )
    assert packet == bytes.fromhex(
        "afcd0006"  # V=2, P=1, FMT=15; PT=205; length 6 words
        "11111111" "22222222"  # SSRC of packet sender, of media source
        "0064" "0003"  # base sequence number 100, packet status count 3
        "000001" "07"  # reference time 1 (x 64 ms), feedback packet count 7
        "d200"  # two-bit status vector: small, not received, large
        "04" "fff8"  # deltas: +1 ms, -2 ms (250 us ticks)
        "000003"  # RTCP padding, its length in the last byte
    )
    fb = parse_feedback(packet)
    assert fb.statuses == [1, 0, 2] and fb.feedback_count == 7 and fb.base_seq == 100
    assert fb.arrivals_us == {100: 65_000, 102: 63_000}


def test_unpadded_packet_has_no_p_bit() -> None:
    packet = encode_feedback(1, 2, 0, 0, 0, [SMALL_DELTA] * 14, [1] * 14)
    # 20 header + 2 chunk (a run of 14 small deltas) + 14 deltas = 36: no padding
    assert packet[0] == 0x8F and len(packet) == 36 and packet[20:22] == bytes.fromhex("200e")


def test_sequence_unwrapper_crosses_the_wrap() -> None:
    unwrap = SequenceUnwrapper()
    values = [unwrap.unwrap(s) for s in (65534, 65535, 0, 1, 65535, 2)]
    assert [v - values[0] for v in values] == [0, 1, 2, 3, 1, 4]


def test_recorder_round_trip_with_loss_reordering_and_wrap() -> None:
    rng = random.Random(7)
    recorder = ArrivalRecorder()
    start_us = 1_000_000_000
    sent = [(65000 + i) & 0xFFFF for i in range(2000)]
    arrivals: dict[int, int] = {}
    t = start_us
    for seq in sent:
        t += rng.choice([0, 250, 1000, 5000, 20000])
        if rng.random() < 0.05:
            continue  # lost
        arrivals[seq] = t
    order = list(arrivals)
    for i in range(0, len(order) - 1, 37):  # a few swapped neighbours
        order[i], order[i + 1] = order[i + 1], order[i]
    reported: dict[int, int] = {}
    lost: set[int] = set()
    for i, seq in enumerate(order):
        recorder.add(seq, arrivals[seq])
        if i % 25 == 24:
            for packet in recorder.build(0x1, 0x2):
                fb = parse_feedback(packet)
                reported.update(fb.arrivals_us)
                lost |= {(fb.base_seq + k) & 0xFFFF for k, s in enumerate(fb.statuses) if s == 0}
    for packet in recorder.build(0x1, 0x2):
        reported.update(parse_feedback(packet).arrivals_us)
    # every packet is reported once, received or lost; times within one tick
    late = recorder.late
    assert late < 60
    assert len(reported) >= len(arrivals) - late
    for seq, when in reported.items():
        assert abs(when - arrivals[seq]) <= twcc.DELTA_TICK_US, seq
    assert not (set(reported) & (lost - set(reported)))


def test_long_gaps_split_packets_and_counts_increase() -> None:
    recorder = ArrivalRecorder()
    recorder.add(10, 0)
    recorder.add(11, 9_000_000)  # 9 s later: beyond a 16-bit delta (8.19 s)
    recorder.add(1200, 9_100_000)  # a burst of 1188 lost packets
    packets = recorder.build(1, 2)
    parsed = [parse_feedback(p) for p in packets]
    assert len(parsed) >= 2
    assert [p.feedback_count for p in parsed] == list(range(len(parsed)))
    got = {}
    for p in parsed:
        got.update(p.arrivals_us)
    assert set(got) == {10, 11, 1200}
    assert abs(got[11] - 9_000_000) <= 250 and abs(got[1200] - 9_100_000) <= 250
    assert all(len(p) <= 1200 for p in packets)
    assert recorder.build(1, 2) == []


async def test_sender_sends_periodically_and_closes() -> None:
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    feedback = TransportFeedback(send, lambda: (5, 6), interval_s=0.02)
    feedback.start()
    feedback.start()
    for seq in range(20):
        feedback.on_packet(seq)
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    await feedback.close()
    await feedback.close()
    assert len(sent) >= 2
    seqs = set()
    for data in sent:
        fb = parse_feedback(data)
        assert (fb.sender_ssrc, fb.media_ssrc) == (5, 6)
        seqs |= set(fb.arrivals_us)
    assert seqs == set(range(20))


@pytest.mark.parametrize("bad", [b"", b"\x80" * 19, bytes.fromhex("8fcd0009") + b"\x00" * 16])
def test_parse_rejects_malformed(bad: bytes) -> None:
    with pytest.raises(ValueError):
        parse_feedback(bad)
