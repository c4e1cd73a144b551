"""The subscriber's leg: a weak subscriber link caps its publisher's bitrate.

The relay forwards the publisher's encoded frames unchanged, so a subscriber on a link
narrower than the publisher's stream (an inspector on a weak office or mobile link, a
phone receiving the inspector's camera) loses whatever does not fit, and the publisher,
whose own uplink is fine, never hears of it. A peer-to-peer call has no such gap: the
sender's estimator sees the receiver's link. Galène closes it the same way as here: the
publisher is told to send no more than its weakest subscriber carries.

* :class:`LinkCap`, one per subscriber video track, turns the subscriber's receiver
  reports (about once a second, more often with NACKs) into a cap. Its loss rules are
  libwebrtc's loss-based controller's: over at least 50 packets, more than 10 % lost cuts
  the rate by half the loss, under 2 % lets it grow 8 % a second, in between holds (random
  loss on a mobile link is repaired by NACK/RTX and says nothing about capacity) unless
  the RTT shows the queue empty, when it grows too. Chromium's receive-side estimate
  (REMB) is not used: it reads the server's send jitter as congestion (see
  ``media.relay.LINK_SHARE``). Loss alone comes late on a link with a deep queue: a tbf or
  a mobile carrier's buffer delays packets for hundreds of milliseconds before it drops
  any, and the video freezes meanwhile. So the round trip each report carries (LSR/DLSR)
  is watched too: once it stands :data:`QUEUE_DELAY_S` over the smallest seen, the link's
  queue is filling, and the cap comes down at once to what got through less enough to
  drain that queue (libwebrtc's delay-based controller, on overuse, goes to 0.85 x the
  received rate); growth waits while the queue is up, and never goes past 1.5 x what is
  sent.
  Where the subscriber's leg has transport-cc (``media/queue_estimator.py``), the queue
  is read from its feedback ten or more times a second instead (:meth:`LinkCap.queue`),
  as libwebrtc's delay-based controller reads it: a rising or standing queue cuts the cap
  to 0.85 x what the link delivered, an empty one lets it grow 8 %/s; the receiver
  reports' loss rule stays beside it (the smaller cap wins, as in libwebrtc).
* :class:`RembSender`, one per publishing peer, sends the smallest cap of the publisher's
  subscribers to the publisher as REMB, within 0.1 s of a change and else every second.
  libwebrtc's send-side estimator (which runs on our transport-wide feedback) takes a REMB
  as an upper bound; when the caps are gone it is sent a high value a few times, since
  libwebrtc keeps the last one.

Nothing here knows aiortc; ``media/peer.py`` wires it.
"""

from __future__ import annotations

import collections
import logging
import math
import struct
from typing import Callable, NamedTuple, Optional

from .queue_estimator import WindowedMin
from .rtcp_loop import PeriodicRtcp, SendRtcp, Ssrcs

logger = logging.getLogger(__name__)

