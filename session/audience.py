"""The seam between the session domain and whatever carries its messages to the pages.

The session service tells its participants things through an :class:`Audience`; the
Socket.IO door (:class:`signaling.audience.SocketAudience`) implements it. The session
knows connection ids and room names, never Socket.IO.
"""

from __future__ import annotations

from typing import Any, Protocol


class Audience(Protocol):
    async def to_room(self, inspection_id: str, event: str, data: dict[str, Any]) -> None:
        """Tell everyone connected to the inspection."""

    async def to_connection(self, connection: str, event: str, data: dict[str, Any]) -> None:
        """Tell one connection."""

    async def enter(self, connection: str, inspection_id: str) -> None:
        """Make ``connection`` one of the inspection's audience."""

    async def drop(self, connection: str) -> None:
        """Close ``connection`` (another device took over its role)."""

    async def drop_here(self, connection: str) -> None:
        """Close ``connection``, a connection to this node, without telling other nodes (this
        node may have lost its way to them: session/placement.py, fencing)."""
