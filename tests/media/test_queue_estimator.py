"""The sending half of transport-cc: send records read against real feedback packets.

The feedback is built by the receiver half (``media.twcc.ArrivalRecorder``) and parsed
from its bytes, as the server reads Chromium's; the link is simulated: a rate, a base
delay, loss.
"""

from __future__ import annotations

from typing import Optional

import pytest

from media import bitrate_cap, twcc
from media.bitrate_cap import LinkCap
from media.queue_estimator import QueueEstimator, QueueSample

BASE_DELAY_S = 0.020
CLOCK_OFFSET_S = 5000.0  # the receiver's clock has nothing to do with ours


class Link:
    """Packets through a bottleneck of ``rate_bps``: each leaves when the one before has."""

    def __init__(self, estimator: QueueEstimator, rate_bps: float) -> None:
        self.estimator = estimator
        self.rate_bps = rate_bps
        self.recorder = twcc.ArrivalRecorder()
        self.seq = 0
        self.free_at = 0.0
        self.samples: list[QueueSample] = []
        self.lose: set[int] = set()
        self.offset_s = CLOCK_OFFSET_S

    def send(self, at: float, size: int = 1000, video: bool = True) -> None:
        seq = self.seq & 0xFFFF
        self.seq += 1
        self.estimator.sent(seq, at, size, video)
        start = max(at + BASE_DELAY_S, self.free_at)
        self.free_at = start + size * 8 / self.rate_bps
        if seq not in self.lose:
            self.recorder.add(seq, int((self.free_at + self.offset_s) * 1e6))

    def report(self) -> Optional[QueueSample]:
        sample = None
        for packet in self.recorder.build(1, 2):
            sample = self.estimator.feedback(twcc.parse_feedback(packet))
            if sample is not None:
                self.samples.append(sample)
        return sample


def drive(link: Link, seconds: float, bps: float, start: float = 0.0, packet: int = 1000, fps: int = 20) -> float:
    """Frames at ``fps`` of ``bps`` (each a burst of packets), feedback every 50 ms."""
    t = start
    per_frame = bps / 8 / fps
    next_report = t + 0.05
    while t < start + seconds:
        left = per_frame
        burst = t
        while left > 0:
            link.send(burst, int(min(packet, left)))
            left -= packet
            burst += 0.0001
        t += 1 / fps
        while next_report <= t:
            link.report()
            next_report += 0.05
    return t


def test_a_link_with_room_reads_no_queue_and_what_it_delivered() -> None:
    link = Link(QueueEstimator(), rate_bps=1_000_000)
    drive(link, 3.0, bps=300_000)
    last = link.samples[-1]
    # a frame's packets wait behind the first for the frame's own size: no standing queue
    assert last.queue_s < 0.005
    assert abs(last.slope) < 0.02
    assert last.through_bps is not None and 250_000 < last.through_bps < 350_000
    assert last.loss == 0.0
    assert link.estimator.unknown == 0


def test_an_overfull_link_reads_a_rising_queue() -> None:
    link = Link(QueueEstimator(), rate_bps=300_000)
    t = drive(link, 2.0, bps=200_000)
    assert link.samples[-1].queue_s < 0.005
    drive(link, 1.0, bps=600_000, start=t)  # twice what the link carries
    last = link.samples[-1]
    assert last.queue_s > 0.3
    assert 0.6 < last.slope < 1.4  # a second of delay gained per second sent
    assert last.through_bps is not None and 250_000 < last.through_bps < 350_000  # the link's rate


def test_a_link_the_audio_all_but_fills_reads_the_video_it_delivers_not_unknown() -> None:
    """80 kbit/s with 64 kb/s of audio on it, 40 kb/s of video sent and two video packets in
    three dropped (a tbf's full queue): the audio's packets keep coming, the video's arrive
    one or none per half second. What was delivered is that trickle, read over a fixed half
    second of arrivals; measured between the first and last video packet in the window, it
    read as unknown (None), and audio first waited 16 s for it in the field bench."""
    link = Link(QueueEstimator(), rate_bps=80_000)
    t, next_report, next_video, videos = 0.0, 0.05, 0.0, 0
    while t < 6.0:
        link.send(t, 160, video=False)  # Opus, 20 ms
        if t >= next_video:  # 40 kb/s of video: a 1000-byte packet every 200 ms
            if videos % 3:
                link.lose.add(link.seq & 0xFFFF)
            videos += 1
            link.send(t, 1000)
            next_video += 0.2
        t += 0.02
        while next_report <= t:
            link.report()
            next_report += 0.05
    late = link.samples[-40:]
    assert len(late) == 40 and all(s.through_bps is not None and s.through_bps <= 32_000 for s in late)
    assert sum(s.through_bps or 0 for s in late) / len(late) < 20_000  # about 13 kb/s


def test_through_is_unknown_until_feedback_covers_its_window() -> None:
    link = Link(QueueEstimator(), rate_bps=1_000_000)
    drive(link, 0.3, bps=300_000)
    assert link.samples and all(s.through_bps is None for s in link.samples)


def test_loss_is_the_share_of_video_packets_reported_lost() -> None:
    link = Link(QueueEstimator(), rate_bps=2_000_000)
    link.lose = {seq for seq in range(0, 2000) if seq % 10 == 3}
    drive(link, 3.0, bps=400_000)
    loss = link.samples[-1].loss
    assert loss is not None and 0.07 < loss < 0.13


