"""``record.html``: the printable, human-readable record of one inspection, in Chinese.

One self-contained HTML file (images embedded as data URIs, no script, no outside link):
the case, the applicant (identity and phone numbers masked), the site, the times, every
checkpoint with its stills and photos, the signatures with their on-screen codes, the
recordings, the event timeline, the verdict, the seal, and how to check it all by hand.
Every piece of free text (notes, chat) goes through :func:`privacy.masking.scrub`.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from privacy.masking import mask_id_number, mask_name, mask_phone, scrub

from .layout import EVIDENCE, KEYS, SUMS

__all__ = ["RecordContent", "render_record"]

CHINA = datetime.timezone(datetime.timedelta(hours=8))

KIND_LABELS = {"natural_person": "自然人", "legal_person": "法人", "other_org": "其他组织"}
ID_TYPE_LABELS = {"USCC": "统一社会信用代码", "RESIDENT_ID": "居民身份证", "PASSPORT": "护照", "OTHER": "其他证件"}
STATUS_LABELS = {
    "scheduled": "已预约", "live": "进行中", "interrupted": "已中断", "ended": "已结束",
    "judged": "已研判", "reviewed": "已复核", "cancelled": "已取消",
}
OUTCOME_LABELS = {"pass": "通过", "fail": "不通过", "manual_review": "转人工审核"}
ROLE_LABELS = {"inspector": "踏勘人员", "applicant": "申请人", "observer": "旁听人员", "system": "系统", "recorder": "录制服务"}
TRACK_LABELS = {
    "applicant-video": "申请人视频", "applicant-audio": "申请人音频",
    "inspector-video": "踏勘人员视频", "inspector-audio": "踏勘人员音频",
}
EVENT_LABELS = {
    "participant.joined": "加入会话", "participant.left": "离开会话",
    "participant.reconnected": "重新连接", "participant.media": "媒体状态",
    "session.live": "踏勘开始", "session.interrupted": "会话中断", "session.ended": "踏勘结束",
    "session.cancelled": "踏勘取消", "checkpoint.prompted": "提示检查点",
    "still.captured": "现场截图", "photo.uploaded": "上传照片", "note": "踏勘备注", "chat": "文字消息",
    "location.updated": "位置更新", "signature.requested": "请求签名", "signature.strokes": "签名笔迹",
    "signature.signed": "完成签名", "timer.warning": "时长提醒", "timer.final_warning": "时长最后提醒",
    "timer.limit": "到达时长上限", "timer.overtime_reason": "超时说明", "media.segment": "录像分段",
    "session.expired": "无人加入，链接过期", "inspector.assigned": "分派检查员", "inspector.claimed": "检查员认领",
    "inspector.taken_over": "督导员接管", "observer.invited": "邀请旁听人员", "applicant.invited": "短信发送链接",
    "inspection.rescheduled": "改期",
}
IMAGE_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
# Detail fields a timeline row shows, in this order; the rest stays in events.jsonl.
DETAIL_FIELDS = ("checkpoint", "role", "code", "text", "reason", "key", "track", "distance_m", "within_radius", "elapsed_s")

STYLE = """
body { font-family: "Noto Serif CJK SC", "Songti SC", SimSun, serif; margin: 2em auto; max-width: 60em; color: #111; }
h1 { text-align: center; font-size: 1.6em; } h2 { border-bottom: 1px solid #444; font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; } th, td { border: 1px solid #888; padding: .25em .5em; text-align: left; vertical-align: top; font-size: .92em; }
th { background: #eee; width: 9em; } .mono { font-family: monospace; font-size: .85em; word-break: break-all; }
figure { display: inline-block; margin: .4em; max-width: 46%; vertical-align: top; } figure img { max-width: 100%; border: 1px solid #aaa; }
figcaption { font-size: .8em; } .sig img { max-height: 8em; background: #fff; } pre { white-space: pre-wrap; background: #f6f6f6; padding: .6em; font-size: .85em; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } figure, tr { break-inside: avoid; } }
"""


@dataclass
class RecordContent:
    """What the record shows; gathered by :func:`archive.package.export_package`.

    ``record`` is the inspection record (``records/inspections/<id>.json``) if there is one,
    with ``applicant.id_number`` and ``contact_phone`` already decrypted or left encrypted;
    ``images`` maps evidence keys (relative to the inspection) to their bytes.
    """

    manifest: Mapping[str, Any]
    manifest_sha256: str
    events: Sequence[Mapping[str, Any]]
    record: Mapping[str, Any] | None = None
    images: Mapping[str, bytes] = field(default_factory=dict)
    authority: str | None = None
    retention_label: str | None = None
    created_at: str | None = None
    extra_html: str | None = None


def china_time(stamp: Any, with_ms: bool = False) -> str:
    """An RFC 3339 time as Beijing time (``2026-11-26 20:00:05``), or ``—``."""
    if not stamp:
        return "—"
    try:
        moment = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return str(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    text = moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
    if with_ms:
        text += f".{moment.microsecond // 1000:03d}"
    return text


def duration_text(ms: Any) -> str:
    """Milliseconds as ``12分05秒`` (or ``—``)."""
    if not isinstance(ms, (int, float)) or isinstance(ms, bool):
        return "—"
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}小时" if hours else "") + f"{minutes}分{secs:02d}秒"


def _e(value: Any) -> str:
    return escape(scrub("—" if value is None or value == "" else str(value)))


def _staff_text(staff: Any) -> str | None:
    """A staff member named in the evidence: "张三 (zhang.san)"."""
    if not isinstance(staff, Mapping) or not staff.get("user_id"):
        return None
    return f"{staff.get('name') or ''}（{staff['user_id']}）"


def _rows(pairs: Sequence[tuple[str, str]]) -> str:
    """Table rows; values are already HTML."""
    return "".join(f"<tr><th>{escape(label)}</th><td>{value}</td></tr>" for label, value in pairs)


def _masked_id(id_type: Any, value: Any) -> str:
    if not value:
        return "—"
    if isinstance(value, str) and value.startswith("enc:"):
        return "（加密存储，未显示）"
    if id_type == "USCC":  # an organisation's public credit code, not personal data
        return escape(str(value))
    return escape(mask_id_number(str(value)))


def _masked_phone(value: Any) -> str:
    if not value:
        return "—"
    if isinstance(value, str) and value.startswith("enc:"):
        return "（加密存储，未显示）"
    return escape(mask_phone(str(value)))


def _image(key: str, data: bytes | None, caption: str, css: str = "") -> str:
    path = EVIDENCE + key
    extension = key.rsplit(".", 1)[-1].lower()
    if data is not None and extension in IMAGE_TYPES:
        src = f"data:{IMAGE_TYPES[extension]};base64,{base64.b64encode(data).decode('ascii')}"
    else:
        src = path
    return (
        f'<figure class="{css}"><img src="{escape(src)}" alt="{escape(path)}">'
        f'<figcaption>{caption}<br><span class="mono">{escape(path)}</span></figcaption></figure>'
    )


class _Renderer:
    def __init__(self, content: RecordContent) -> None:
        self.c = content
        self.m = content.manifest
        self.inspection: Mapping[str, Any] = self.m.get("inspection") or {}
        self.record: Mapping[str, Any] = content.record or {}
        self.blob_events = {
            str((e.get("data") or {}).get("key")): e for e in content.events if isinstance((e.get("data") or {}).get("key"), str)
        }

    def field(self, name: str) -> Any:
        return self.record.get(name, self.inspection.get(name))

    def title(self) -> str:
        return f"远程踏勘记录 {self.field('case_no') or self.m.get('inspection_id')}"

    def basics(self) -> str:
        duration = self.inspection.get("duration_ms")
        if duration is None and self.record.get("started_at") and self.record.get("ended_at"):
            start = datetime.datetime.fromisoformat(str(self.record["started_at"]).replace("Z", "+00:00"))
            end = datetime.datetime.fromisoformat(str(self.record["ended_at"]).replace("Z", "+00:00"))
            duration = (end - start).total_seconds() * 1000
        status = self.field("status")
        return "<h2>一、基本情况</h2><table>" + _rows([
            ("案件编号", _e(self.field("case_no"))),
            ("审批事项", _e(f"{self.field('item_name') or ''}（{self.field('item_code') or ''}）")),
            ("踏勘编号", f'<span class="mono">{_e(self.m.get("inspection_id"))}</span>'),
            ("踏勘方式", "远程视频踏勘"),
            ("踏勘状态", _e(STATUS_LABELS.get(str(status), status))),
            ("踏勘人员", _e(_staff_text(self.inspection.get("inspector") or (
                {"user_id": self.record.get("inspector_user_id"), "name": self.record.get("inspector_name")}
                if self.record.get("inspector_user_id") else None)))),
            ("实施机关", _e(self.c.authority)),
            ("预约时间", _e(china_time(self.field("scheduled_at")))),
            ("开始时间", _e(china_time(self.field("started_at")))),
            ("结束时间", _e(china_time(self.field("ended_at")))),
            ("踏勘时长", _e(duration_text(duration))),
            ("时间说明", "以上时间均为北京时间（UTC+8），由服务器记录"),
        ]) + "</table>"

    def applicant(self) -> str:
        applicant: Mapping[str, Any] = self.record.get("applicant") or {}
        name = applicant.get("name") or self.inspection.get("applicant_name")
        rows = [("申请人", _e(name))]
        if applicant:
            id_type = applicant.get("id_type")
            rows += [
                ("申请人类型", _e(KIND_LABELS.get(str(applicant.get("kind")), applicant.get("kind")))),
                ("证件类型", _e(ID_TYPE_LABELS.get(str(id_type), id_type))),
                ("证件号码", _masked_id(id_type, applicant.get("id_number"))),
                ("联系人", _e(mask_name(str(applicant["contact_name"])) if applicant.get("contact_name") else None)),
                ("联系电话", _masked_phone(applicant.get("contact_phone"))),
            ]
        site: Mapping[str, Any] = self.record.get("site") or {}
        address = site.get("address") or self.inspection.get("site_address")
        rows.append(("场所地址", _e(address)))
        if site.get("lat") is not None and site.get("lon") is not None:
            radius = f"，核验半径 {site['radius_m']} 米" if site.get("radius_m") is not None else ""
            rows.append(("场所坐标", _e(f"纬度 {site['lat']}，经度 {site['lon']}{radius}")))
        return "<h2>二、申请人与场所</h2><table>" + _rows(rows) + "</table>"

    def checkpoints(self) -> str:
        titles = {c.get("code"): c.get("title") for c in self.record.get("checkpoints") or []}
        listed = list(self.inspection.get("checkpoints") or self.record.get("checkpoints") or [])
        by_checkpoint: dict[str, list[Mapping[str, Any]]] = {}
        for event in self.c.events:
            if event.get("type") in ("still.captured", "photo.uploaded"):
                by_checkpoint.setdefault(str((event.get("data") or {}).get("checkpoint")), []).append(event)
        known = {str(c.get("code")) for c in listed}
        listed += [{"code": code} for code in by_checkpoint if code not in known]
        parts = ["<h2>三、检查点与现场影像</h2>"]
        if not listed:
            parts.append("<p>无检查点。</p>")
        for number, checkpoint in enumerate(listed, start=1):
            code = str(checkpoint.get("code"))
            required = "必查" if checkpoint.get("required") else "选查"
            captured = "已采集" if checkpoint.get("captured") or by_checkpoint.get(code) else "未采集"
            parts.append(f"<h3>{number}. {_e(titles.get(code) or checkpoint.get('title') or code)}"
                         f"（<span class=\"mono\">{_e(code)}</span>，{required}，{captured}）</h3>")
            for event in by_checkpoint.get(code, []):
                data = event.get("data") or {}
                key = str(data.get("key"))
                source = "服务器自视频截取" if event.get("type") == "still.captured" else "申请人拍摄上传"
                caption = (f"{_e(source)}，{_e(china_time(event.get('at'), True))}，{_e(data.get('size'))} 字节<br>"
                           f"SHA-256 <span class=\"mono\">{_e(data.get('sha256'))}</span>")
                parts.append(_image(key, self.c.images.get(key), caption))
        return "".join(parts)

    def signatures(self) -> str:
        signed = [e for e in self.c.events if e.get("type") == "signature.signed"]
        parts = ["<h2>四、签名确认</h2>"]
        if not signed:
            return parts[0] + "<p>无签名。</p>"
        parts.append("<p>签名码为签名时事件日志头哈希的前 8 位十六进制数字，签名时显示在屏幕上。</p>")
        for event in signed:
            data = event.get("data") or {}
            key = str(data.get("key"))
            role = ROLE_LABELS.get(str(data.get("role") or event.get("actor")), event.get("actor"))
            caption = (f"{_e(role)}签名，签名码 <b class=\"mono\">{_e(data.get('code'))}</b>，{_e(china_time(event.get('at'), True))}<br>"
                       f"绑定日志头 <span class=\"mono\">{_e(data.get('binds_log_head'))}</span>")
            parts.append(_image(key, self.c.images.get(key), caption, "sig"))
        return "".join(parts)

    def recordings(self) -> str:
        tracks: dict[str, dict[str, Any]] = {}
        for event in self.c.events:
            if event.get("type") != "media.segment":
                continue
            data = event.get("data") or {}
            track = tracks.setdefault(str(data.get("track")), {"count": 0, "bytes": 0, "ms": 0, "start": None, "end": None})
            track["count"] += 1
            track["bytes"] += int(data.get("size") or 0)
            track["ms"] += int(data.get("duration_ms") or 0)
            track["start"] = track["start"] or data.get("wall_start") or event.get("at")
            track["end"] = data.get("wall_end") or event.get("at")
        head = "<h2>五、音视频录像</h2>"
        if not tracks:
            return head + "<p>无录像分段。</p>"
        rows = "".join(
            f"<tr><td>{_e(TRACK_LABELS.get(name, name))}</td><td>{t['count']}</td><td>{_e(duration_text(t['ms']))}</td>"
            f"<td>{_e(china_time(t['start']))}</td><td>{_e(china_time(t['end']))}</td><td>{t['bytes']}</td>"
            f"<td class=\"mono\">{_e(EVIDENCE + 'media/' + name + '/')}</td></tr>"
            for name, t in sorted(tracks.items())
        )
        return (head + "<p>录像为 WebM 分段文件（约 4 秒一段），每段的大小与 SHA-256 见 evidence/manifest.json。</p>"
                "<table><tr><th>轨道</th><th>分段数</th><th>时长</th><th>开始</th><th>结束</th><th>字节</th><th>位置</th></tr>"
                + rows + "</table>")

    def timeline(self) -> str:
        rows = []
        segments = 0
        for event in self.c.events:
            if event.get("type") == "media.segment":
                segments += 1
                continue
            data = event.get("data") or {}
            details = []
            for name in DETAIL_FIELDS:
                if name in data and data[name] is not None:
                    value = data[name]
                    if name == "role":
                        value = ROLE_LABELS.get(str(value), value)
                    details.append(f"{name}: {value}")
            actor = str(event.get("actor"))
            who = ROLE_LABELS.get(actor, actor)
            if isinstance(data.get("staff"), Mapping):
                who = f"{who}（{_staff_text(data['staff'])}）"
            rows.append(
                f"<tr><td>{_e(event.get('seq'))}</td><td>{_e(china_time(event.get('at'), True))}</td>"
                f"<td>{_e(who)}</td><td>{_e(EVENT_LABELS.get(str(event.get('type')), event.get('type')))}</td>"
                f"<td>{_e('；'.join(details) if details else '')}</td><td class=\"mono\">{_e(str(event.get('hash', ''))[:12])}</td></tr>"
            )
        note = f"<p>另有 {segments} 条录像分段事件，见第五部分与 evidence/events.jsonl。</p>" if segments else ""
        return ("<h2>六、事件时间线</h2><p>事件日志逐条哈希链接（每条含前一条的哈希），完整内容见 evidence/events.jsonl。</p>" + note
                + "<table><tr><th>序号</th><th>时间</th><th>操作方</th><th>事件</th><th>内容</th><th>哈希（前12位）</th></tr>"
                + "".join(rows) + "</table>")

    def verdict(self) -> str:
        verdict = self.m.get("verdict") or self.record.get("verdict")
        head = "<h2>七、研判结论</h2>"
        if not isinstance(verdict, Mapping):
            return head + "<p>封存时尚无研判结论。</p>"
        reasons = verdict.get("reasons") or []
        items = "".join(
            f"<li>{_e(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False, sort_keys=True))}</li>" for r in reasons
        )
        outcome = verdict.get("outcome")
        return head + "<table>" + _rows([
            ("结论", _e(OUTCOME_LABELS.get(str(outcome), outcome))),
            ("理由", f"<ul>{items}</ul>" if items else "—"),
            ("规则版本", _e(verdict.get("rules_version") or self.m.get("rules_version"))),
            ("研判时间", _e(china_time(verdict.get("decided_at")))),
        ]) + "</table>"

    def seal(self) -> str:
        signature = self.m.get("signature") or {}
        log = self.m.get("log") or {}
        merkle = self.m.get("merkle") or {}
        kid = str(signature.get("key_id", ""))
        return "<h2>八、封存与核验</h2><table>" + _rows([
            ("封存时间", _e(china_time(self.m.get("sealed_at"), True))),
            ("清单文件", '<span class="mono">evidence/manifest.json</span>'),
            ("清单 SHA-256", f'<span class="mono">{_e(self.c.manifest_sha256)}</span>'),
            ("签名算法", _e(signature.get("alg"))),
            ("签名密钥编号", f'<span class="mono">{_e(kid)}</span>（公钥 {_e(KEYS + kid + ".pem")}）'),
            ("证据对象数", _e(len(self.m.get("objects") or []))),
            ("日志条数与头哈希", f'{_e(log.get("count"))} 条，<span class="mono">{_e(log.get("head"))}</span>'),
            ("Merkle 根", f'<span class="mono">{_e(merkle.get("root"))}</span>（{_e(merkle.get("alg"))}）'),
            ("保管期限", _e(self.c.retention_label)),
            ("归档包生成时间", _e(china_time(self.c.created_at, True))),
        ]) + "</table>" + self.instructions(kid)

    def instructions(self, kid: str) -> str:
        commands = "\n".join([
            "# 1. 解压归档包后，在其目录中核对每个文件的完整性（任何一行不是 OK 即为被改动）",
            f"sha256sum -c {SUMS}",
            "# 2. 用包内公钥核验清单签名（应输出 Signature Verified Successfully）",
            f"openssl pkeyutl -verify -pubin -inkey {KEYS}{kid}.pem -rawin \\",
            "    -in evidence/manifest.json -sigfile evidence/manifest.json.sig",
            f"# 3. 清单的 SHA-256 应为 {self.c.manifest_sha256}",
            "sha256sum evidence/manifest.json",
            "# 4. 按签名清单逐一核对证据对象（需要 jq）",
            "cd evidence && jq -r '.objects[] | \"\\(.sha256)  \\(.key)\"' manifest.json | sha256sum -c -",
        ])
        return ("<h3>手工核验方法</h3><p>公钥也可从审批系统 <span class=\"mono\">GET /api/v1/keys</span> 取得并比对。"
                f"</p><pre>{escape(commands)}</pre>")

    def render(self) -> str:
        extra = f"<h2>附加说明</h2>{self.c.extra_html}" if self.c.extra_html else ""
        body = "".join([
            f"<h1>{_e(self.title())}</h1>",
            self.basics(), self.applicant(), self.checkpoints(), self.signatures(),
            self.recordings(), self.timeline(), self.verdict(), self.seal(), extra,
        ])
        return (
            "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(self.title())}</title><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>\n"
        )


def render_record(content: RecordContent) -> str:
    """The complete ``record.html`` for ``content``."""
    return _Renderer(content).render()
