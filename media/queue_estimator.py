"""The sender's half of transport-cc: how full a subscriber's link's queue is, packet by packet.

The relay forwards to each subscriber what its publisher sends, and the subscriber's link
cap (``media/bitrate_cap.py``) tells the publisher how much that may be. Receiver reports
measure the round trip about once a second: on a link whose queue fills (a tbf, a mobile
carrier's buffer) the video froze for that long before the cap heard of it (issue 10:
freezes of 2.4-5 s per 20 s against the direct call's 0.2-1.6 s). With transport-cc
negotiated on the subscriber's leg, Chromium reports the arrival of every packet we send,
10-20 times a second (RTPFB FMT=15, parsed by ``media/twcc.py``), as it does for its own
sender's estimator. From our send times and its arrival times come:

* the *queue*: each packet's one-way delay less the smallest of the last
  :data:`BASE_WINDOW_S` (the two clocks' offset cancels; their drift over that window is
  microseconds). Read on the first packet of each send burst: the packets of one frame
  leave together, and the later ones wait behind the first by the frame's own size, which
  is no standing queue;
* its *trend*: the slope of those delays against send time over :data:`TREND_S`
  (libwebrtc's trendline estimator reads the same slope: above zero, the link is overfull
  now; below, it drains);
* what the link *delivered* of the video over the last :data:`THROUGH_S` of arrivals (of
  any packet, audio too): when the queue fills, that is what the link carries. The window
  is fixed, so a link that delivers a video packet or none in it (an 80 kbit/s link that
  the audio all but fills) reads as the trickle it is; measured between the first and last
  video packet delivered, it read as unknown for 13 s, and audio first waited that long;
* the share of video packets reported *lost*.

Nothing here knows aiortc: ``media/tap.py`` numbers the packets we send and hands the
feedback in.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import NamedTuple, Optional

from .twcc import NOT_RECEIVED, REFERENCE_TICK_US, Feedback

#: The queue is read against the smallest delay of this long.
BASE_WINDOW_S = 30.0
#: A delay further than this from the base is a clock's jump (a new path, a wrapped
#: reference time), not a queue: the base starts again.
DISCONTINUITY_S = 5.0
#: Packets sent within this of the previous one belong to its burst (a frame's packets
#: leave back to back, well under a millisecond apart).
BURST_GAP_S = 0.002
#: The trend is the slope over the burst heads sent in the last TREND_S, once there are
#: TREND_MIN_POINTS of them spanning at least half of it.
TREND_S = 0.6
TREND_MIN_POINTS = 6
#: The video delivered is counted over this long (by arrival time): at a narrowing link
#: a longer window still counts what the wider one carried (1 s: three cuts, 0.9 s, to reach
#: the new rate), a shorter one holds too few packets at 200 kb/s.
THROUGH_S = 0.5
#: Loss is counted over the video packets reported in this long.
LOSS_S = 1.0
#: Send records are kept in a ring of this many (a power of two), indexed by sequence
#: number: 14 s of a 2.5 Mb/s stream, where Chromium reports within 250 ms. (A dict
#: expired from its front was tried: iterating past the deleted slots at its front made
#: each send cost up to 100 us.)
RING = 4096


class WindowedMin:
    """The smallest value added over the last ``window_s`` (a monotonic deque: amortised O(1))."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        # (time, value) with increasing values: the front is the window's smallest
        self._points: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, at: float, value: float) -> float:
        """Add ``value`` seen at ``at``; returns the window's smallest."""
        points = self._points
        while points and points[-1][1] >= value:
            points.pop()
        points.append((at, value))
        while at - points[0][0] > self.window_s:
            points.popleft()
        return points[0][1]

    @property
    def value(self) -> Optional[float]:
        return self._points[0][1] if self._points else None

    def clear(self) -> None:
        self._points.clear()


class _Sent(NamedTuple):
    seq: int
    at: float
    size: int
    video: bool
    head: bool


@dataclass(frozen=True)
class QueueSample:
    """What one feedback packet says about the subscriber's link."""

    #: Standing queue (s): the smallest delay over the base of the burst heads reported.
    queue_s: float
    #: Seconds of delay gained per second sent over the last TREND_S (0: unknown).
    slope: float
    #: Video delivered over the last THROUGH_S (b/s), None until that long has arrived.
    through_bps: Optional[float]
    #: Share of the video packets reported lost over the last LOSS_S, None if none reported.
    loss: Optional[float]


