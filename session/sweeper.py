"""Inspections that end by themselves: abandoned sessions and scheduled ones nobody joined.

A live or interrupted inspection with nobody in it (no presence in live state, no
participant in a room on this node) for ``abandon_after_s`` is ended with
``end_reason: "abandoned"``: sealed, judged (the rules send it to a person) and reported,
like an inspector's end. The moment it became empty is kept in the record
(``vacant_since``), so a restart neither forgets nor restarts the count; a session that
was occupied when the server stopped starts counting when the sweeper first sees it
empty, so the inspector can still resume it within the window. A scheduled inspection
whose links have expired (``expires_at``) becomes ``expired``: sealed and reported as
``inspection.expired``.

Every node may sweep: the record's life cycle admits one end, and a loser's
:class:`~errors.Conflict` is ignored.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Awaitable, Callable, Optional

from approval.inspections import Inspection, now_utc, parse_rfc3339, rfc3339
from errors import Conflict, Elsewhere

from .background import Background
from .placement import Fenced
from .service import SessionService

logger = logging.getLogger(__name__)

#: How often the sweeper looks, at most (and at least ten times per abandon window).
MAX_INTERVAL_S = 30.0
MIN_INTERVAL_S = 0.2


class Sweeper:
    """Owns the task that ends abandoned inspections and expires unjoined ones."""

    def __init__(
        self,
        sessions: SessionService,
        abandon_after_s: float,
        on_expired: Callable[[Inspection], Awaitable[object]],
        interval_s: Optional[float] = None,
    ) -> None:
        if abandon_after_s <= 0:
            raise ValueError(f"abandon_after_s must be positive, got {abandon_after_s}")
        self.sessions = sessions
        self.abandon_after = datetime.timedelta(seconds=abandon_after_s)
        self.on_expired = on_expired
        self.interval_s = interval_s or max(MIN_INTERVAL_S, min(MAX_INTERVAL_S, abandon_after_s / 10))
        self._background = Background()

    async def start(self) -> None:
        self._background.repeat(self.sweep, lambda: self.interval_s, "sweep", at_once=True)

    async def close(self) -> None:
        """Stop sweeping (idempotent); an end in progress is cancelled and redone next start."""
        await self._background.close()

    async def sweep(self, now: Optional[datetime.datetime] = None) -> list[str]:
        """One pass; returns the ids it ended or expired."""
        moment = now or now_utc()
        done: list[str] = []
        for record in self.sessions.book.all():
            try:
                if record.status == "scheduled" and self._links_expired(record, moment):
                    await self._expire(record)
                    done.append(record.id)
                elif record.status in ("live", "interrupted") and await self._abandoned(record, moment):
                    await self.sessions.end_inspection(
                        record.id, actor="system", end_reason="abandoned",
                        reason=f"nobody was in the session for {self.abandon_after.total_seconds():g} s",
                    )
                    logger.warning("inspection %s abandoned (empty since %s); ended", record.id, record.vacant_since)
                    done.append(record.id)
            except Conflict as exc:  # another node, or a person, got there first
                logger.info("inspection %s: sweep skipped (%s)", record.id, exc)
            except (Elsewhere, Fenced):
                pass  # another live node serves it and sweeps it (or this one is fenced: see later)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("inspection %s: could not be ended or expired; retried at the next sweep", record.id)
            await asyncio.sleep(0)
        return done

    @staticmethod
    def _links_expired(record: Inspection, moment: datetime.datetime) -> bool:
        expires = parse_rfc3339(record.expires_at)
        return expires is not None and expires <= moment

    async def _occupied(self, inspection_id: str) -> bool:
        room = self.sessions.rooms.find(inspection_id)
        if room is not None and room.participants:
            return True
        return bool(await self.sessions.rooms.live.presence(inspection_id))

    async def _abandoned(self, record: Inspection, moment: datetime.datetime) -> bool:
        if record.status == "live" and self.sessions.recovery.is_pending(record.id):
            return False  # the recovery marks it interrupted first
        book = self.sessions.book
        if await self._occupied(record.id):
            if record.vacant_since is not None:
                await book.transition(record.id, record.status, vacant_since=None)
            return False
        since = parse_rfc3339(record.vacant_since)
        if since is None:
            await book.transition(record.id, record.status, vacant_since=rfc3339(moment))
            return False
        return moment - since >= self.abandon_after

    async def _expire(self, record: Inspection) -> None:
        sessions = self.sessions
        await sessions.serve_here(record.id)  # one node writes its log (docs/nodes.md)
        await sessions.book.transition(record.id, "expired", ended_at=rfc3339(now_utc()))
        await sessions.audience.to_room(record.id, "status", {"status": "expired"})
        if sessions.rooms.find(record.id) is not None:
            await sessions.rooms.close_room(record.id)
        await sessions.sealer.seal(record.id, ("session.expired", "system", {"expires_at": record.expires_at}))
        logger.warning("inspection %s: nobody joined before its links expired (%s); expired", record.id, record.expires_at)
        await self.on_expired(await sessions.book.load(record.id))
        sessions.journal.forget(record.id)
