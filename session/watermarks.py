"""Display copies of stills and photos, stamped with time, place, case and inspector.

The original stays exactly as captured (its hash is in the log and the manifest); the
copy is a new blob ``display/<original key>.jpg`` whose ``still.watermarked`` event names
the original's key and SHA-256, so the log links the two. Stamping runs in a worker
thread (PIL), after the capture has been acknowledged.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import io
from pathlib import Path
from typing import Any, Optional

from PIL import Image, ImageDraw, ImageFont

from approval.inspections import InspectionBook
from evidence.derived import Capture, DerivedWork
from evidence.journal import Journal
from evidence.sealer import Sealer

CHINA = datetime.timezone(datetime.timedelta(hours=8))
FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


def stamp(image: bytes, lines: list[str]) -> bytes:
    """``image`` with ``lines`` written on a dark band along its bottom, as JPEG."""
    with Image.open(io.BytesIO(image)) as src:
        img = src.convert("RGB")
    size = max(14, img.width // 60)
    font: Any = ImageFont.truetype(str(FONT), size, index=2) if FONT.is_file() else ImageFont.load_default()
    band = int(size * 1.4 * len(lines) + size * 0.6)
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, img.height - band, img.width, img.height), fill=(0, 0, 0, 150))
    y = img.height - band + size * 0.3
    for line in lines:
        draw.text((size * 0.6, y), line, fill=(255, 255, 255, 255), font=font)
        y += size * 1.4
    out = Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB")
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=88)
    return buf.getvalue()


class Watermarker(DerivedWork):
    """The session's capture listener that files a stamped display copy of each capture."""

    name = "watermarks"

    def __init__(self, book: InspectionBook, journal: Journal, sealer: Sealer) -> None:
        super().__init__(32)
        self.book = book
        self.journal = journal
        self.sealer = sealer

    async def lines_for(self, inspection_id: str, key: str) -> list[str]:
        record = await self.book.load(inspection_id)
        # only the two lines wanted are parsed (a long log's whole parse holds the loop ~75 ms)
        last_fix = await self.journal.last_event_of(inspection_id, "location.updated")
        location: Optional[dict[str, Any]] = None if last_fix is None else last_fix.get("data")
        capture = await self.journal.event_naming(inspection_id, key)
        captured = None if capture is None else capture.get("at")
        moment = datetime.datetime.fromisoformat(str(captured).replace("Z", "+00:00")) if captured else datetime.datetime.now(datetime.UTC)
        place = "位置：申请人未报告"
        if location:
            distance = location.get("distance_m")
            place = f"位置：{location.get('lat')}, {location.get('lon')}" + (f"，距场所 {distance} 米" if distance is not None else "")
        return [
            f"{record.case_no}  {record.item_name}",
            f"时间：{moment.astimezone(CHINA).strftime('%Y-%m-%d %H:%M:%S')}（北京时间）",
            place,
            f"踏勘人员：{record.inspector_user_id or '—'}  仅供展示，原件见 {key}",
        ]

    async def make(self, capture: Capture) -> None:
        inspection_id, key, data = capture.inspection_id, capture.key, capture.data
        lines = await self.lines_for(inspection_id, key)
        copy = await asyncio.to_thread(stamp, data, lines)
        await self.journal.record_blob(
            inspection_id, f"display/{key.rsplit('.', 1)[0]}.jpg", copy, "image/jpeg", "still.watermarked", "system",
            {"checkpoint": capture.checkpoint, "original_key": key, "original_sha256": hashlib.sha256(data).hexdigest(), "lines": lines},
        )
        if not (await self.book.load(inspection_id)).is_open:  # ended before the session waited for it: the seal must cover it
            await self.sealer.seal(inspection_id)