#: Loss (fraction) above which the cap comes down, and under which it may grow.
DECREASE_LOSS = 0.10
INCREASE_LOSS = 0.02
#: Growth per second (between decisions) under INCREASE_LOSS, libwebrtc's 8 %/s: per
#: decision it grew too slowly on a slow link, whose 50 packets take seconds.
INCREASE = 1.08
INCREASE_MAX_STEP_S = 3.0
#: The cap grows to at most this multiple of the video sent.
GROWTH_BOUND = 1.5
#: The cap (of the publisher's video) never goes below this; a link that loses even here
#: goes audio first (``media.relay.ForwardedTrack.link_report``). libwebrtc's own floor is
#: 30 kb/s. At 100 kb/s an inspector on a 150 kbit/s downlink (3 % loss) got 1.6-2.9 fps
#: with 12-15 s of freezes in 20 s, the direct call 9 fps: the floor's video and the audio
#: (about 57 kb/s with its headers) overfilled the link for good, and it never lost enough
#: of what was sent to count as weak.
FLOOR_BPS = 40_000
#: Loss alone (receiver reports, no queue in sight) cuts no further than this: random loss on
#: a mobile link says nothing about its capacity, and with FLOOR_BPS the only floor the
#: inspector's video at 250 kbit/s with 10 % loss got 10.6 fps against the direct call's 13.6 (the cap
#: ratcheted down to 53 kb/s; 15.5 against 13.3 with the old 100 kb/s floor). A queue (the
#: link is full) cuts to FLOOR_BPS, and so does loss over HEAVY_LOSS, which no NACK repairs.
LOSS_FLOOR_BPS = 100_000
HEAVY_LOSS = 0.25
#: A cap grown past this is dropped: the link carries what a 720p publisher sends.
RELEASE_BPS = 3_000_000
#: A decision needs this many packets expected since the last one, and this much time.
#: The fraction in one receiver report covers a second: on a weak link 5-30 packets, where
#: one lost packet reads as 3-20 % (measured: 14-17 % reported at 30-210 kb/s on a link
#: with 5 % random loss), and a cut on each would ratchet the cap down to its floor.
MIN_PACKETS = 50
MIN_STEP_S = 0.8
#: After a change, packets sent before the publisher could follow it do not count: its
#: encoder takes about a second to reach a new REMB, and the link's queue holds more.
#: Without this, each cut was followed by another for loss the first had already cured
#: (measured: 420 -> 100 kb/s in 6 s on a link that carries 300).
SETTLE_S = 1.5
#: The REMB bounds the publisher's whole transport: its audio comes on top of the video cap.
AUDIO_ALLOWANCE_BPS = 64_000
#: The REMB sent when the caps are gone (libwebrtc keeps the last REMB as its bound).
UNCAPPED_BPS = 30_000_000
UNCAPPED_REPEATS = 3

#: Round trip time over the smallest seen that says the link's queue is filling, and under
#: which the cap may grow again. The base is the smallest RTT of the last MIN_RTT_WINDOW_S.
QUEUE_DELAY_S = 0.12
GROW_DELAY_S = 0.05
MIN_RTT_WINDOW_S = 30.0
#: An RTT measured with a sender report sent sooner than this after a change says nothing
#: of it: the REMB takes up to RembSender's interval to go out, the encoder as long again.
QUEUE_REACT_S = 0.6
#: A queue cut takes the cap to what got through, less enough to drain the standing queue
#: within about a second (a 300 ms queue: 0.7x), and never below this share of it.
QUEUE_BACKOFF_MIN = 0.5
#: What got through is read over the reports of about this long (at least RECENT_PACKETS).
RECENT_S = 1.0
RECENT_PACKETS = 20

#: Transport feedback (``LinkCap.queue``): a queue over RISING_QUEUE_S that still rises
#: faster than RISING_SLOPE (s of delay per s sent: the link is that share overfull), or
#: any over FULL_QUEUE_S, cuts the cap; to DELAY_BACKOFF x what the link delivered
#: (libwebrtc's 0.85), less enough to drain a standing queue. A rising queue cuts again
#: after RISING_CUT_S (what was delivered meanwhile is the link's rate again, so cuts do
#: not compound), a standing one after FULL_CUT_S (the publisher's encoder takes about a
#: second to follow a REMB, and the queue drains only then).
RISING_QUEUE_S = 0.03
RISING_SLOPE = 0.05
FULL_QUEUE_S = 0.1
DELAY_BACKOFF = 0.85
RISING_CUT_S = 0.4
FULL_CUT_S = 1.2
#: Under this queue, not rising, at most DECREASE_LOSS lost and GROW_AFTER_CUT_S after a
#: cut, the cap grows (INCREASE per second, bounded by GROWTH_BOUND x what is sent).
GROW_QUEUE_S = 0.02
GROW_AFTER_CUT_S = 0.5
GROW_MAX_STEP_S = 0.5

RTCP_PSFB = 206
FMT_APPLICATION = 15


