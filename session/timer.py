"""The session clock of clause 8.2.3: warnings before the time limit, then the limit."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional

logger = logging.getLogger(__name__)

#: (phase, share of the limit): with a 30-minute limit, warnings at 25 and 29 minutes.
PHASES = (("warning", 25 / 30), ("final_warning", 29 / 30), ("limit", 1.0))

PhaseCallback = Callable[[str, float, float], Awaitable[None]]


class SessionTimer:
    """Calls ``on_phase(phase, elapsed_s, limit_s)`` at each phase; owned by a room."""

    def __init__(self, limit_s: float, on_phase: PhaseCallback) -> None:
        self.limit_s = limit_s
        self._on_phase = on_phase
        self._task: Optional[asyncio.Task[None]] = None
        self._started_at: Optional[float] = None
        self.reached: list[str] = []

    def start(self, elapsed_s: float = 0.0) -> None:
        """Start counting as if ``elapsed_s`` had already passed (a resumed session)."""
        if self._task is not None:
            return
        self._started_at = time.monotonic() - elapsed_s
        self._task = asyncio.ensure_future(self._run())

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    @property
    def over_limit(self) -> bool:
        return "limit" in self.reached

    async def _run(self) -> None:
        for phase, share in PHASES:
            due = share * self.limit_s - self.elapsed_s
            if due > 0:
                await asyncio.sleep(due)
            elif phase != "limit" and share * self.limit_s < self.elapsed_s - 60:
                continue  # resumed long after this warning: skip it, keep the later ones
            self.reached.append(phase)
            try:
                await self._on_phase(phase, self.elapsed_s, self.limit_s)
            except Exception:
                logger.exception("timer phase %s failed", phase)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
