"""A publisher's capture clock: when, on its own wall clock, an RTP time was captured.

A browser lip-syncs a media stream's audio and video by the sender reports (SR) of each:
an SR pairs an RTP timestamp with the NTP time the sender's clock read for it, and
libwebrtc's sender derives that pair from the frame's capture time. The relay forwards the
publisher's frames, so the SRs it sends its subscribers must carry the publisher's pairs.
aiortc's sender pairs the last packet's RTP time with the moment the server sent it: a
video frame that waited at the server for a retransmission then reads as captured later
than the audio beside it, and Chromium's stream synchronizer held the forwarded video back
by up to 750 ms (issue 10; the direct call's hold stayed under 50 ms).

:class:`CaptureClock` keeps a publisher track's latest SR, in the tap's timestamps (the
``pts`` its frames carry: RTP time counted from the track's first frame), and maps any
pts to the publisher's NTP time. ``media/tap.py`` feeds it and writes the subscriber
leg's SRs from it; nothing here knows aiortc.
"""

from __future__ import annotations

from typing import Optional

_NTP_MASK = (1 << 64) - 1


class CaptureClock:
    """The publisher's RTP-to-NTP mapping for one track, from its latest sender report."""

    def __init__(self, rate: int) -> None:
        """``rate``: the track's RTP clock rate (Hz), the unit of its pts."""
        self.rate = rate
        self._ntp: Optional[int] = None  # 64-bit NTP timestamp of the report
        self._pts: Optional[int] = None  # its RTP time as the tap's pts
        self.reports = 0

    def report(self, ntp: int, pts: int) -> None:
        """The publisher's SR: RTP time ``pts`` (the tap's timestamps) was captured at ``ntp``."""
        self._ntp, self._pts = ntp, pts
        self.reports += 1

    def ntp_at(self, pts: int) -> Optional[int]:
        """The publisher's NTP time (64-bit) at which ``pts`` was captured; None before its first SR."""
        if self._ntp is None or self._pts is None:
            return None
        return (self._ntp + ((pts - self._pts) << 32) // self.rate) & _NTP_MASK
