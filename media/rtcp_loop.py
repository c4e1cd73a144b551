"""An owned task that sends a peer some RTCP every so often (transport feedback, REMB).

Nothing here knows aiortc: the owner hands in how to send bytes and which SSRCs to sign
them with. ``start()`` and ``close()`` are idempotent; the task is owned and awaited here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Optional

logger = logging.getLogger(__name__)

SendRtcp = Callable[[bytes], Awaitable[None]]
#: (our RTCP sender SSRC, a media SSRC of the peer), or None while unknown.
Ssrcs = Callable[[], Optional[tuple[int, int]]]


class PeriodicRtcp:
    """Every ``interval_s``, sends what :meth:`packets` builds (once the SSRCs are known)."""

    what = "rtcp"

    def __init__(self, send: SendRtcp, ssrcs: Ssrcs, interval_s: float, name: str = "") -> None:
        self._send = send
        self._ssrcs = ssrcs
        self.interval_s = interval_s
        self.name = name
        self._task: Optional[asyncio.Task[None]] = None
        self._closed = False
        self.sent = 0

    def packets(self, sender_ssrc: int, media_ssrc: int) -> list[bytes]:
        """The packets to send this round."""
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            ssrcs = self._ssrcs()
            if ssrcs is None:
                continue
            for packet in self.packets(*ssrcs):
                try:
                    await self._send(packet)
                    self.sent += 1
                except ConnectionError:
                    pass  # ICE is down for now: the next round says it again
                except Exception:
                    logger.exception("%s %s: send failed", self.what, self.name)

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