class QueueEstimator:
    """Send records of one transport against the subscriber's transport feedback."""

    def __init__(self) -> None:
        self._sent: list[Optional[_Sent]] = [None] * RING  # by 16-bit transport sequence number
        self._last_sent_at = -1.0
        self._reference: Optional[tuple[int, int]] = None  # (24-bit reference, unwrapped)
        self._base = WindowedMin(BASE_WINDOW_S)  # the smallest delay: the link with no queue
        self._trend: collections.deque[tuple[float, float]] = collections.deque()  # (send time, head delay)
        self._delivered: collections.deque[tuple[float, int]] = collections.deque()  # (arrival, size), video
        self._first_arrival: Optional[float] = None  # of any packet, since the last restart
        self._newest_arrival: Optional[float] = None
        self._outcomes: collections.deque[tuple[float, bool]] = collections.deque()  # (send time, received), video
        self.feedbacks = 0
        self.unknown = 0  # reported sequence numbers we have no record of

    def sent(self, seq: int, at: float, size: int, video: bool) -> None:
        """We sent packet ``seq`` (transport-wide, 16 bits) of ``size`` bytes at ``at`` (monotonic s)."""
        head = at - self._last_sent_at > BURST_GAP_S
        self._last_sent_at = at
        self._sent[seq % RING] = _Sent(seq, at, size, video, head)

    def feedback(self, fb: Feedback) -> Optional[QueueSample]:
        """Read one feedback packet; None if it reports nothing we sent."""
        self.feedbacks += 1
        shift_us = self._reference_shift(fb.reference_time)
        heads: list[float] = []
        delays: list[float] = []
        latest_sent = None
        for index, status in enumerate(fb.statuses):
            seq = (fb.base_seq + index) & 0xFFFF
            record = self._sent[seq % RING]
            if record is None or record.seq != seq:
                self.unknown += 1  # never sent, reported before, or overwritten long since
                continue
            self._sent[seq % RING] = None
            latest_sent = record.at if latest_sent is None else max(latest_sent, record.at)
            received = status != NOT_RECEIVED
            if record.video:
                self._outcomes.append((record.at, received))
            if not received:
                continue
            arrival = (fb.arrivals_us[seq] + shift_us) / 1e6
            delay = arrival - record.at
            base = self._base.value
            if base is not None and abs(delay - base) > DISCONTINUITY_S:
                self._restart()
            if self._first_arrival is None:
                self._first_arrival = arrival
            if self._newest_arrival is None or arrival > self._newest_arrival:
                self._newest_arrival = arrival
            self._base.add(record.at, delay)
            delays.append(delay)
            if record.head:
                heads.append(delay)
                self._trend.append((record.at, delay))
            if record.video:
                self._delivered.append((arrival, record.size))
        if latest_sent is None:
            return None
        self._expire(latest_sent)
        base = self._base.value
        queue = 0.0 if base is None or not delays else max(0.0, min(heads or delays) - base)
        return QueueSample(queue, self._slope(), self._through(), self._loss())

    def _reference_shift(self, reference: int) -> int:
        """Microseconds to add to this feedback's arrivals so that its 24-bit reference
        time (64 ms ticks, wrapping every 12 days) continues the previous feedback's."""
        raw = reference & 0xFFFFFF
        if self._reference is None:
            unwrapped = raw
        else:
            delta = (raw - self._reference[0]) & 0xFFFFFF
            if delta >= 0x800000:
                delta -= 0x1000000
            unwrapped = self._reference[1] + delta
        self._reference = (raw, unwrapped)
        return (unwrapped - reference) * REFERENCE_TICK_US

    def _restart(self) -> None:
        self._base.clear()
        self._trend.clear()
        self._delivered.clear()
        self._first_arrival = self._newest_arrival = None

    def _expire(self, latest_sent: float) -> None:
        while self._trend and latest_sent - self._trend[0][0] > TREND_S:
            self._trend.popleft()
        while self._outcomes and latest_sent - self._outcomes[0][0] > LOSS_S:
            self._outcomes.popleft()
        newest = self._newest_arrival
        while self._delivered and newest is not None and newest - self._delivered[0][0] > THROUGH_S:
            self._delivered.popleft()

    def _slope(self) -> float:
        """Least-squares slope of head delay over send time (0 with too few points)."""
        points = self._trend
        if len(points) < TREND_MIN_POINTS or points[-1][0] - points[0][0] < TREND_S / 2:
            return 0.0
        n = len(points)
        mean_t = sum(t for t, _ in points) / n
        mean_d = sum(d for _, d in points) / n
        var = sum((t - mean_t) ** 2 for t, _ in points)
        if var <= 0:
            return 0.0
        return sum((t - mean_t) * (d - mean_d) for t, d in points) / var

    def _through(self) -> Optional[float]:
        """The video delivered over the THROUGH_S of arrivals up to the newest (None until
        feedback has covered that long)."""
        first, newest = self._first_arrival, self._newest_arrival
        if first is None or newest is None or newest - first < THROUGH_S:
            return None
        return sum(size for _, size in self._delivered) * 8 / THROUGH_S

    def _loss(self) -> Optional[float]:
        if not self._outcomes:
            return None
        return sum(1 for _, received in self._outcomes if not received) / len(self._outcomes)
