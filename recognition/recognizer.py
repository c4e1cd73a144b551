"""After a still or a photo: read it in a worker thread, compare, log, tell the inspector.

The session service hands every stored capture to :meth:`Recognizer.submit` (it returns
at once). One worker task takes them from a bounded queue and runs the OCR in a
single-thread executor with one onnxruntime thread, so a busy OCR never holds the event
loop that carries media and signaling, and leaves the other core to it. A capture that
arrives while the queue is full is skipped (logged), never waited for.

What is read depends on the checkpoint: the item's template names a checkpoint's
``recognize`` kind (``business_licence``, ``shop_sign``, or a permit of
:data:`recognition.permit.PERMITS` such as ``food_permit``), or else its code or title says
permit (食品经营许可证, 许可证), licence (执照) or storefront (门头, 招牌); captures of other
checkpoints are not read. A capture whose text looks like a licence is read as one whatever
was asked, unless a permit was asked for and it looks like that permit (a food permit
prints a credit code too). The result is the evidence event ``recognition.result``, an
entry in the record's ``recognitions`` and a ``recognized`` message to the inspector, which
also carries the crop of the capture as a small JPEG (``crop_image``; not in the log or the
record, whose capture is evidence already).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Optional

from approval.inspections import InspectionBook
from evidence.derived import Capture, DerivedWork
from evidence.journal import Journal
from evidence.sealer import Sealer

from .compare import compare_licence, compare_sign, verdict
from .engine import Line, OcrEngine
from .licence import looks_like_licence, parse_licence
from .permit import PERMITS, looks_like_permit, parse_permit
from .preview import crop_preview

logger = logging.getLogger(__name__)

QUEUE_LIMIT = 16
KINDS = ("business_licence", "shop_sign", *PERMITS)
# In this order: a permit's title names no licence, but a code like food_license may mean either.
_HEURISTIC = (
    *((title, kind) for kind, title in PERMITS.items() if kind != "permit"), ("许可证", "permit"), ("permit", "permit"),
    ("licen", "business_licence"), ("执照", "business_licence"), ("storefront", "shop_sign"), ("门头", "shop_sign"), ("招牌", "shop_sign"),
)

Notify = Callable[[str, dict[str, Any]], Awaitable[None]]


class Recognizer(DerivedWork):
    """Reads captures in the background; one per app."""

    name = "recognition"

    def __init__(self, engine: OcrEngine, book: InspectionBook, journal: Journal, sealer: Sealer, notify: Notify) -> None:
        super().__init__(QUEUE_LIMIT)
        self.engine = engine
        self.book = book
        self.journal = journal
        self.sealer = sealer
        self.notify = notify
        self._executor: Optional[ThreadPoolExecutor] = None

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="ocr")
        await super().start()

    async def close(self) -> None:
        """Stop the worker and the thread (idempotent)."""
        await super().close()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    def kind_for(self, inspection_id: str, checkpoint: str) -> Optional[str]:
        """The kind the template (or the checkpoint's name) asks for, if any."""
        record = self.book.find(inspection_id)
        if record is None:
            return None
        template = self.book.template_of(record)
        configured = getattr(template, "recognize", {}) if template is not None else {}
        if checkpoint in configured:
            if configured[checkpoint] in KINDS:
                return str(configured[checkpoint])
            # a template's typo must not read a permit as a shop sign: say so, go by the name
            logger.warning("inspection %s: the template's recognize %r of %s is not one of %s",
                           inspection_id, configured[checkpoint], checkpoint, ", ".join(KINDS))
        title = next((str(c.get("title", "")) for c in record.checkpoints if c["code"] == checkpoint), "")
        for needle, kind in _HEURISTIC:
            if needle in checkpoint or needle in title:
                return kind
        return None

    def wants(self, capture: Capture) -> bool:
        """Captures of checkpoints that ask for a reading (the OCR costs a second or more of
        CPU; other captures are not read)."""
        return self.kind_for(capture.inspection_id, capture.checkpoint) is not None

    async def submit(self, inspection_id: str, checkpoint: str, key: str, data: bytes) -> None:
        """Queue a stored capture for reading whatever its checkpoint (returns at once)."""
        self.offer(Capture(inspection_id, checkpoint, key, data))

    async def make(self, capture: Capture) -> None:
        assert self._executor is not None
        wanted = self.kind_for(capture.inspection_id, capture.checkpoint)
        started = time.monotonic()
        lines = await asyncio.get_running_loop().run_in_executor(self._executor, self.engine.read, capture.data)
        ocr_ms = int((time.monotonic() - started) * 1000)
        if wanted in PERMITS and looks_like_permit(lines, wanted):
            kind: Optional[str] = wanted
        else:
            kind = "business_licence" if lines and looks_like_licence(lines) else wanted
        if kind is None:
            logger.debug("inspection %s: %s is neither licence nor sign", capture.inspection_id, capture.key)
            return
        record = await self.book.load(capture.inspection_id)
        applicant = record.applicant
        if kind == "business_licence":
            fields: dict[str, Any] = parse_licence(lines)
            matches = compare_licence(fields, applicant)
        elif kind in PERMITS:
            fields = parse_permit(lines, kind)
            matches = compare_licence(fields, applicant)  # the holder's name and credit code, as a licence's
        else:
            texts = [line.text for line in lines]
            fields = {"text": " ".join(texts) or None}
            matches = compare_sign(texts, applicant)
        data = {
            "kind": kind,
            "checkpoint": capture.checkpoint,
            "evidence_key": capture.key,
            "fields": fields,
            "matches": matches,
            "result": verdict(matches),
            "crop": _crop(lines),
            "engine": "rapidocr-PP-OCRv6",
            "ocr_ms": ocr_ms,
        }
        if record.is_open:
            event = await self.journal.record(capture.inspection_id, "recognition.result", "system", data)
        else:  # the session ended while this was read: the seal must cover it
            await self.sealer.seal(capture.inspection_id, ("recognition.result", "system", data))
            # the event the seal appended, for its time (the contract's recognitions[].at)
            event = next((e for e in reversed(await self.journal.events_of(capture.inspection_id, "recognition.result"))
                          if e["data"].get("evidence_key") == capture.key), {"at": None})
        entry = {k: data[k] for k in ("kind", "evidence_key", "fields", "matches", "result", "checkpoint", "crop")}
        entry["at"] = event.get("at")
        await self.book.add_recognition(capture.inspection_id, entry)
        logger.info("inspection %s: %s read as %s in %d ms: %s", capture.inspection_id, capture.key, kind, ocr_ms, data["result"])
        crop = _crop(lines)
        image = None if crop is None else await asyncio.get_running_loop().run_in_executor(self._executor, crop_preview, capture.data, crop)
        await self.notify(capture.inspection_id, {**entry, "crop_image": image})


def _crop(lines: list[Line]) -> Optional[list[int]]:
    """The box around everything read, for the page to show that part of the capture."""
    if not lines:
        return None
    return [min(l.box[0] for l in lines), min(l.box[1] for l in lines), max(l.box[2] for l in lines), max(l.box[3] for l in lines)]
