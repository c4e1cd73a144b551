"""Ships the chunks of locally journaled logs to the object store, within about a second.

A :class:`~evidence.chainlog.ChainLog` with a local journal reports every append through
``on_dirty``; the shipper flushes each dirty log at most every ``interval_s`` seconds, and
at once when a chunk has filled. A failed flush (the store is down and not spooled) is
retried on the next round; the lines stay in the local journal meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Optional

from .chainlog import ChainLog

__all__ = ["Shipper"]

logger = logging.getLogger(__name__)


class Shipper:
    """Owns one task that flushes dirty logs; ``start()``/``close()`` are idempotent."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._dirty: dict[int, ChainLog] = {}
        self._wake = asyncio.Event()
        self._task: Optional[asyncio.Task[None]] = None
        self._closing = False
        #: Asked before each log ships: True ship, None not now (kept dirty), False never
        #: (dropped: this node lost the right to write it, docs/nodes.md "Fencing").
        self.gate: Optional[Callable[[ChainLog], Awaitable[Optional[bool]]]] = None

    def discard(self, log: ChainLog) -> None:
        """Never ship ``log`` again (it was dropped)."""
        self._dirty.pop(id(log), None)
        if log.on_dirty == self._mark:
            log.on_dirty = None

    def watch(self, log: ChainLog) -> None:
        """Have ``log`` report its appends here."""
        log.on_dirty = self._mark

    def flag(self, log: ChainLog) -> None:
        """Ship ``log`` on the next round."""
        self._mark(log, False)

    def _mark(self, log: ChainLog, urgent: bool) -> None:
        self._dirty[id(log)] = log
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="evidence-shipper")
        if urgent:
            self._wake.set()

    def start(self) -> None:
        self._closing = False

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.interval_s):  # not wait_for: see session/background.py
                    await self._wake.wait()
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush_all()

    async def flush_all(self) -> None:
        """Flush every dirty log now (failures are logged and retried later)."""
        logs, self._dirty = list(self._dirty.values()), {}
        for log in logs:
            if self.gate is not None:
                try:
                    verdict = await self.gate(log)
                except Exception:
                    logger.exception("log %s: the ship gate failed; retrying", log.key)
                    verdict = None
                if verdict is None:
                    self._dirty.setdefault(id(log), log)
                    continue
                if verdict is False:
                    continue
            try:
                await log.flush()
            except Exception as exc:
                logger.warning("log %s: shipping chunks failed, will retry: %s", log.key, exc)
                self._dirty[id(log)] = log
            else:
                if log.dirty:
                    self._dirty[id(log)] = log

    async def close(self) -> None:
        """Stop the task, then try one last flush; safe to call twice."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.flush_all()