def test_the_reference_time_wrapping_is_no_jump_in_delay() -> None:
    link = Link(QueueEstimator(), rate_bps=1_000_000)
    # arrivals cross the 24-bit reference time's wrap (64 ms ticks: every 12.4 days)
    link.offset_s = (0xFFFFFF * twcc.REFERENCE_TICK_US) / 1e6 - 1.0
    drive(link, 3.0, bps=300_000)
    assert max(s.queue_s for s in link.samples) < 0.005


def test_feedback_for_nothing_we_sent_is_counted_and_ignored() -> None:
    estimator = QueueEstimator()
    recorder = twcc.ArrivalRecorder()
    for seq in range(10):
        recorder.add(seq, 1_000_000 + seq * 1000)
    samples = [estimator.feedback(twcc.parse_feedback(p)) for p in recorder.build(1, 2)]
    assert samples == [None]
    assert estimator.unknown == 10


def sample(queue_s: float, slope: float = 0.0, through: Optional[float] = None, loss: Optional[float] = 0.0) -> QueueSample:
    return QueueSample(queue_s, slope, through, loss)


def feed(cap: LinkCap, s: QueueSample, sending: float, now: float) -> Optional[float]:
    return cap.queue(s.queue_s, s.slope, s.through_bps, s.loss, sending, now)


def test_a_rising_queue_cuts_to_what_the_link_delivered_without_compounding() -> None:
    cap = LinkCap()
    assert feed(cap, sample(0.0, through=900_000), 1_000_000, 0.0) is None
    assert feed(cap, sample(0.05, slope=0.5, through=400_000), 1_000_000, 0.1) == pytest.approx(0.85 * 400_000)
    # the publisher has not followed yet: the queue still rises, the link still delivers 400
    assert feed(cap, sample(0.10, slope=0.5, through=400_000), 1_000_000, 0.2) == pytest.approx(340_000)
    assert feed(cap, sample(0.15, slope=0.5, through=400_000), 1_000_000, 0.6) == pytest.approx(340_000)
    assert cap.queue_cuts == 2
    # a queue that drains (falling) neither cuts nor grows
    assert feed(cap, sample(0.05, slope=-0.3, through=380_000), 340_000, 1.2) == pytest.approx(340_000)


def test_a_standing_full_queue_cuts_once_per_full_cut_interval_and_drains() -> None:
    cap = LinkCap()
    feed(cap, sample(0.3, slope=0.0, through=300_000), 500_000, 0.0)
    first = cap.bps
    assert first == pytest.approx(0.7 * 300_000)  # less enough to drain 300 ms
    assert feed(cap, sample(0.3, slope=0.0, through=300_000), 500_000, 0.5) == first
    later = feed(cap, sample(0.3, slope=0.0, through=250_000), 300_000, 0.5 + bitrate_cap.FULL_CUT_S)
    assert later is not None and later < first


def test_an_empty_queue_grows_the_cap_eight_percent_a_second_up_to_the_release() -> None:
    cap = LinkCap()
    feed(cap, sample(0.05, slope=0.5, through=400_000), 1_000_000, 0.0)
    start = cap.bps
    assert start is not None
    now = 1.0
    for _ in range(10):  # a second of feedback every 100 ms
        now += 0.1
        feed(cap, sample(0.0, through=400_000), start, now)
    assert cap.bps == pytest.approx(start * 1.08 ** 0.9, rel=0.02)
    # too much loss holds it
    held = cap.bps
    feed(cap, sample(0.0, through=400_000, loss=0.3), start, now + 0.1)
    feed(cap, sample(0.0, through=400_000, loss=0.3), start, now + 0.2)
    assert cap.bps == held


def test_with_transport_feedback_the_reports_round_trip_stands_down() -> None:
    cap = LinkCap()
    feed(cap, sample(0.05, slope=0.5, through=400_000), 1_000_000, 0.0)
    cut = cap.bps
    # a receiver report whose round trip stands 300 ms over the base would cut; here it must not
    cap.report(0, 1000, 340_000, 2.0, rtt_s=0.02)
    cap.report(0, 1100, 340_000, 4.0, rtt_s=0.32)
    cap.report(0, 1200, 340_000, 6.0, rtt_s=0.32)
    assert cap.bps == cut
    # its loss rule still stands: 30 % lost cuts
    cap.report(40, 1330, 340_000, 8.0)
    assert cap.bps is not None and cut is not None and cap.bps < cut


def test_a_link_narrower_than_audio_and_a_hundred_kilobits_caps_the_video_under_it() -> None:
    """150 kbit/s with about 57 kb/s of audio on it (Opus and its headers): the video must go
    under 100 kb/s, where the old floor held it and the link stayed overfull (1.6-2.9 fps in
    the field bench, the direct call 9)."""
    cap = LinkCap()
    now, sending = 0.0, 300_000.0
    for _ in range(20):  # the queue stands full; the link delivers 85 kb/s of video whatever is sent
        now += bitrate_cap.FULL_CUT_S
        feed(cap, sample(0.3, slope=0.0, through=85_000), sending, now)
        sending = cap.bps or sending
    assert cap.bps is not None and cap.bps < 100_000 and cap.bps >= bitrate_cap.FLOOR_BPS
