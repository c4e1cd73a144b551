"""The 现场勘验笔录 (on-site inspection record) as a PDF, with CJK fonts embedded.

Built with fpdf2 from what the evidence says: the case and item, the applicant (masked
unless the reader may see personal data), the inspector and observers, times and
duration, the location check, each checkpoint with one still, the licence and sign
readings with their comparison, prudent warnings, notes, both signatures, the verdict, the
manifest's SHA-256 and a QR code leading to its verification. Free text goes through
:func:`privacy.masking.scrub`. Fonts: Debian's fonts-noto-cjk (scripts/install.sh).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from privacy.masking import mask_id_number, mask_name, mask_phone, scrub
from recognition.permit import PERMITS

from .record import KIND_LABELS, ID_TYPE_LABELS, OUTCOME_LABELS, china_time, duration_text

__all__ = ["PdfRecord", "render_inspection_record_pdf", "FONT_CANDIDATES"]

#: (path, index in the collection) of a Simplified Chinese face; the first that exists wins
FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
)
KIND_NAMES = {"business_licence": "营业执照", "shop_sign": "门头招牌", **PERMITS}
FIELD_NAMES = {
    "name": "名称", "uscc": "统一社会信用代码", "type": "类型", "legal_representative": "法定代表人/经营者",
    "address": "住所/经营场所", "established": "成立日期", "valid_from": "营业期限自", "valid_to": "营业期限至",
    "text": "识别文字", "permit_no": "许可证编号",
}
#: a permit's period is a validity and its address the premises (a licence's: a term, 住所)
PERMIT_FIELD_NAMES = {**FIELD_NAMES, "address": "经营场所", "valid_from": "有效期自", "valid_to": "有效期至"}
RESULT_NAMES = {"matched": "一致", "differs": "不一致", "unreadable": "无法识别"}


@dataclass
class PdfRecord:
    """What the PDF shows. ``images`` maps evidence keys to bytes (stills, photos, signatures)."""

    record: Mapping[str, Any]
    events: Sequence[Mapping[str, Any]]
    manifest_sha256: Optional[str]
    verify_url: str
    images: Mapping[str, bytes] = field(default_factory=dict)
    show_personal: bool = False
    inspector_name: Optional[str] = None
    warnings: Sequence[Mapping[str, Any]] = ()


#: The label column of the key-value rows.
LABEL_MM = 40


def _font() -> tuple[str, int]:
    for path, index in FONT_CANDIDATES:
        if Path(path).is_file():
            return path, index
    raise RuntimeError("no CJK font: install Debian's fonts-noto-cjk (scripts/install.sh does)")


def _match(value: Any) -> str:
    return {True: "一致", False: "不一致"}.get(value, "无法比对")


class _Writer:
    def __init__(self, content: PdfRecord) -> None:
        from fpdf import FPDF

        self.c = content
        self.r = content.record
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(True, margin=15)
        path, index = _font()
        self.pdf.add_font("cjk", fname=path, collection_font_number=index)
        self.pdf.set_title(f"现场勘验笔录 {self.r.get('case_no', '')}")
        self.pdf.add_page()

    def heading(self, text: str, keep_mm: float = 30) -> None:
        """A section heading; it starts a new page rather than stand alone at the foot of
        one (``keep_mm``: the room the heading wants below it for what follows)."""
        if self.pdf.get_y() + keep_mm > self.pdf.h - self.pdf.b_margin:
            self.pdf.add_page()
        self.pdf.ln(3)
        self.pdf.set_font("cjk", size=13)
        self.pdf.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        self.pdf.set_draw_color(80, 80, 80)
        self.pdf.line(self.pdf.l_margin, self.pdf.get_y(), self.pdf.w - self.pdf.r_margin, self.pdf.get_y())
        self.pdf.ln(1)

    def rows(self, pairs: Sequence[tuple[str, Any]]) -> None:
        self.pdf.set_font("cjk", size=10)
        for label, value in pairs:
            text = scrub("—" if value is None or value == "" else str(value))
            self.pdf.set_x(self.pdf.l_margin)
            top, page = self.pdf.get_y(), self.pdf.page
            # a long label (与申请比对：统一社会信用代码) wraps in its column instead of running
            # into the value
            lines = self.pdf.multi_cell(LABEL_MM, 6, label, dry_run=True, output="LINES")
            label_lines = len(lines) if isinstance(lines, list) else 1
            self.pdf.multi_cell(LABEL_MM, 6, label, new_x="RIGHT", new_y="TOP")
            self.pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
            if self.pdf.page == page:
                self.pdf.set_y(max(self.pdf.get_y(), top + 6 * label_lines))

    def image(self, key: str, width: float, caption: str) -> None:
        data = self.c.images.get(key)
        if data is None:
            self.rows([("影像", f"{key}（未附）")])
            return
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            ratio = img.height / max(img.width, 1)
            height = width * ratio
            if self.pdf.get_y() + height + 8 > self.pdf.h - self.pdf.b_margin:
                self.pdf.add_page()
            png = io.BytesIO()
            img.convert("RGB").save(png, "JPEG", quality=80)
        self.pdf.image(png, x=self.pdf.l_margin, w=width, h=height)
        self.pdf.set_font("cjk", size=8)
        self.pdf.multi_cell(0, 4, caption, new_x="LMARGIN", new_y="NEXT")

    def of_type(self, *types: str) -> list[Mapping[str, Any]]:
        return [e for e in self.c.events if e.get("type") in types]

    def write(self) -> bytes:
        r, pdf = self.r, self.pdf
        pdf.set_font("cjk", size=20)
        pdf.cell(0, 14, "现场勘验笔录", align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("cjk", size=10)
        pdf.cell(0, 6, f"案件编号 {r.get('case_no', '')}", align="C", new_x="LMARGIN", new_y="NEXT")

        self.heading("一、案件与事项")
        self.rows([("案件编号", r.get("case_no")), ("审批事项", f"{r.get('item_name', '')}（{r.get('item_code', '')}）"),
                   ("踏勘编号", r.get("id")), ("踏勘方式", "远程视频踏勘")])

        self.heading("二、申请人与场所")
        applicant: Mapping[str, Any] = r.get("applicant") or {}
        id_type = applicant.get("id_type")
        id_number = str(applicant.get("id_number") or "")
        if not self.c.show_personal and id_type != "USCC":
            id_number = mask_id_number(id_number) if id_number else ""
        contact = str(applicant.get("contact_name") or "")
        phone = str(applicant.get("contact_phone") or "")
        if not self.c.show_personal:
            contact, phone = (mask_name(contact) if contact else ""), (mask_phone(phone) if phone else "")
        site: Mapping[str, Any] = r.get("site") or {}
        self.rows([("申请人", applicant.get("name")), ("申请人类型", KIND_LABELS.get(str(applicant.get("kind")), applicant.get("kind"))),
                   ("证件", f"{ID_TYPE_LABELS.get(str(id_type), id_type)} {id_number}"), ("联系人", contact), ("联系电话", phone),
                   ("场所地址", site.get("address")),
                   ("场所坐标", f"纬度 {site.get('lat')}，经度 {site.get('lon')}，半径 {site.get('radius_m')} 米" if site.get("lat") is not None else None)])

        self.heading("三、踏勘人员与时间")
        observers = sorted({str((e.get("data") or {}).get("id")) for e in self.of_type("participant.joined") if e.get("actor") == "observer"})
        started, ended = r.get("started_at"), r.get("ended_at")
        duration = r.get("duration_s")
        self.rows([("踏勘人员", self.c.inspector_name or r.get("inspector_name") or r.get("inspector_user_id")),
                   ("旁听人员", "、".join(observers) if observers else "无"),
                   ("开始时间", china_time(started)), ("结束时间", china_time(ended)),
                   ("踏勘时长", duration_text(duration * 1000) if isinstance(duration, (int, float)) else None),
                   ("时间说明", "北京时间（UTC+8），由服务器记录")])

        self.heading("四、位置核验")
        locations = self.of_type("location.updated")
        if locations:
            last = locations[-1].get("data") or {}
            within = {True: "在核验半径内", False: "超出核验半径"}.get(bool(last["within_radius"]), "未能判断") if isinstance(last.get("within_radius"), bool) else "未能判断"
            self.rows([("最后定位", f"纬度 {last.get('lat')}，经度 {last.get('lon')}，精度 {last.get('accuracy_m')} 米"),
                       ("与场所距离", f"{last.get('distance_m')} 米，{within}"), ("定位时间", china_time(locations[-1].get("at")))])
        else:
            self.rows([("定位", "申请人未报告位置")])

        self.heading("五、检查点")
        captures: dict[str, list[Mapping[str, Any]]] = {}
        for event in self.of_type("still.captured", "photo.uploaded"):
            captures.setdefault(str((event.get("data") or {}).get("checkpoint")), []).append(event)
        for number, checkpoint in enumerate(r.get("checkpoints") or [], start=1):
            code = str(checkpoint.get("code"))
            shots = captures.get(code, [])
            pdf.set_font("cjk", size=11)
            pdf.multi_cell(0, 7, f"{number}. {checkpoint.get('title', code)}（{'必查' if checkpoint.get('required') else '选查'}，"
                                 f"{'已采集 ' + str(len(shots)) + ' 项' if shots else '未采集'}）", new_x="LMARGIN", new_y="NEXT")
            if shots:
                data = shots[0].get("data") or {}
                source = "服务器截图" if shots[0].get("type") == "still.captured" else "申请人照片"
                self.image(str(data.get("key")), 70, f"{source} {china_time(shots[0].get('at'))} {data.get('key')} SHA-256 {data.get('sha256')}")

        self.heading("六、证照与招牌识别")
        readings = list(r.get("recognitions") or [])
        if not readings:
            self.rows([("识别", "无")])
        for reading in readings:
            matches = reading.get("matches") or {}
            fields = reading.get("fields") or {}
            names = PERMIT_FIELD_NAMES if reading.get("kind") in PERMITS else FIELD_NAMES
            self.rows([("识别对象", f"{KIND_NAMES.get(str(reading.get('kind')), reading.get('kind'))}（{reading.get('evidence_key')}）"),
                       ("结果", RESULT_NAMES.get(str(reading.get("result")), reading.get("result"))),
                       *[(names.get(k, k), v) for k, v in fields.items() if k in names and v],
                       *[(f"与申请比对：{names.get(k, k)}", _match(v)) for k, v in matches.items()]])

        self.heading("七、审慎提示")
        self.rows([(str(w.get("list", "名单")), w.get("match")) for w in self.c.warnings] or [("提示", "无")])

        self.heading("八、踏勘备注")
        notes = self.of_type("note")
        self.rows([(china_time(n.get("at")), (n.get("data") or {}).get("text")) for n in notes] or [("备注", "无")])

        self.heading("九、签名")
        signed = {str((e.get("data") or {}).get("role") or e.get("actor")): e for e in self.of_type("signature.signed")}
        for role, label in (("applicant", "申请人签名"), ("inspector", "踏勘人员签名")):
            signature = signed.get(role)
            if signature is None:
                self.rows([(label, "未签名")])
                continue
            data = signature.get("data") or {}
            png = next((k for k in self.c.images if k.startswith(f"signatures/{role}") and k.endswith(".png")), None)
            self.rows([(label, f"校验码 {data.get('code')}，{china_time(signature.get('at'))}")])
            if png:
                self.image(png, 50, png)

        self.heading("十、研判结论")
        verdict = r.get("verdict") or {}
        reasons = verdict.get("reasons") or []
        self.rows([("结论", OUTCOME_LABELS.get(str(verdict.get("outcome")), verdict.get("outcome") or "尚无")),
                   ("理由", "；".join(str(x if isinstance(x, str) else x.get("message", x)) for x in reasons) or None),
                   ("规则版本", verdict.get("rules_version"))])

        self.heading("十一、封存与核验", keep_mm=70)  # with its QR code
        self.rows([("清单 SHA-256", self.c.manifest_sha256 or "尚未封存"), ("核验地址", self.c.verify_url)])
        import qrcode

        qr = qrcode.make(self.c.verify_url)
        buf = io.BytesIO()
        qr.save(buf)
        if pdf.get_y() + 40 > pdf.h - pdf.b_margin:
            pdf.add_page()
        pdf.image(buf, x=pdf.l_margin, w=35, h=35)
        return bytes(pdf.output())


def render_inspection_record_pdf(content: PdfRecord) -> bytes:
    """The PDF bytes of the record."""
    return _Writer(content).write()
