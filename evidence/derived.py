"""Evidence derived from a stored capture (a display copy, a reading), made in the background.

A capture is acknowledged as soon as its original is stored; what is derived from it
(the watermarked copy, the OCR reading) is made afterwards by one worker per kind, from a
bounded queue, so that a slow derivation never holds a capture's acknowledgement. The
session waits for an inspection's pending derivations (:meth:`DerivedWork.settled`,
bounded) before it seals, so the manifest covers them; one that finishes later still
reseals the inspection itself (see the subclasses).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Optional

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capture:
    """A stored still or photo: the original's key and bytes."""

    inspection_id: str
    checkpoint: str
    key: str
    data: bytes


class DerivedWork:
    """One worker task over a bounded queue of captures; subclasses say what to make."""

    name = "derived"

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[Capture] = asyncio.Queue(limit)
        self._pending: Counter[str] = Counter()
        self._changed = asyncio.Condition()
        self._worker: Optional[asyncio.Task[None]] = None

    async def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        """Stop the worker (idempotent); captures still queued get nothing derived."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass

    def wants(self, capture: Capture) -> bool:
        """Whether this kind of work applies to ``capture`` (all, unless overridden)."""
        return True

    async def on_captured(self, capture: Capture) -> None:
        """The session's capture listener: queue the capture (returns at once)."""
        if self.wants(capture):
            self.offer(capture)

    def offer(self, capture: Capture) -> None:
        """Queue ``capture`` whatever :meth:`wants` says (dropped, logged, when the queue is full)."""
        try:
            self._queue.put_nowait(capture)
        except asyncio.QueueFull:
            logger.warning("inspection %s: %s queue full, nothing derived from %s", capture.inspection_id, self.name, capture.key)
            return
        self._pending[capture.inspection_id] += 1

    async def idle(self) -> None:
        """Wait until everything queued so far is done (tests)."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._pending)

    async def settled(self, inspection_id: str, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until nothing is pending for ``inspection_id``."""
        deadline = time.monotonic() + timeout_s
        async with self._changed:
            while self._pending[inspection_id] and self._worker is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    async with asyncio.timeout(left):  # not wait_for: see session/background.py
                        await self._changed.wait()
                except asyncio.TimeoutError:
                    return False
            self._pending.pop(inspection_id, None)  # Counter keeps zero entries otherwise
            return True

    async def make(self, capture: Capture) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            capture = await self._queue.get()
            try:
                await self.make(capture)
            except Exception:
                logger.exception("inspection %s: %s of %s failed", capture.inspection_id, self.name, capture.key)
            finally:
                self._queue.task_done()
                async with self._changed:
                    self._pending[capture.inspection_id] -= 1
                    if self._pending[capture.inspection_id] <= 0:
                        del self._pending[capture.inspection_id]
                    self._changed.notify_all()
