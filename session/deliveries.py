"""Webhook deliveries across nodes: a dead node's pending ones are sent by another (docs/nodes.md).

Each node's :class:`~approval.outbox.Outbox` sends the deliveries it enqueued. When a node
dies with some still pending (the approval core was down, say, and they wait out a back-off),
nobody would send them until that node came back. :class:`DeliverySync` is the outbox's
:class:`~approval.outbox.SharedOutbox` (this node's id, the cross-node lock of
:class:`~session.recordsync.RecordSync`, the heartbeats of :class:`~session.placement.Placement`)
and every ADOPT_EVERY_S it has the outbox take over the pending deliveries of dead nodes.
"""

from __future__ import annotations

from typing import AsyncContextManager

from approval.outbox import Outbox

from .background import Background
from .placement import Placement
from .recordsync import RecordSync

#: How often a node looks for dead nodes' pending deliveries: a webhook waits at most about
#: this long after its node's heartbeat lapsed (session.placement.HEARTBEAT_TTL_S).
ADOPT_EVERY_S = 10.0


class DeliverySync:
    """Owns the task that takes over dead nodes' pending webhook deliveries."""

    def __init__(self, outbox: Outbox, placement: Placement, records: RecordSync, every_s: float = ADOPT_EVERY_S) -> None:
        self.outbox = outbox
        self.placement = placement
        self.records = records
        self.every_s = every_s
        self._background = Background()
        outbox.shared = self  # before the outbox starts: its deliveries are marked from the first

    @property
    def node_id(self) -> str:
        return self.placement.node_id

    def exclusive(self, name: str) -> AsyncContextManager[None]:
        return self.records.exclusive(name)

    async def alive(self, node_id: str) -> bool:
        return await self.placement.node_url(node_id) is not None

    def may_send(self) -> bool:
        # The lease lapses a second before other nodes can see this node dead and adopt.
        return self.placement.lease_valid

    async def start(self) -> None:
        """Start looking (idempotent); the outbox must be started."""
        self._background.repeat(self.outbox.adopt, lambda: self.every_s, "looking for dead nodes' webhook deliveries")

    async def close(self) -> None:
        """Stop looking (idempotent)."""
        await self._background.close()
