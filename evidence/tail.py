"""Each log's acknowledged, unshipped tail, kept in the live state the nodes share.

With several nodes an event is acknowledged once its line is fsynced in the hosting node's
local journal (:mod:`evidence.localjournal`), and the shipper puts it in the object store
within a second. A node killed in that second took those lines with it: the node taking its
rooms over continues from what the store holds. So the hosting node also pushes every line
to a list in Redis before the append returns (one round trip, shared by the appends that
wait together), drops the list's head once the store holds it, and the node that takes a
room over adopts the lines that continue the stored chain (:meth:`evidence.chainlog.ChainLog.adopt_tail`).

Redis is not where evidence lives: it holds a copy of at most a few seconds of lines, for
a day. A push that fails or takes longer than :data:`PUSH_TIMEOUT_S` is logged and the
event is still acknowledged (its line is on this node's disk, as on a single node): a Redis
that does not answer fences the node within seconds anyway (docs/nodes.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Sequence

from storage.livestate import LiveState

__all__ = ["LogTail", "PUSH_TIMEOUT_S", "TAIL_TTL_S"]

logger = logging.getLogger(__name__)

#: A tail nobody drops (its node died and nobody took the room) expires after this.
TAIL_TTL_S = 24 * 3600.0
#: An append waits at most this long for Redis before it is acknowledged without the copy.
PUSH_TIMEOUT_S = 1.0


class LogTail:
    """The shared copies of logs' unshipped lines, by log name (``inspections/<id>/events/``)."""

    def __init__(self, live: LiveState, timeout_s: float = PUSH_TIMEOUT_S) -> None:
        self.live = live
        self.timeout_s = timeout_s
        #: pushes that failed or timed out (for /metrics and tests)
        self.failures = 0

    @staticmethod
    def _key(name: str) -> str:
        return f"log-tail:{name}"

    async def push(self, name: str, lines: Sequence[bytes]) -> bool:
        """Append ``lines`` to the log's copy; False (logged) if Redis did not take them."""
        return await self._bounded("push", name, self.live.push_lines(self._key(name), [line.decode() for line in lines], TAIL_TTL_S))

    async def replace(self, name: str, lines: Sequence[bytes]) -> bool:
        """Make the copy exactly ``lines`` (the log's unshipped lines); False if not done."""
        return await self._bounded("replace", name, self.live.set_lines(self._key(name), [line.decode() for line in lines], TAIL_TTL_S))

    async def shipped(self, name: str, count: int) -> bool:
        """The store holds the copy's first ``count`` lines: drop them."""
        return await self._bounded("trim", name, self.live.drop_lines(self._key(name), count))

    async def read(self, name: str) -> list[bytes]:
        """The copy's lines, oldest first (raises if Redis does not answer)."""
        async with asyncio.timeout(self.timeout_s * 5):
            return [line.encode() for line in await self.live.lines(self._key(name))]

    async def _bounded(self, what: str, name: str, call: Awaitable[None]) -> bool:
        try:
            async with asyncio.timeout(self.timeout_s):
                await call
        except Exception as exc:  # an unreachable or slow Redis: the local journal still has the lines
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                logger.warning("log %s: the shared copy of its unshipped lines was not updated (%s %s; %d so far): "
                               "if this node dies before it ships them, the node taking over will lack them",
                               name, what, exc, self.failures)
            return False
        return True
