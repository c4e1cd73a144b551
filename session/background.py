"""One background task with an owner: started once, cancelled and awaited on close."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Optional


class Background:
    def __init__(self) -> None:
        self.task: Optional[asyncio.Task[None]] = None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``run()`` in the background unless it already runs (idempotent)."""
        if self.task is None:
            self.task = asyncio.ensure_future(run())

    async def close(self) -> None:
        """Cancel the task and wait for it to end (idempotent)."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
