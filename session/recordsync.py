"""Keeps this node's inspection book and publicity coherent with the other nodes' (docs/nodes.md).

Each node's :class:`~approval.inspections.InspectionBook` indexes the records in memory, and
so does its :class:`~approval.publicity.Publicity`. With several nodes, a :class:`RecordSync`
(one per kind, each on its own channel) is the holder's :class:`~approval.inspections.SharedRecords`:
a change is made under a short cross-node lock in live state (so two nodes writing the same
record do not lose each other's change: the book reads it afresh inside the lock), and each
save is published on the ``records`` channel; every other node reloads that record from the
object store. On each (re)subscription the book catches up with the records saved or changed
while it was not listening (:meth:`~approval.inspections.InspectionBook.refresh`: one listing
of the records' versions, and reads of the changed ones only). A message missed while
subscribed (Redis restarted) leaves an index entry stale until the book's next refresh
(every few minutes, ``approval.index_copy.UPKEEP_S``) or the record's next change, and
the book looks an unknown id up in the store anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import AsyncIterator, Optional, Protocol

from approval.inspections import SharedRecords
from errors import Unavailable
from storage.livestate import LiveState
from storage.objects import StorageUnavailable

from .background import Background

logger = logging.getLogger(__name__)

CHANNEL = "records"
#: Publicity records' changes (approval/publicity.py) have a channel of their own.
PUBLICITY_CHANNEL = "publicity"
#: A change holds the lock for a store read and write: well under a second; the TTL only
#: matters when a node dies holding it.
LOCK_TTL_S = 10.0
LOCK_WAIT_S = 15.0


class Follower(Protocol):
    """What keeps records of one kind in memory: the inspection book, publicity."""

    shared: Optional[SharedRecords]

    @property
    def started(self) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def refresh(self) -> int:
        """Read what changed in the store since this node last knew it."""
        ...

    async def reload(self, record_id: str) -> object:
        """Read the record again (another node changed it)."""
        ...


class RecordSync:
    """The cross-node lock and change feed of one node's records of one kind."""

    def __init__(self, live: LiveState, book: Follower, node_id: str, channel: str = CHANNEL) -> None:
        self.live = live
        #: the inspection book, or publicity (then on its own channel)
        self.book = book
        self.node_id = node_id
        self.channel = channel
        self._background = Background()
        self._subscribed = asyncio.Event()
        #: the book has started (here or before): the feed's messages may be handled
        self._following = asyncio.Event()
        #: start() started the book (after subscribing), so close() closes it
        self._owns_book = False
        #: records reloaded because another node changed them (tests, metrics)
        self.reloads = 0

    async def start(self) -> None:
        """Subscribe, then become the book's SharedRecords; idempotent.

        A book not started yet is started here, once subscribed, and closed by close(): its
        start's listing then covers what was saved before the subscription and the feed what
        is saved after, so the listener's first round needs no refresh, which would list
        every record's version a second time. A book already started is caught up by that
        refresh, as after any resubscription."""
        if self._background.task is not None:
            return
        self._owns_book = not self.book.started
        self._background.start(self._listen)
        try:
            # changes published before the subscription is made would be missed
            await asyncio.wait_for(self._subscribed.wait(), 10)
            if self._owns_book:
                await self.book.start()
        except BaseException:
            await self._background.close()
            self._owns_book = False
            raise
        self._following.set()
        self.book.shared = self

    async def close(self) -> None:
        """Stop listening, and close the book if start() started it; idempotent (a book
        started by its owner works on alone)."""
        if self.book.shared is self:
            self.book.shared = None
        await self._background.close()
        if self._owns_book:
            self._owns_book = False
            await self.book.close()

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Hold ``record:<name>`` across nodes for the block."""
        key, holder = f"record:{name}", f"{self.node_id}:{secrets.token_hex(4)}"
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + LOCK_WAIT_S, 0.005
        while not await self.live.acquire(key, holder, LOCK_TTL_S):
            if loop.time() > deadline:
                raise Unavailable(f"record {name} stayed locked by another node for {LOCK_WAIT_S:.0f} s; retry")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)
        try:
            yield
        finally:
            await self.live.release(key, holder)

    async def announce(self, inspection_id: str) -> None:
        try:
            await self.live.publish(self.channel, f"{self.node_id} {inspection_id}")
        except StorageUnavailable as exc:
            # the record is saved; other nodes see it on their next miss or change
            logger.warning("%s %s: change not announced to other nodes: %s", self.channel, inspection_id, exc)

    async def _listen(self) -> None:
        first = True
        while True:
            try:
                stream = await self.live.subscribe(self.channel)
            except StorageUnavailable as exc:
                logger.warning("node %s: cannot subscribe to %s changes (%s); retrying", self.node_id, self.channel, exc)
                await asyncio.sleep(1.0)
                continue
            self._subscribed.set()
            try:
                # messages wait in the subscription while the book starts
                await self._following.wait()
                # what was saved before this subscription (since the book's start, or while the
                # feed was lost) is not announced again: index the records saved meanwhile;
                # not on the first round of a book started after subscribing (start())
                skip, first = first and self._owns_book, False
                if not skip:
                    await self.book.refresh()
                async for message in stream:
                    await self._handle(message)
            except StorageUnavailable as exc:
                logger.warning("node %s: %s changes feed lost (%s); resubscribing", self.node_id, self.channel, exc)
                await asyncio.sleep(1.0)
            except Exception:
                # whatever it was, the feed must go on: a dead listener would leave the index stale
                logger.exception("node %s: %s changes feed failed; resubscribing", self.node_id, self.channel)
                await asyncio.sleep(1.0)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]  # an async generator

    async def _handle(self, message: str) -> None:
        node, _, inspection_id = message.partition(" ")
        if node == self.node_id or not inspection_id:
            return
        try:
            await self.book.reload(inspection_id)
            self.reloads += 1
        except Exception:
            logger.exception("%s %s: reloading a record changed on node %s failed", self.channel, inspection_id, node)