class ReceiverReport(NamedTuple):
    """What one receiver report block says about the subscriber's link."""

    cumulative_lost: int
    highest_sequence: int
    #: From LSR/DLSR, None when the report names no sender report of ours.
    rtt_s: Optional[float] = None
    #: How long ago the sender report that RTT measures was sent: the queue it saw is as old.
    rtt_age_s: float = 0.0


class LinkCap:
    """A cap on the video one subscriber's link carries, from its receiver reports."""

    def __init__(self) -> None:
        self.bps: Optional[float] = None
        self._changed_at = -math.inf
        self._counted_from = -math.inf  # when the packets of the next decision began
        self._settled = False
        self._last: Optional[tuple[int, int]] = None  # (cumulative lost, highest sequence) at the last decision
        self.loss: Optional[float] = None  # over the last decision's packets
        self.rtt_s: Optional[float] = None  # the last report's
        self.changes = 0
        self.queue_cuts = 0
        self._rtts = WindowedMin(MIN_RTT_WINDOW_S)
        self._history: collections.deque[tuple[float, int, int]] = collections.deque()  # (time, lost, seq), last 2 s
        #: Transport feedback reads the queue (:meth:`queue`): the reports' round trip
        #: rules stand down, their loss rule stays.
        self.delay_based = False
        self.queue_s: Optional[float] = None
        self._delay_cut_at = -math.inf
        self._grown_at: Optional[float] = None

    def report(self, cumulative_lost: int, highest_sequence: int, sending_bps: float, now: float,
               rtt_s: Optional[float] = None, rtt_age_s: float = 0.0) -> Optional[float]:
        """A receiver report's counts, while video is sent at ``sending_bps``.

        ``rtt_s``: the round trip of a sender report sent ``rtt_age_s`` ago."""
        queue_s = self._queue_delay(rtt_s, now)
        if self.delay_based:
            queue_s = None  # transport feedback reads the queue, far sooner
        if queue_s is not None and now - rtt_age_s < self._changed_at + QUEUE_REACT_S:
            # The sender report sat in the queue of before the last change took effect:
            # cutting again for it would cut twice for one queue (measured: a second cut
            # 1.9 s after the first took a 240 kb/s cap to the floor).
            queue_s = min(queue_s, GROW_DELAY_S)
        if self._history and highest_sequence < self._history[-1][2]:
            self._history.clear()  # a new stream
        self._history.append((now, cumulative_lost, highest_sequence))
        while now - self._history[0][0] > 2 * RECENT_S:
            self._history.popleft()
        if self._last is None or highest_sequence < self._last[1] or (not self._settled and now - self._changed_at >= SETTLE_S):
            # the first report, a new stream, or the first after a change settled: count from here
            self._last = (cumulative_lost, highest_sequence)
            self._settled = True
            self._counted_from = now
            return self.bps
        if not self._settled:
            return self.bps
        expected = highest_sequence - self._last[1]
        queued = queue_s is not None and queue_s > QUEUE_DELAY_S
        if (expected < MIN_PACKETS and not queued) or expected <= 0 or now - self._changed_at < MIN_STEP_S:
            return self.bps
        loss = min(1.0, max(0.0, (cumulative_lost - self._last[0]) / expected))
        self._last = (cumulative_lost, highest_sequence)
        self.loss = loss
        span_s, self._counted_from = now - self._counted_from, now
        base = sending_bps if self.bps is None else min(self.bps, sending_bps)
        cut = True
        if queued and sending_bps > 0:
            # The queue fills: what got through is what the link carries now. The loss of
            # a handful of packets says nothing (measured: "83 % of 6" took a 430 kb/s cap
            # to the floor), so it is read over the last second's reports.
            recent = self._recent_loss(now)
            through = 1.0 if recent is None else 1 - recent
            backoff = max(QUEUE_BACKOFF_MIN, 1 - (queue_s or 0.0))
            self.bps = max(FLOOR_BPS, min(base, backoff * sending_bps * through))
            self.queue_cuts += 1
        elif loss > DECREASE_LOSS and sending_bps > 0:
            # not under LOSS_FLOOR_BPS for moderate loss alone, nor above a cap the queue set lower
            floor = FLOOR_BPS if loss > HEAVY_LOSS else min(base, LOSS_FLOOR_BPS)
            self.bps = max(FLOOR_BPS, floor, base * (1 - 0.5 * loss))
        elif self.bps is not None and not self.delay_based and self._may_grow(loss, queue_s):
            # Grow only while the publisher uses most of it: a cap far above what is sent
            # has not been shown to fit (libwebrtc's delay-based bound: 1.5x what arrives).
            self.bps = min(self.bps * INCREASE ** min(INCREASE_MAX_STEP_S, span_s), max(self.bps, GROWTH_BOUND * sending_bps))
            if self.bps >= RELEASE_BPS:
                self.bps = None
            cut = False
        else:
            return self.bps
        logger.debug("link cap %s: %.0f %% of %d packets lost, queue %s, at %.0f kb/s sent",
                     "none" if self.bps is None else f"{self.bps / 1000:.0f} kb/s", loss * 100, expected,
                     "-" if queue_s is None else f"{queue_s * 1000:.0f} ms", sending_bps / 1000)
        self._changed_at = now
        self._settled = not cut  # a cut settles first; growth goes on
        self.changes += 1
        return self.bps

    def queue(self, queue_s: float, slope: float, through_bps: Optional[float], loss: Optional[float],
              sending_bps: float, now: float) -> Optional[float]:
        """One transport feedback's reading of the link (``media.queue_estimator.QueueSample``),
        while video is sent at ``sending_bps``."""
        self.delay_based = True
        self.queue_s = queue_s
        rising = queue_s > RISING_QUEUE_S and slope > RISING_SLOPE
        full = queue_s > FULL_QUEUE_S
        since_cut = now - self._delay_cut_at
        if sending_bps > 0 and ((rising and since_cut >= RISING_CUT_S) or (full and since_cut >= FULL_CUT_S)):
            delivered = through_bps if through_bps is not None else sending_bps
            backoff = min(DELAY_BACKOFF, max(QUEUE_BACKOFF_MIN, 1 - queue_s))
            base = sending_bps if self.bps is None else self.bps
            self.bps = max(FLOOR_BPS, min(base, backoff * delivered))
            logger.debug("link cap %.0f kb/s: queue %.0f ms, slope %.2f, %.0f kb/s delivered of %.0f sent",
                         self.bps / 1000, queue_s * 1000, slope, delivered / 1000, sending_bps / 1000)
            self._delay_cut_at = now
            self._grown_at = None
            self.queue_cuts += 1
            self.changes += 1
            # the receiver reports' loss rule counts afresh from the packets sent after this
            self._changed_at = now
            self._settled = False
            return self.bps
        if (self.bps is not None and queue_s < GROW_QUEUE_S and slope <= RISING_SLOPE
                and since_cut >= GROW_AFTER_CUT_S and (loss is None or loss <= DECREASE_LOSS)):
            if self._grown_at is not None:
                step = min(GROW_MAX_STEP_S, now - self._grown_at)
                self.bps = min(self.bps * INCREASE ** step, max(self.bps, GROWTH_BOUND * sending_bps))
                if self.bps >= RELEASE_BPS:
                    self.bps = None
                    self.changes += 1
            self._grown_at = now
        else:
            self._grown_at = None
        return self.bps

    @staticmethod
    def _may_grow(loss: float, queue_s: Optional[float]) -> bool:
        """Under INCREASE_LOSS with no queue in sight; or, once the RTT shows the queue
        empty, under DECREASE_LOSS: random loss on a mobile link (5 % in the field bench)
        never falls under 2 %, and the cap held at the floor for 18 s on such a link."""
        if queue_s is None:
            return loss < INCREASE_LOSS
        return queue_s < GROW_DELAY_S and loss <= DECREASE_LOSS

    def _recent_loss(self, now: float) -> Optional[float]:
        """Loss over the reports of the last RECENT_S or more (None: too few packets)."""
        _, lost, seq = self._history[-1]
        for at, old_lost, old_seq in reversed(self._history):
            expected = seq - old_seq
            if now - at >= RECENT_S and expected >= RECENT_PACKETS:
                return min(1.0, max(0.0, (lost - old_lost) / expected))
        return None

    def _queue_delay(self, rtt_s: Optional[float], now: float) -> Optional[float]:
        """How far ``rtt_s`` stands over the smallest RTT of the window (None: unknown)."""
        if rtt_s is None:
            return None
        self.rtt_s = rtt_s
        return rtt_s - self._rtts.add(now, rtt_s)

    @property
    def at_floor(self) -> bool:
        return self.bps is not None and self.bps <= FLOOR_BPS


