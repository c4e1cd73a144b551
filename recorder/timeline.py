"""A recording's timeline: one origin shared by all tracks of an inspection.

Media times are milliseconds since the origin; the wall time of any media time is the
origin's wall time plus that offset. Measuring from a monotonic clock keeps the timeline
steady when the system clock is stepped, and one origin for all tracks keeps them aligned.
"""

from __future__ import annotations

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
