"""The subscriber's leg: a weak subscriber link caps its publisher's bitrate.

The relay forwards the publisher's encoded frames unchanged, so a subscriber on a link
narrower than the publisher's stream (an inspector on a weak office or mobile link, a
phone receiving the inspector's camera) loses whatever does not fit, and the publisher,
whose own uplink is fine, never hears of it. A peer-to-peer call has no such gap: the
sender's estimator sees the receiver's link. Galène closes it the same way as here: the
publisher is told to send no more than its weakest subscriber carries.

* :class:`LossBasedCap`, one per subscriber video track, turns the subscriber's receiver
  reports (about once a second) into a cap, like libwebrtc's loss-based controller: over
  at least 50 packets, more than 10 % lost cuts the rate by half the loss, under 2 % lets
  it grow 8 %, in between holds (random loss on a mobile link is repaired by NACK/RTX
  and says nothing about capacity). Chromium's receive-side estimate (REMB) is not used:
  it reads the server's send jitter as congestion (see ``media.relay.LINK_SHARE``).
* :class:`RembSender`, one per publishing peer, sends the smallest cap of the publisher's
  subscribers to the publisher as REMB every second. libwebrtc's send-side estimator
  (which runs on our transport-wide feedback) takes a REMB as an upper bound; when the
  caps are gone it is sent a high value a few times, since libwebrtc keeps the last one.

Nothing here knows aiortc; ``media/peer.py`` wires it.
"""

from __future__ import annotations

import logging
import math
import struct
from typing import Callable, Optional

from .rtcp_loop import PeriodicRtcp, SendRtcp, Ssrcs

logger = logging.getLogger(__name__)

#: Loss (fraction) above which the cap comes down, and under which it may grow.
DECREASE_LOSS = 0.10
INCREASE_LOSS = 0.02
#: Growth per decision under INCREASE_LOSS.
INCREASE = 1.08
#: The cap (of the publisher's video) never goes below this; a link that loses even here
#: goes audio first (``media.relay.ForwardedTrack.link_report``).
FLOOR_BPS = 100_000
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

RTCP_PSFB = 206
FMT_APPLICATION = 15


class LossBasedCap:
    """A cap on the video one subscriber's link carries, from its receiver reports."""

    def __init__(self) -> None:
        self.bps: Optional[float] = None
        self._changed_at = -math.inf
        self._settled = False
        self._last: Optional[tuple[int, int]] = None  # (cumulative lost, highest sequence) at the last decision
        self.loss: Optional[float] = None  # over the last decision's packets
        self.changes = 0

    def report(self, cumulative_lost: int, highest_sequence: int, sending_bps: float, now: float) -> Optional[float]:
        """A receiver report's counts, while video is sent at ``sending_bps``."""
        if self._last is None or highest_sequence < self._last[1] or (not self._settled and now - self._changed_at >= SETTLE_S):
            # the first report, a new stream, or the first after a change settled: count from here
            self._last = (cumulative_lost, highest_sequence)
            self._settled = True
            return self.bps
        if not self._settled:
            return self.bps
        expected = highest_sequence - self._last[1]
        if expected < MIN_PACKETS or now - self._changed_at < MIN_STEP_S:
            return self.bps
        loss = min(1.0, max(0.0, (cumulative_lost - self._last[0]) / expected))
        self._last = (cumulative_lost, highest_sequence)
        self.loss = loss
        if loss > DECREASE_LOSS and sending_bps > 0:
            base = sending_bps if self.bps is None else min(self.bps, sending_bps)
            self.bps = max(FLOOR_BPS, base * (1 - 0.5 * loss))
        elif loss < INCREASE_LOSS and self.bps is not None:
            # Grow only while the publisher uses most of it: a cap far above what is sent
            # has not been shown to fit.
            self.bps = min(self.bps * INCREASE, max(self.bps, 2 * sending_bps))
            if self.bps >= RELEASE_BPS:
                self.bps = None
        else:
            return self.bps
        logger.debug("link cap %s: %.0f %% of %d packets lost at %.0f kb/s sent",
                     "none" if self.bps is None else f"{self.bps / 1000:.0f} kb/s", loss * 100, expected, sending_bps / 1000)
        self._changed_at = now
        self._settled = self.bps is None or loss <= DECREASE_LOSS  # a cut settles first; growth goes on
        self.changes += 1
        return self.bps

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
    """Tells one publisher the smallest cap of its subscribers, every ``interval_s``.

    ``limit()`` is the cap now (None: uncapped); ``ssrcs()`` (our RTCP SSRC, a media SSRC
    of the publisher) or None while unknown.
    """

    what = "bitrate cap"

    def __init__(self, send: SendRtcp, ssrcs: Ssrcs, limit: Limit, interval_s: float = 1.0, name: str = "") -> None:
        super().__init__(send, ssrcs, interval_s, name)
        self._limit = limit
        self._uncapped_left = 0
        self.last_sent: Optional[int] = None

    def next_value(self) -> Optional[int]:
        """The REMB to send now, or None (uncapped and already said so)."""
        cap = self._limit()
        if cap is not None:
            self._uncapped_left = UNCAPPED_REPEATS
            return max(FLOOR_BPS, int(cap)) + AUDIO_ALLOWANCE_BPS
        if self._uncapped_left > 0:
            self._uncapped_left -= 1
            return UNCAPPED_BPS
        return None

    def packets(self, sender_ssrc: int, media_ssrc: int) -> list[bytes]:
        value = self.next_value()
        if value is None:
            return []
        if value != self.last_sent:
            logger.info("publisher %s: bitrate cap %s", self.name,
                        "released" if value == UNCAPPED_BPS else f"{value // 1000} kb/s (a subscriber's link)")
        self.last_sent = value  # ICE down: the next round says it again anyway
        return [pack_remb(sender_ssrc, [media_ssrc], value)]
