"""Sealing: sign an inspection's evidence as it stands and point its record at the seal.

Used at the end of a session, after each judgement or review, and at start-up for
sessions a previous process left open. It knows records only through :class:`Sealable`
and hands the result to ``on_sealed`` (the inspection book stores it), so evidence does
not depend on the approval layer above it.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional, Protocol

from .journal import Journal

#: (type, actor, data) of an event appended in the same critical section as the seal.
FinalEvent = tuple[str, str, dict[str, Any]]


class Sealable(Protocol):
    @property
    def verdict(self) -> Optional[dict[str, Any]]: ...

    def evidence_summary(self) -> dict[str, Any]: ...


class Sealer:
    def __init__(
        self,
        journal: Journal,
        base_url: str,
        records: Callable[[str], Awaitable[Sealable]],
        on_sealed: Callable[[str, dict[str, Any]], Awaitable[object]],
    ) -> None:
        self.journal = journal
        self.base_url = base_url
        self._records = records
        self._on_sealed = on_sealed

    async def seal(self, inspection_id: str, final_event: Optional[FinalEvent] = None) -> dict[str, Any]:
        """Sign the evidence (after ``final_event``); returns the manifest reference."""
        record = await self._records(inspection_id)
        verdict = record.verdict
        sha256 = await self.journal.seal(
            inspection_id, record.evidence_summary(), verdict, (verdict or {}).get("rules_version"), final_event
        )
        reference = {"sha256": sha256, "url": f"{self.base_url}/api/v1/inspections/{inspection_id}/manifest"}
        await self._on_sealed(inspection_id, reference)
        return reference
