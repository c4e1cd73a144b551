"""What participants do during a session: checkpoints, captures, signatures, notes, chat,
location and the overtime reason. Every action becomes an event in the evidence log.

The Socket.IO handlers here are dispatched by :class:`signaling.sockets.SessionNamespace`,
which has already checked the rate limit and maps errors to acks.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from typing import TYPE_CHECKING, Any, Optional

from approval.errors import BadRequest, Conflict, Forbidden, TooLarge, Unavailable
from approval.inspections import Inspection

from . import messages
from .rooms import Participant, Room

if TYPE_CHECKING:
    from .sockets import SessionNamespace

logger = logging.getLogger(__name__)

MAX_TEXT = 2000
MAX_SIGNATURE_PNG = 512 * 1024
MAX_STROKE_POINTS = 20000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class OvertimeReasonRequired(Conflict):
    code = "overtime_reason_required"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(a))


def short_code(head: str) -> str:
    """The code shown beside a signature: the first 8 hex digits of the bound log head."""
    return f"{head[:4]}-{head[4:8]}".upper()


def checkpoint_of(record: Inspection, code: Any) -> dict[str, Any]:
    if not isinstance(code, str):
        raise BadRequest("'checkpoint' must be the code of one of the inspection's checkpoints")
    for checkpoint in record.checkpoints:
        if checkpoint["code"] == code:
            return checkpoint
    raise BadRequest(f"checkpoint {code!r} is not on this inspection's checklist")


def _text(payload: dict[str, Any], name: str, event: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{event}'.{name} must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise TooLarge(f"'{event}'.{name} is longer than {MAX_TEXT} characters")
    return value.strip()


class SessionActions:
    """Handlers of the evidence-producing events (docs/protocol.md, "During the session")."""

    def __init__(self, namespace: "SessionNamespace") -> None:
        self.ns = namespace

    # -- helpers ----------------------------------------------------------------------

    def _require(self, participant: Participant, *roles: str) -> None:
        if participant.role not in roles:
            raise Forbidden(f"a {participant.role} cannot do this; only {' or '.join(roles)}")

    def _require_within_time(self, room: Room) -> None:
        timer = room.timer
        if timer is not None and timer.over_limit and not room.overtime_reason:
            raise OvertimeReasonRequired(
                f"the {timer.limit_s / 60:g}-minute limit has passed: the inspector must give a reason to continue "
                "(event 'overtime')"
            )

    async def _log(self, room: Room, type_: str, actor: str, data: dict[str, Any]) -> dict[str, Any]:
        return await self.ns.journal.record(room.inspection_id, type_, actor, data)

    async def add_evidence(self, record: Inspection, checkpoint: dict[str, Any], key: str) -> None:
        checkpoint["captured"] = True
        checkpoint["evidence"].append(key)
        await self.ns.book.update(record)

    def next_key(self, checkpoint: dict[str, Any], folder: str, extension: str) -> str:
        return f"{folder}/{checkpoint['code']}/{len(checkpoint['evidence']) + 1}.{extension}"

    # -- events -----------------------------------------------------------------------

    async def on_prompt(self, sid: str, payload: Any) -> dict[str, Any]:
        data = messages.parse_object("prompt", payload, {"checkpoint"})
        room, participant = self.ns.joined(sid)
        self._require(participant, "inspector")
        record = self.ns.book.get(room.inspection_id)
        checkpoint = checkpoint_of(record, data.get("checkpoint"))
        await self._log(room, "checkpoint.prompted", "inspector", {"checkpoint": checkpoint["code"]})
        await self.ns.emit("prompt", {"checkpoint": checkpoint["code"], "title": checkpoint["title"]}, room=room.inspection_id)
        return {"ok": True}

    async def on_capture(self, sid: str, payload: Any) -> dict[str, Any]:
        """A still of the applicant's video, taken by the server from the stream itself."""
        data = messages.parse_object("capture", payload, {"checkpoint"})
        room, participant = self.ns.joined(sid)
        self._require(participant, "inspector")
        self._require_within_time(room)
        record = self.ns.book.get(room.inspection_id)
        checkpoint = checkpoint_of(record, data.get("checkpoint"))
        if room.stills is None:
            raise Unavailable("still capture is not available on this node")
        from recorder.stills import NoVideo

        try:
            still = await room.stills.capture()
        except NoVideo as exc:
            raise Conflict(f"no picture to capture: {exc}") from None
        key = self.next_key(checkpoint, "stills", "jpg")
        event = await self.ns.journal.record_blob(
            room.inspection_id,
            key,
            still.data,
            "image/jpeg",
            "still.captured",
            "inspector",
            {
                "checkpoint": checkpoint["code"],
                "width": still.width,
                "height": still.height,
                "captured_at": still.captured_at.isoformat(timespec="milliseconds"),
                "source": "server",
            },
        )
        await self.add_evidence(record, checkpoint, key)
        shown = {"checkpoint": checkpoint["code"], "kind": "still", "key": key, "sha256": event["data"]["sha256"],
                 "width": still.width, "height": still.height, "at": event["at"]}
        await self.ns.emit("captured", shown, room=room.inspection_id)
        return {"ok": True, **shown}

    async def on_note(self, sid: str, payload: Any) -> dict[str, Any]:
        data = messages.parse_object("note", payload, {"text", "checkpoint"})
        room, participant = self.ns.joined(sid)
        self._require(participant, "inspector")
        text = _text(data, "text", "note")
        entry: dict[str, Any] = {"text": text}
        if data.get("checkpoint") is not None:
            entry["checkpoint"] = checkpoint_of(self.ns.book.get(room.inspection_id), data["checkpoint"])["code"]
        event = await self._log(room, "note", "inspector", entry)
        return {"ok": True, "at": event["at"]}

    async def on_chat(self, sid: str, payload: Any) -> dict[str, Any]:
        data = messages.parse_object("chat", payload, {"text"})
        room, participant = self.ns.joined(sid)
        text = _text(data, "text", "chat")
        event = await self._log(room, "chat", participant.role, {"text": text})
        await self.ns.emit("chat", {"from": participant.role, "text": text, "at": event["at"]}, room=room.inspection_id)
        return {"ok": True, "at": event["at"]}

    async def on_location(self, sid: str, payload: Any) -> dict[str, Any]:
        data = messages.parse_object("location", payload, {"lat", "lon", "accuracy_m"})
        room, participant = self.ns.joined(sid)
        self._require(participant, "applicant")
        lat, lon, accuracy = data.get("lat"), data.get("lon"), data.get("accuracy_m")
        for name, value, low, high in (("lat", lat, -90, 90), ("lon", lon, -180, 180), ("accuracy_m", accuracy, 0, 100000)):
            if value is None and name == "accuracy_m":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise BadRequest(f"'location'.{name} must be a number between {low} and {high}")
        record = self.ns.book.get(room.inspection_id)
        entry: dict[str, Any] = {"lat": lat, "lon": lon, "accuracy_m": accuracy}
        site_lat, site_lon = record.site.get("lat"), record.site.get("lon")
        if site_lat is not None and site_lon is not None:
            entry["distance_m"] = round(distance_m(float(lat), float(lon), site_lat, site_lon), 1)  # type: ignore[arg-type]
            radius = record.site.get("radius_m")
            if radius is not None:
                entry["within_radius"] = entry["distance_m"] <= radius
        event = await self._log(room, "location.updated", "applicant", entry)
        await self.ns.emit("location", {**entry, "at": event["at"]}, room=room.inspection_id)
        return {"ok": True, **entry}

    async def on_sign_request(self, sid: str, payload: Any) -> dict[str, Any]:
        data = messages.parse_object("sign_request", payload, {"role"})
        room, participant = self.ns.joined(sid)
        self._require(participant, "inspector")
        role = data.get("role", "applicant")
        if role not in ("applicant", "inspector"):
            raise BadRequest("'sign_request'.role must be applicant or inspector")
        head = await self.ns.journal.head(room.inspection_id)
        await self._log(room, "signature.requested", "inspector", {"role": role})
        await self.ns.emit("sign_request", {"role": role, "code": short_code(head)}, room=room.inspection_id)
        return {"ok": True}

    async def on_signature(self, sid: str, payload: Any) -> dict[str, Any]:
        """A hand signature: stroke data and a PNG, bound to the log head at signing."""
        data = messages.parse_object("signature", payload, {"strokes", "png", "width", "height"}, max_bytes=messages.MAX_UPLOAD_EVENT_BYTES)
        room, participant = self.ns.joined(sid)
        self._require(participant, "applicant", "inspector")
        self._require_within_time(room)
        strokes = data.get("strokes")
        if not isinstance(strokes, list) or not strokes:
            raise BadRequest("'signature'.strokes must be a non-empty list of strokes")
        points = 0
        for stroke in strokes:
            if not isinstance(stroke, list) or not stroke:
                raise BadRequest("each stroke must be a non-empty list of points {x, y, t}")
            for point in stroke:
                if not isinstance(point, dict) or not all(isinstance(point.get(k), (int, float)) and not isinstance(point.get(k), bool) for k in ("x", "y", "t")):
                    raise BadRequest("each point must be {x: number, y: number, t: number}")
                points += 1
        if points > MAX_STROKE_POINTS:
            raise TooLarge(f"the signature has more than {MAX_STROKE_POINTS} points")
        png_field = data.get("png")
        if not isinstance(png_field, str) or not png_field.startswith("data:image/png;base64,"):
            raise BadRequest("'signature'.png must be a data:image/png;base64 URL")
        try:
            png = base64.b64decode(png_field.split(",", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("'signature'.png is not valid base64") from None
        if not png.startswith(PNG_MAGIC):
            raise BadRequest("'signature'.png is not a PNG image")
        if len(png) > MAX_SIGNATURE_PNG:
            raise TooLarge(f"the signature image is larger than {MAX_SIGNATURE_PNG} bytes")
        head = await self.ns.journal.head(room.inspection_id)
        code = short_code(head)
        n = room.signature_count(participant.role) + 1
        name = f"signatures/{participant.role}-{n}"
        stroke_doc = {"role": participant.role, "binds_log_head": head, "code": code, "width": data.get("width"), "height": data.get("height"), "strokes": strokes}
        details = {"role": participant.role, "binds_log_head": head, "code": code}
        await self.ns.journal.record_blob(
            room.inspection_id, name + ".json", json.dumps(stroke_doc, separators=(",", ":")).encode(),
            "application/json", "signature.strokes", participant.role, details,
        )
        event = await self.ns.journal.record_blob(
            room.inspection_id, name + ".png", png, "image/png", "signature.signed", participant.role, details
        )
        room.signatures.append(participant.role)
        shown = {"role": participant.role, "code": code, "key": name + ".png", "at": event["at"]}
        await self.ns.emit("signed", shown, room=room.inspection_id)
        return {"ok": True, **shown}

    async def on_overtime(self, sid: str, payload: Any) -> dict[str, Any]:
        data = messages.parse_object("overtime", payload, {"reason"})
        room, participant = self.ns.joined(sid)
        self._require(participant, "inspector")
        reason = _text(data, "reason", "overtime")
        room.overtime_reason = reason
        elapsed = room.timer.elapsed_s if room.timer else None
        await self._log(room, "timer.overtime_reason", "inspector", {"reason": reason, "elapsed_s": None if elapsed is None else round(elapsed, 1)})
        await self.ns.emit("timer", {"phase": "overtime", "reason": reason}, room=room.inspection_id)
        return {"ok": True}

    async def on_timer_phase(self, room: Room, phase: str, elapsed_s: float, limit_s: float) -> None:
        await self._log(room, f"timer.{phase}", "system", {"elapsed_s": round(elapsed_s, 1), "limit_s": limit_s})
        await self.ns.emit("timer", {"phase": phase, "elapsed_s": round(elapsed_s, 1), "limit_s": limit_s}, room=room.inspection_id)

    async def photo_uploaded(self, room_id: str, checkpoint_code: str, data: bytes, content_type: str, extension: str, details: dict[str, Any]) -> dict[str, Any]:
        """An applicant's own full-resolution photo (uploaded over HTTP), logged as a photo."""
        record = self.ns.book.get(room_id)
        checkpoint = checkpoint_of(record, checkpoint_code)
        room = self.ns.rooms.find(room_id)
        if room is not None:
            self._require_within_time(room)
        key = self.next_key(checkpoint, "photos", extension)
        event = await self.ns.journal.record_blob(
            room_id, key, data, content_type, "photo.uploaded", "applicant", {"checkpoint": checkpoint["code"], "source": "applicant", **details}
        )
        await self.add_evidence(record, checkpoint, key)
        shown = {"checkpoint": checkpoint["code"], "kind": "photo", "key": key, "sha256": event["data"]["sha256"], "at": event["at"], **details}
        await self.ns.emit("captured", shown, room=room_id)
        return shown
