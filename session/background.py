"""One background task with an owner: started once, cancelled and awaited on close."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Coroutine, Optional

logger = logging.getLogger(__name__)


#: How long a cancelled task has to end before it is cancelled again.
CANCEL_RETRY_S = 1.0


class Background:
    def __init__(self) -> None:
        self.task: Optional[asyncio.Task[None]] = None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``run()`` in the background unless it already runs (idempotent)."""
        if self.task is None:
            self.task = asyncio.ensure_future(run())

    def repeat(self, step: Callable[[], Awaitable[object]], every_s: Callable[[], float], what: str, at_once: bool = False) -> None:
        """Run ``step()`` every ``every_s()`` seconds in the background (idempotent), at once
        first if ``at_once``. A step that fails is logged (with ``what`` it was doing) and the
        next one runs as planned: the store or Redis may be back by then."""

        async def run() -> None:
            if not at_once:
                await asyncio.sleep(every_s())
            while True:
                try:
                    await step()
                except Exception:
                    logger.exception("%s failed; again in %.1f s", what, every_s())
                await asyncio.sleep(every_s())

        self.start(run)

    async def close(self) -> None:
        """Cancel the task and wait for it to end (idempotent).

        Cancelled again until it has ended: Python 3.11's ``asyncio.wait_for`` returns the
        result of an awaitable that completes as its task is cancelled, and swallows the
        cancellation, so a loop around it carries on. Awaiting such a task once hung a test
        server's shutdown for good (the node heartbeat's loop, in a clean-clone CI run).
        The loops use ``asyncio.timeout`` instead, which has no such race.
        """
        task, self.task = self.task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_RETRY_S)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: a failure was logged by the task's owner, if at all
