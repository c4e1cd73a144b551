"""Closing once, as aiortc's objects do: the first ``close()`` tears down, a concurrent or
later one waits for that teardown to finish and returns (a future guards it)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Optional


class CloseOnce:
    def __init__(self) -> None:
        self._done: Optional[asyncio.Future[None]] = None

    @property
    def started(self) -> bool:
        return self._done is not None

    @property
    def finished(self) -> bool:
        return self._done is not None and self._done.done()

    async def run(self, teardown: Callable[[], Awaitable[None]]) -> None:
        """Run ``teardown`` the first time; otherwise wait until the first run finished."""
        if self._done is not None:
            await asyncio.shield(self._done)
            return
        self._done = asyncio.get_running_loop().create_future()
        try:
            await teardown()
        finally:
            self._done.set_result(None)