def pack_remb(sender_ssrc: int, media_ssrcs: list[int], bitrate_bps: int) -> bytes:
    """An RTCP REMB packet (draft-alvestrand-rmcat-remb-03)."""
    exponent, mantissa = 0, int(bitrate_bps)
    while mantissa > 0x3FFFF:
        mantissa >>= 1
        exponent += 1
    body = struct.pack("!II", sender_ssrc, 0) + b"REMB"
    body += struct.pack("!I", (len(media_ssrcs) << 24) | (exponent << 18) | mantissa)
    body += b"".join(struct.pack("!I", ssrc) for ssrc in media_ssrcs)
    return struct.pack("!BBH", 0x80 | FMT_APPLICATION, RTCP_PSFB, len(body) // 4) + body


Limit = Callable[[], Optional[int]]


class RembSender(PeriodicRtcp):
    """Tells one publisher the smallest cap of its subscribers.

    A changed cap goes out on the next round (every ``interval_s``: a cut reaches the
    encoder a fraction of a second after the report that asked for it), an unchanged one
    every ``repeat_s``. ``limit()`` is the cap now (None: uncapped); ``ssrcs()`` (our RTCP
    SSRC, a media SSRC of the publisher) or None while unknown.
    """

    what = "bitrate cap"

    def __init__(self, send: SendRtcp, ssrcs: Ssrcs, limit: Limit, interval_s: float = 0.1,
                 repeat_s: float = 1.0, name: str = "") -> None:
        super().__init__(send, ssrcs, interval_s, name)
        self._limit = limit
        self._repeat_rounds = max(1, round(repeat_s / interval_s))
        self._rounds_since = 0
        self._uncapped_left = 0
        self.last_sent: Optional[int] = None
        self._logged: Optional[int] = None

    def next_value(self) -> Optional[int]:
        """The REMB to send now, or None (nothing new to say this round)."""
        cap = self._limit()
        self._rounds_since += 1
        if cap is not None:
            self._uncapped_left = UNCAPPED_REPEATS
            value = max(FLOOR_BPS, int(cap)) + AUDIO_ALLOWANCE_BPS
        elif self._uncapped_left > 0:
            value = UNCAPPED_BPS
        else:
            return None
        if value == self.last_sent and self._rounds_since < self._repeat_rounds:
            return None
        if value == UNCAPPED_BPS:
            self._uncapped_left -= 1
        self._rounds_since = 0
        return value

    def packets(self, sender_ssrc: int, media_ssrc: int) -> list[bytes]:
        value = self.next_value()
        if value is None:
            return []
        if value != self.last_sent:
            # Growth moves the cap a little every round: log cuts, releases and every 25 %.
            logged = self._logged
            if logged is None or value < logged or value == UNCAPPED_BPS or value > 1.25 * logged:
                logger.info("publisher %s: bitrate cap %s", self.name,
                            "released" if value == UNCAPPED_BPS else f"{value // 1000} kb/s (a subscriber's link)")
                self._logged = value
        self.last_sent = value  # ICE down: the next round says it again anyway
        return [pack_remb(sender_ssrc, [media_ssrc], value)]
