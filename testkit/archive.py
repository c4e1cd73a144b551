"""A small but real sealed inspection: WebM segments, a JPEG still and photo, a signature."""

from __future__ import annotations

import fractions
import io
import json
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, ImageDraw

from approval.ids import resident_id_check_char
from approval.inspections import Inspection
from evidence.journal import Journal
from evidence.signing import SigningKeys
from storage.local import LocalObjectStore

ID_NUMBER = "37140219900101123" + resident_id_check_char("37140219900101123")
PHONE = "13800138000"


def webm_segment(frames: int = 6, width: int = 64, height: int = 48) -> bytes:
    """A few VP8 frames muxed into WebM in memory (the first a keyframe)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 10)
        for i in range(frames):
            image = Image.new("RGB", (width, height), (20 * i, 90, 160))
            ImageDraw.Draw(image).rectangle([i * 4, 10, i * 4 + 12, 30], fill=(230, 30, 30))
            frame = av.VideoFrame.from_image(image)
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def image_bytes(fmt: str, color: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).ellipse([10, 10, 50, 40], fill=(255, 255, 255))
    image.save(buffer, fmt)
    return buffer.getvalue()


def record_of(inspection_id: str, case_no: str) -> Inspection:
    return Inspection(
        id=inspection_id,
        case_no=case_no,
        item_code="food-business-license",
        item_name="食品经营许可",
        applicant={
            "name": "张小三", "kind": "natural_person", "id_type": "RESIDENT_ID", "id_number": ID_NUMBER,
            "contact_name": "李四", "contact_phone": PHONE,
        },
        site={"address": "山东省德州市德城区新湖大街1号", "lat": 37.45, "lon": 116.3, "radius_m": 200},
        checkpoints=[
            {"code": "storefront", "title": "门头及招牌", "required": True, "captured": True, "evidence": ["stills/storefront/1.jpg"]},
            {"code": "kitchen", "title": "后厨操作间", "required": True, "captured": True, "evidence": ["photos/kitchen/1.jpg"]},
        ],
        callback_url=None,
        scheduled_at="2026-11-26T01:55:00.000Z",
        created_at="2026-11-25T08:00:00.000Z",
        expires_at="2026-11-27T08:00:00.000Z",
        api_key_id="k1",
        status="judged",
        started_at="2026-11-26T02:00:00.000Z",
        ended_at="2026-11-26T02:12:34.000Z",
        verdict={"outcome": "pass", "reasons": ["全部必查项已采集"], "rules_version": "food-v1", "decided_at": "2026-11-26T02:13:00.000Z"},
    )


@dataclass
class Sealed:
    store: LocalObjectStore
    keys: SigningKeys
    data_dir: Path
    ids: list[str]


async def seal_inspection(store: LocalObjectStore, keys: SigningKeys, inspection_id: str, case_no: str) -> Inspection:
    """Record a whole small inspection, store its record, and seal it."""
    journal = Journal(store, keys)
    record = record_of(inspection_id, case_no)
    await journal.record(inspection_id, "participant.joined", "inspector", {"id": "inspector"})
    await journal.record(inspection_id, "participant.joined", "applicant", {"id": "applicant"})
    await journal.record(inspection_id, "session.live", "system", {})
    segment = webm_segment()
    for seq in (1, 2):
        await journal.record_blob(
            inspection_id, f"media/applicant-video/{seq:06d}.webm", segment, "video/webm", "media.segment", "recorder",
            {"track": "applicant-video", "seq": seq, "codec": "vp8", "duration_ms": 600,
             "wall_start": f"2026-11-26T02:00:0{seq}.000+00:00", "wall_end": f"2026-11-26T02:00:0{seq}.600+00:00"},
        )
    await journal.record(inspection_id, "checkpoint.prompted", "inspector", {"checkpoint": "storefront"})
    await journal.record_blob(
        inspection_id, "stills/storefront/1.jpg", image_bytes("JPEG", (40, 120, 40)), "image/jpeg", "still.captured", "inspector",
        {"checkpoint": "storefront", "width": 80, "height": 60, "source": "server"},
    )
    await journal.record_blob(
        inspection_id, "photos/kitchen/1.jpg", image_bytes("JPEG", (120, 40, 40)), "image/jpeg", "photo.uploaded", "applicant",
        {"checkpoint": "kitchen", "source": "applicant"},
    )
    # Free text with personal numbers in it: the record must show them masked.
    await journal.record(inspection_id, "note", "inspector", {"text": f"申请人身份证{ID_NUMBER}，电话{PHONE}，现场核对一致"})
    await journal.record(inspection_id, "chat", "applicant", {"text": f"我的手机是 {PHONE}"})
    await journal.record(inspection_id, "signature.requested", "inspector", {"role": "applicant"})
    head = await journal.head(inspection_id)
    details = {"role": "applicant", "binds_log_head": head, "code": head[:8]}
    strokes = {"role": "applicant", **details, "strokes": [[{"x": 1, "y": 2, "t": 0}, {"x": 5, "y": 9, "t": 30}]]}
    await journal.record_blob(inspection_id, "signatures/applicant-1.json", json.dumps(strokes).encode(), "application/json",
                              "signature.strokes", "applicant", details)
    await journal.record_blob(inspection_id, "signatures/applicant-1.png", image_bytes("PNG", (250, 250, 250), (120, 40)),
                              "image/png", "signature.signed", "applicant", details)
    await journal.record(inspection_id, "session.ended", "inspector", {})
    await store.put(f"records/inspections/{inspection_id}.json", record.to_json(), "application/json")
    await journal.seal(inspection_id, record.evidence_summary(), record.verdict, "food-v1")
    return record


async def make_store(data_dir: Path, count: int = 1) -> Sealed:
    """A started local store with ``count`` sealed inspections."""
    store = LocalObjectStore(data_dir / "objects")
    await store.start()
    keys = SigningKeys(data_dir / "keys", store)
    await keys.start()
    ids = []
    for n in range(1, count + 1):
        inspection_id = f"2026112602000{n}-00112233aabbcc{n:02d}"
        await seal_inspection(store, keys, inspection_id, f"DZ-2026-{n:04d}")
        ids.append(inspection_id)
    return Sealed(store, keys, data_dir, ids)
