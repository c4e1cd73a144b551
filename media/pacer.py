"""The subscriber's leg: video sent at a pace its link can take, not in bursts.

aiortc's sender writes a frame's packets to the socket as fast as it packetizes them. A
keyframe (10-30 kB at the rates a weak link gets, up to 100 kB at 720p uncapped) then
lands on the subscriber's bottleneck at once: a shallow queue (a mobile carrier's, a tbf's)
drops its tail, which costs a NACK round trip and often the frame, and a deep one holds
everything behind it for hundreds of milliseconds, which the queue estimator
(``media/queue_estimator.py``) reads as congestion and answers with a cut. libwebrtc's
sender paces: packets leave at 2.5 x its target rate, so a keyframe is spread over a few
frame intervals. :class:`Pacer` does the same for a subscriber's video (and its
retransmissions) once the link has a cap: each packet gets the next slot of a budget at
:data:`PACING_FACTOR` x the cap (never below what the track forwards, so no backlog
builds while the publisher follows the cap), and waits for it; a slot under
:data:`BURST_S` away is not waited for, so a steady stream costs no timer per packet.
Audio is never paced: it is small and must not queue behind video.

``media/tap.py`` waits where aiortc hands a packet to its transport, *before* the packet's
send time is recorded, so the estimator sees the link's queue and not ours. Nothing here
knows aiortc.
"""

from __future__ import annotations

from typing import Callable, Optional

__all__ = ["BURST_S", "MAX_WAIT_S", "PACING_FACTOR", "Pacer"]

#: Packets leave at this multiple of the link's cap. libwebrtc uses 2.5 x its target; our
#: cap sits at 0.85 x what the link delivered, so 2 x spreads a keyframe over about twice
#: its airtime while the link's queue grows by well under half of it.
PACING_FACTOR = 2.0
#: A packet whose slot is less than this away goes at once (a burst of at most this much).
BURST_S = 0.005
#: No packet waits longer: a cap far under what arrives (the publisher has not followed a
#: cut yet) must not turn into seconds of latency in the server.
MAX_WAIT_S = 0.2

Rate = Callable[[], Optional[float]]


class Pacer:
    """Slots on a budget of ``rate() x factor`` bits per second.

    ``rate()`` is the link's cap in bits/s, None while it has none (then nothing waits).
    """

    def __init__(self, rate: Rate, factor: float = PACING_FACTOR) -> None:
        self._rate = rate
        self._factor = factor
        self._next = 0.0
        #: Packets that waited, and the seconds they waited in total (for tests and logs).
        self.paced = 0
        self.waited_s = 0.0

    def wait(self, size: int, now: float) -> float:
        """Seconds the packet of ``size`` bytes, ready at ``now``, should wait (0: send)."""
        rate = self._rate()
        if rate is None or rate <= 0:
            self._next = now
            return 0.0
        start = min(max(now, self._next), now + MAX_WAIT_S)
        self._next = start + size * 8 / (rate * self._factor)
        wait = start - now
        if wait < BURST_S:
            return 0.0
        self.paced += 1
        self.waited_s += wait
        return wait
