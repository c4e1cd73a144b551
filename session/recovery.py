"""Sessions a previous process left live: marked interrupted and sealed, after listening.

A node that stopped with sessions live cannot tell whether anyone is still there; each
such inspection becomes ``interrupted`` (resumable: the participants' pages reconnect and
it goes live again) with a ``session.interrupted`` event and a fresh seal. With thousands
of them this takes seconds, so it runs in the background once the server is up; anything
that touches one of them first (a join, a cancel) settles that one at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Optional

from approval.inspections import InspectionBook
from evidence.journal import Journal
from evidence.sealer import Sealer
from storage.objects import StorageError

from .background import Background

logger = logging.getLogger(__name__)


class Recovery:
    def __init__(self, book: InspectionBook, journal: Journal, sealer: Sealer) -> None:
        self.book = book
        self.journal = journal
        self.sealer = sealer
        self._pending: dict[str, asyncio.Lock] = {}
        self._reasons: dict[str, dict[str, str]] = {}  # why each adopted one stopped
        self._background = Background()
        #: Whether another live node serves the inspection now (several nodes): then it is
        #: that node's to settle, not this one's, though the record says live.
        self.elsewhere: Optional[Callable[[str], Awaitable[bool]]] = None

    def start(self) -> None:
        """Note every live inspection (at once) and settle them in the background."""
        if self._background.task is not None:
            return
        self._pending = {r.id: asyncio.Lock() for r in self.book.all() if r.status == "live"}
        if self._pending:
            logger.warning("%d inspections were live when the server stopped; marking them interrupted", len(self._pending))
        self._background.start(self._run)

    def is_pending(self, inspection_id: str) -> bool:
        """True while ``inspection_id`` waits to be marked interrupted."""
        return inspection_id in self._pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def idle(self) -> None:
        """Wait until every inspection is settled (tests, benchmarks)."""
        if self._background.task is not None:
            await asyncio.shield(self._background.task)

    async def adopt(self, inspection_id: str, reason: str, **details: str) -> None:
        """Settle now an inspection that was live on another node that stopped (or in an
        earlier process): as at start-up, with ``reason`` in its ``session.interrupted``."""
        self._pending.setdefault(inspection_id, asyncio.Lock())
        self._reasons[inspection_id] = {"reason": reason, **details}
        await self.settle(inspection_id)

    async def settle(self, inspection_id: str) -> None:
        """Make sure ``inspection_id`` is settled before it is used."""
        lock = self._pending.get(inspection_id)
        if lock is None:
            return
        async with lock:
            if inspection_id not in self._pending:
                return
            try:
                record = self.book.get(inspection_id)
                if record.status == "live" and self.elsewhere is not None and await self.elsewhere(inspection_id):
                    logger.info("inspection %s is live on another node; left to it", inspection_id)
                elif record.status == "live":
                    why = self._reasons.get(inspection_id)
                    if why is None:  # a restart (a take-over logged the other node's strays already)
                        # a segment or still stored just before the process died, its event not
                        # journaled yet: logged, so the seal covers it and no capture reuses its key
                        try:
                            await self.journal.log_strays(inspection_id, "stored before the server stopped, whose event was not logged")
                        except StorageError as exc:  # an outage: settle now, the listing is not essential to it
                            logger.warning("inspection %s: objects stored but not logged not looked for (%s)", inspection_id, exc)
                        why = {"reason": "the server restarted during the session"}
                    await self.book.transition(inspection_id, "interrupted")
                    await self.journal.record(inspection_id, "session.interrupted", "system", why)
                    await self.sealer.seal(inspection_id)
                    logger.warning("inspection %s was live when its node stopped; marked interrupted and sealed", inspection_id)
            finally:
                self._pending.pop(inspection_id, None)
                self._reasons.pop(inspection_id, None)
            self.journal.forget(inspection_id)

    async def _run(self) -> None:
        for inspection_id in list(self._pending):
            try:
                await self.settle(inspection_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("inspection %s: could not be marked interrupted; retried at the next start", inspection_id)
            await asyncio.sleep(0)  # let requests in between

    async def close(self) -> None:
        await self._background.close()
