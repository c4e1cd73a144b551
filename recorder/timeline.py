"""A recording's timeline: one origin shared by all tracks of an inspection.

Media times are milliseconds since the origin; the wall time of any media time is the
origin's wall time plus that offset. Measuring from a monotonic clock keeps the timeline
steady when the system clock is stepped, and one origin for all tracks keeps them aligned.
An :class:`RtpClock` places one source's RTP timestamps on the timeline.
"""

from __future__ import annotations

import fractions
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

Clock = Callable[[], float]


class Timeline:
    """The origin of a recording: ``ms()`` is now on the timeline, ``wall(ms)`` its UTC time."""

    def __init__(self, clock: Clock = time.monotonic, wall: Optional[datetime] = None) -> None:
        self.clock = clock
        self.origin = clock()
        self.origin_wall = wall if wall is not None else datetime.now(timezone.utc)

    def ms(self) -> int:
        """Milliseconds from the origin to now."""
        return round((self.clock() - self.origin) * 1000)

    def wall(self, ms: int) -> datetime:
        """The UTC wall time of a point on the timeline."""
        return self.origin_wall + timedelta(milliseconds=ms)


_RTP_WRAP = 1 << 32


class RtpClock:
    """Places one source's 32-bit RTP timestamps on the timeline, unwrapping them.

    ``first_ts`` lands at ``base_ms``; later timestamps follow at the clock's rate
    (``time_base``), across any number of wraps at 2**32, forwards or a little backwards.
    """

    def __init__(self, first_ts: int, time_base: fractions.Fraction, base_ms: int) -> None:
        self._last_ts = first_ts
        self._ticks = 0
        self._time_base = time_base
        self._base_ms = base_ms
        # ms = ticks * time_base * 1000 in integers: Fraction arithmetic on every frame of
        # every recorded track showed in the server's profile; the rounding is the same.
        self._ms_num = time_base.numerator * 1000
        self._ms_den = time_base.denominator

    def to_ms(self, ts: int) -> int:
        """The timeline position of ``ts`` (each call moves the clock's reference)."""
        delta = (ts - self._last_ts) % _RTP_WRAP
        if delta >= _RTP_WRAP // 2:
            delta -= _RTP_WRAP
        self._last_ts = ts
        self._ticks += delta
        quotient, remainder = divmod(self._ticks * self._ms_num, self._ms_den)
        twice = 2 * remainder
        if twice > self._ms_den or (twice == self._ms_den and quotient & 1):
            quotient += 1  # round half to even, as round() of the exact Fraction does
        return self._base_ms + quotient
