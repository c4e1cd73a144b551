"""The 现场勘验笔录 PDF: its text (pdftotext) holds the case, the names and the manifest hash."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from archive.inspection_record_pdf import PdfRecord, render_inspection_record_pdf
from testkit.browser import artifact

HASH = "ab" * 32


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (640, 360), color).save(buf, "JPEG")
    return buf.getvalue()


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (300, 120), (255, 255, 255)).save(buf, "PNG")
    return buf.getvalue()


RECORD = {
    "id": "insp-1", "case_no": "DZ-2026-000123", "item_code": "food-business-license", "item_name": "食品经营许可",
    "applicant": {"name": "德州某某餐饮有限公司", "kind": "legal_person", "id_type": "USCC", "id_number": "91350100M000100Y43",
                  "contact_name": "张三丰", "contact_phone": "13800000000"},
    "site": {"address": "德州市德城区某路1号", "lat": 37.4355, "lon": 116.3594, "radius_m": 300},
    "started_at": "2026-11-27T01:30:00.000Z", "ended_at": "2026-11-27T01:52:10.000Z", "duration_s": 1330.0,
    "checkpoints": [{"code": "storefront", "title": "门头招牌", "required": True, "captured": True, "evidence": ["stills/storefront/1.jpg"]},
                    {"code": "cold_storage", "title": "冷藏冷冻设施", "required": True, "captured": False, "evidence": []}],
    "verdict": {"outcome": "pass", "reasons": [], "rules_version": "food-business-license@2026.1"},
    "recognitions": [{"kind": "business_licence", "evidence_key": "stills/storefront/1.jpg", "result": "matched",
                      "fields": {"name": "德州某某餐饮有限公司", "uscc": "91350100M000100Y43"}, "matches": {"name": True, "uscc": True}},
                     {"kind": "food_permit", "evidence_key": "photos/permit/1.jpg", "result": "matched",
                      "fields": {"name": "德州某某餐饮有限公司", "permit_no": "JY13714020012345", "valid_to": "2030-05-31"},
                      "matches": {"name": True, "uscc": None}}],
}
EVENTS = [
    {"type": "still.captured", "at": "2026-11-27T01:31:00.000Z", "actor": "inspector",
     "data": {"checkpoint": "storefront", "key": "stills/storefront/1.jpg", "sha256": "cd" * 32}},
    {"type": "location.updated", "at": "2026-11-27T01:32:00.000Z", "actor": "applicant",
     "data": {"lat": 37.4356, "lon": 116.3595, "accuracy_m": 12, "distance_m": 14.2, "within_radius": True}},
    {"type": "note", "at": "2026-11-27T01:40:00.000Z", "actor": "inspector", "data": {"text": "后厨生熟分开"}},
    {"type": "signature.signed", "at": "2026-11-27T01:50:00.000Z", "actor": "applicant", "data": {"role": "applicant", "code": "AB12-CD34"}},
    {"type": "signature.signed", "at": "2026-11-27T01:51:00.000Z", "actor": "inspector", "data": {"role": "inspector", "code": "EF56-7890"}},
]


def _content(show_personal: bool) -> PdfRecord:
    return PdfRecord(
        RECORD, EVENTS, HASH, "http://127.0.0.1/verify/insp-1",
        images={"stills/storefront/1.jpg": _jpeg((30, 90, 160)), "signatures/applicant-1.png": _png(), "signatures/inspector-1.png": _png()},
        show_personal=show_personal, inspector_name="李踏勘",
        warnings=[{"list": "失信名单", "match": "某某"}],
    )


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed (scripts/install.sh installs it)")
def test_pdf_text_and_pages(tmp_path: Path) -> None:
    pdf = render_inspection_record_pdf(_content(show_personal=False))
    assert pdf.startswith(b"%PDF")
    (tmp_path / "record.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "record.pdf"), "-"], capture_output=True, check=True, text=True).stdout
    compact = text.replace(" ", "")
    for needle in ("现场勘验笔录", "DZ-2026-000123", "德州某某餐饮有限公司", "李踏勘", HASH, "AB12-CD34", "一致", "后厨生熟分开", "失信名单",
                   "食品经营许可证", "JY13714020012345", "有效期至"):
        assert needle in compact, needle
    assert "13800000000" not in compact and "张三丰" not in compact  # masked for this reader
    fonts = subprocess.run(["pdffonts", str(tmp_path / "record.pdf")], capture_output=True, check=True, text=True).stdout
    assert "yes" in fonts.splitlines()[-1]  # embedded
    subprocess.run(["pdftoppm", "-png", "-r", "80", str(tmp_path / "record.pdf"), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and Image.open(pages[0]).size[0] > 300
    for n, page in enumerate(pages, 1):  # kept to be looked at, like the pages' screenshots
        shutil.copy(page, artifact(f"record-pdf-page-{n}.png"))


def test_personal_data_shown_to_those_allowed() -> None:
    pdf = render_inspection_record_pdf(_content(show_personal=True))
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed (scripts/install.sh installs it)")
async def test_record_pdf_route_stores_it_as_evidence(tmp_path: Path) -> None:
    import aiohttp

    from evidence.verify import verify_inspection
    from testkit.server import create_inspection, running_server, logged_events
    from testkit.sockets import Participant

    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        url = server.base_url + f"/api/v1/inspections/{created['id']}/record.pdf"
        async with http.get(url, headers=server.headers()) as r:
            assert r.status == 409  # not before the end
        inspector = Participant(server.base_url, created["inspector_url"])
        assert await inspector.connect() and (await inspector.call("join"))["ok"]
        assert (await inspector.call("end"))["ok"]
        await inspector.close()
        from testkit.media import wait_for

        root = tmp_path / "data" / "objects" / "inspections" / created["id"]
        for _ in range(300):
            if any(e["type"] == "verdict" for e in await logged_events(server, created["id"])):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the judgement files the ledger and drops the log from memory
        async with http.get(server.base_url + f"/api/v1/inspections/{created['id']}", headers=server.headers()) as r:
            cited = (await r.json())["manifest"]["sha256"]
        async with http.get(url, headers=server.headers()) as r:  
            assert r.status == 200 and r.content_type == "application/pdf"
            personal = await r.read()
        stored = (root / "record" / "inspection-record-1.pdf").read_bytes()
        for name, pdf in (("stored", stored), ("personal", personal)):
            (tmp_path / f"{name}.pdf").write_bytes(pdf)
        text = subprocess.run(["pdftotext", str(tmp_path / "stored.pdf"), "-"], capture_output=True, check=True, text=True).stdout.replace(" ", "")
        assert "DZ-2026-000123" in text and "德州某某餐饮有限公司" in text and cited in text
        assert "138****0000" in text  # the evidence copy masks the phone number
        assert personal.startswith(b"%PDF")
        events = await logged_events(server, created["id"])
        rendered = [e for e in events if e["type"] == "record.rendered"]
        assert len(rendered) == 1 and rendered[0]["data"]["key"] == "record/inspection-record-1.pdf", rendered
        async with http.get(url, headers=server.headers()) as r:
            assert r.status == 200
        assert await logged_events(server, created["id"]) == events  # served again, not stored again
        report = await verify_inspection(server.services.store, created["id"])
        assert report.ok, report
