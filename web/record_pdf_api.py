"""``GET /api/v1/inspections/{id}/record.pdf``: the 现场勘验笔录 of an ended inspection.

The first request after the session has been judged (409 before) (or after any later event, such as a
verdict) writes the PDF from the evidence as it stands, stores it as evidence
(``record/inspection-record-<n>.pdf``, event ``record.rendered`` carrying the SHA-256 of
the manifest it cites) and re-seals, so the PDF is hashed in the newer manifest; later
requests get that stored copy. The stored copy masks personal data; a reader holding
``personal_data`` gets a copy rendered for them with it shown (not stored). Every download
goes to the access log.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from aiohttp import web

from approval.inspections import InspectionBook
from archive.inspection_record_pdf import PdfRecord, render_inspection_record_pdf
from errors import Conflict
from evidence.access import AccessLog
from evidence.journal import Journal
from evidence.manifest import prefix_of
from evidence.sealer import Sealer
from storage.objects import ObjectStore

from .auth import actor_of, caller
from .inspections_api import visible_record
from .routes import Route, get

RENDERED = "record.rendered"


class RecordPdfApi:
    def __init__(self, book: InspectionBook, journal: Journal, store: ObjectStore, sealer: Sealer, access: AccessLog, base_url: str) -> None:
        self.book = book
        self.journal = journal
        self.store = store
        self.sealer = sealer
        self.access = access
        self.base_url = base_url
        self._lock = asyncio.Lock()

    def routes(self) -> list[Route]:
        return [get("/api/v1/inspections/{id}/record.pdf", self.pdf, "query")]

    async def _images(self, inspection_id: str, events: list[dict[str, Any]]) -> dict[str, bytes]:
        wanted: dict[str, str] = {}
        for event in events:
            data = event.get("data") or {}
            key = data.get("key")
            if not isinstance(key, str):
                continue
            if event.get("type") in ("still.captured", "photo.uploaded"):
                wanted.setdefault(f"cp:{data.get('checkpoint')}", key)
            elif event.get("type") == "signature.signed" or (key.startswith("signatures/") and key.endswith(".png")):
                wanted.setdefault(f"sig:{key}", key)
        images: dict[str, bytes] = {}
        for key in wanted.values():
            try:
                images[key] = await self.store.get(prefix_of(inspection_id) + key)
            except Exception:  # a missing object shows as "not attached" in the PDF
                continue
        return images

    async def render(self, inspection_id: str, show_personal: bool) -> tuple[bytes, str]:
        """(PDF bytes, its key in the evidence or "" when rendered only for this reader)."""
        record = await self.book.load(inspection_id)
        if record.is_open:
            raise Conflict("the inspection record is written once the session has ended")
        if record.status == "ended":  # the judgement is still appending to the log
            raise Conflict("the inspection record is written once the session is judged; try again in a few seconds")
        events = await self.journal.events(inspection_id)
        if record.status in ("judged", "reviewed") and (not events or events[-1].get("type") not in ("verdict", "review", RENDERED)):
            raise Conflict("the judgement is still being sealed; try again in a few seconds")
        if events and events[-1].get("type") == RENDERED:
            key = str(events[-1]["data"]["key"])
            stored = await self.store.get(prefix_of(inspection_id) + key)
        else:  # write the evidence copy (personal data masked), then re-seal to cover it
            stored = await asyncio.to_thread(render_inspection_record_pdf, await self._content(record, events, False))
            count = sum(e.get("type") == RENDERED for e in events)
            # another node may be writing one too: take a number no blob has
            [key] = await self.journal.unused_keys(inspection_id, lambda n: (f"record/inspection-record-{n}.pdf",), count + 1)
            await self.journal.record_blob(
                inspection_id, key, stored, "application/pdf", RENDERED, "system",
                {"manifest_sha256": (record.manifest or {}).get("sha256")},
            )
            await self.sealer.seal(inspection_id)
        if not show_personal:
            return stored, key
        events = [e for e in events if e.get("type") != RENDERED]
        return await asyncio.to_thread(render_inspection_record_pdf, await self._content(record, events, True)), ""

    async def _content(self, record: Any, events: list[dict[str, Any]], show_personal: bool) -> PdfRecord:
        return PdfRecord(
            record=_record_json(record),
            events=events,
            manifest_sha256=(record.manifest or {}).get("sha256"),
            verify_url=f"{self.base_url}/api/v1/inspections/{record.id}/verification",
            images=await self._images(record.id, events),
            show_personal=show_personal,
            inspector_name=record.inspector_user_id,
        )

    async def pdf(self, request: web.Request) -> web.Response:
        principal = caller(request)
        inspection_id = request.match_info["id"]
        visible_record(self.book, inspection_id, principal)
        async with self._lock:
            pdf, key = await self.render(inspection_id, principal.can_see_personal_data)
        await self.access.record(
            "record.downloaded", actor_of(principal),
            {"inspection_id": inspection_id, "key": key or None, "sha256": hashlib.sha256(pdf).hexdigest(), "remote": request.remote},
        )
        return web.Response(
            body=pdf, content_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="inspection-record-{inspection_id}.pdf"'},
        )


def _record_json(record: Any) -> dict[str, Any]:
    return {
        "id": record.id, "case_no": record.case_no, "item_code": record.item_code, "item_name": record.item_name,
        "applicant": dict(record.applicant), "site": dict(record.site), "started_at": record.started_at,
        "ended_at": record.ended_at, "duration_s": record.duration_s, "checkpoints": record.checkpoints,
        "verdict": record.verdict, "recognitions": record.recognitions, "inspector_user_id": record.inspector_user_id,
    }
