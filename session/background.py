"""One background task with an owner: started once, cancelled and awaited on close."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Optional


#: How long a cancelled task has to end before it is cancelled again.
CANCEL_RETRY_S = 1.0


class Background:
    def __init__(self) -> None:
        self.task: Optional[asyncio.Task[None]] = None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``run()`` in the background unless it already runs (idempotent)."""
        if self.task is None:
            self.task = asyncio.ensure_future(run())

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
