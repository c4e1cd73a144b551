"""Parsers for the client -> server Socket.IO events of docs/protocol.md.

Each client event's payload becomes one frozen record of :mod:`session.commands` (or is
refused with :class:`errors.BadRequest` / :class:`errors.TooLarge`, quoting the field).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any, Optional

import jsonsafe
from errors import BadRequest, TooLarge
from session import commands
from session.commands import MAX_SIGNATURE_PNG, MAX_STROKE_POINTS, MAX_TEXT

MAX_EVENT_BYTES = 64 * 1024
#: A signature carries its PNG and strokes: the one event allowed to be larger.
MAX_UPLOAD_EVENT_BYTES = 1024 * 1024
MAX_CANDIDATE_LENGTH = 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: json.dumps(payload, ensure_ascii=False), with the encoder made once
_SIZE_ENCODER = json.JSONEncoder(ensure_ascii=False)


def parse_object(event: str, payload: Any, allowed: set[str], max_bytes: int = MAX_EVENT_BYTES) -> dict[str, Any]:
    """The payload as a dict with only ``allowed`` fields, at most ``max_bytes`` as JSON."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadRequest(f"'{event}' takes a JSON object, got {type(payload).__name__}")
    try:
        encoded = _SIZE_ENCODER.encode(payload)
    except RecursionError:
        encoded = ""  # nested far too deeply: check_depth says so below
    except (TypeError, ValueError):  # a binary attachment (bytes) inside the object
        raise BadRequest(f"'{event}' holds binary data where text or numbers belong; send it as JSON") from None
    if not encoded or not jsonsafe.shallow(encoded):
        try:
            jsonsafe.check_depth(payload, f"'{event}'")
        except jsonsafe.JsonRefused as exc:
            raise BadRequest(str(exc)) from None
    try:
        size = len(encoded.encode())
    except UnicodeEncodeError:
        where = jsonsafe.lone_surrogate_at(payload)
        raise BadRequest(f"'{event}'.{where} is not valid Unicode (half of a UTF-16 surrogate pair); send UTF-8 text") from None
    if size > max_bytes:
        raise TooLarge(f"'{event}' payload is {size} bytes; the limit is {max_bytes}")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise BadRequest(f"'{event}' has unknown field(s): {', '.join(map(repr, unknown))}")
    return payload


def parse_empty(event: str, payload: Any) -> None:
    parse_object(event, payload, set())


#: Characters refused in text that goes into the evidence: C0 and C1 controls but tab and
#: newline, the bidirectional overrides and isolates (they can make a record read other than
#: it is written), and the line and paragraph separators (readers that split on any line
#: break would cut an event's line in two).
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]")


def check_text(value: str, where: str) -> str:
    """``value`` unless it holds a character :data:`_UNSAFE_TEXT` refuses (BadRequest)."""
    found = _UNSAFE_TEXT.search(value)
    if found is not None:
        raise BadRequest(f"{where} holds the control character U+{ord(found.group()):04X}; send plain text")
    return value


def _text(data: dict[str, Any], name: str, event: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{event}'.{name} must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise TooLarge(f"'{event}'.{name} is longer than {MAX_TEXT} characters")
    return check_text(value, f"'{event}'.{name}").strip()


def _checkpoint(data: dict[str, Any], event: str, required: bool = True) -> Optional[str]:
    value = data.get("checkpoint")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise BadRequest("'checkpoint' must be the code of one of the inspection's checkpoints")
    return value


def parse_join(payload: Any) -> commands.Join:
    data = parse_object("join", payload, {"device", "takeover"})
    device = data.get("device")
    if device is not None and (not isinstance(device, str) or len(device) > 64):
        raise BadRequest("'join'.device must be a string of at most 64 characters")
    if device is not None:
        check_text(device, "'join'.device")
    takeover = data.get("takeover", False)
    if not isinstance(takeover, bool):
        raise BadRequest("'join'.takeover must be true or false")
    return commands.Join(device or None, takeover)


def parse_offer(payload: Any) -> commands.Offer:
    data = parse_object("offer", payload, {"sdp", "type"})
    if data.get("type", "offer") != "offer":
        raise BadRequest(f"'offer'.type must be 'offer', got {data.get('type')!r}")
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise BadRequest("'offer'.sdp must be a non-empty string")
    return commands.Offer(sdp)


def parse_ice(payload: Any) -> commands.IceCandidate:
    data = parse_object("ice", payload, {"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"})
    candidate = data.get("candidate")
    if candidate is not None and (not isinstance(candidate, str) or len(candidate) > MAX_CANDIDATE_LENGTH):
        raise BadRequest(f"'ice'.candidate must be a string of at most {MAX_CANDIDATE_LENGTH} characters or null")
    mid = data.get("sdpMid")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise BadRequest(f"'ice'.sdpMid must be a short string, got {mid!r}")
    index = data.get("sdpMLineIndex")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 16):
        raise BadRequest(f"'ice'.sdpMLineIndex must be an integer 0-15, got {index!r}")
    return commands.IceCandidate(candidate or None, mid, index)


def parse_media(payload: Any) -> commands.MediaState:
    data = parse_object("media", payload, {"audio", "video"})
    for name in ("audio", "video"):
        if not isinstance(data.get(name), bool):
            raise BadRequest(f"'media'.{name} must be true or false")
    return commands.MediaState(data["audio"], data["video"])


def parse_stats(payload: Any) -> commands.LinkStats:
    data = parse_object("stats", payload, {"bitrate_kbps", "loss_pct", "rtt_ms", "fps", "freezes"})
    values: dict[str, Any] = {}
    for name, high in (("bitrate_kbps", 1e6), ("loss_pct", 100), ("rtt_ms", 1e5), ("fps", 240), ("freezes", 1e6)):
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high):
            raise BadRequest(f"'stats'.{name} must be a number between 0 and {high:g} or null")
        if name == "freezes" and value is not None and value != int(value):
            raise BadRequest(f"'stats'.freezes must be a whole number, got {value!r}")
        values[name] = value
    freezes = values["freezes"]
    return commands.LinkStats(values["bitrate_kbps"], values["loss_pct"], values["rtt_ms"], values["fps"],
                              None if freezes is None else int(freezes))


def parse_otp_verify(payload: Any) -> commands.OtpVerify:
    data = parse_object("otp_verify", payload, {"code"})
    code = data.get("code")
    if not isinstance(code, str) or len(code) > 16:
        raise BadRequest("'otp_verify'.code must be the 6-digit code as a string")
    return commands.OtpVerify(code)


def parse_prompt(payload: Any) -> commands.Prompt:
    data = parse_object("prompt", payload, {"checkpoint"})
    return commands.Prompt(_checkpoint(data, "prompt") or "")


def parse_capture(payload: Any) -> commands.Capture:
    data = parse_object("capture", payload, {"checkpoint"})
    return commands.Capture(_checkpoint(data, "capture") or "")


def parse_note(payload: Any) -> commands.Note:
    data = parse_object("note", payload, {"text", "checkpoint"})
    return commands.Note(_text(data, "text", "note"), _checkpoint(data, "note", required=False))


def parse_chat(payload: Any) -> commands.Chat:
    data = parse_object("chat", payload, {"text"})
    return commands.Chat(_text(data, "text", "chat"))


def parse_location(payload: Any) -> commands.Location:
    data = parse_object("location", payload, {"lat", "lon", "accuracy_m"})
    values: dict[str, Optional[float]] = {}
    for name, low, high in (("lat", -90, 90), ("lon", -180, 180), ("accuracy_m", 0, 100000)):
        value = data.get(name)
        if value is None and name == "accuracy_m":
            values[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise BadRequest(f"'location'.{name} must be a number between {low} and {high}")
        values[name] = value
    return commands.Location(float(values["lat"] or 0), float(values["lon"] or 0), values["accuracy_m"])


def parse_sign_request(payload: Any) -> commands.SignRequest:
    data = parse_object("sign_request", payload, {"role"})
    role = data.get("role", "applicant")
    if role not in ("applicant", "inspector"):
        raise BadRequest("'sign_request'.role must be applicant or inspector")
    return commands.SignRequest(role)


def parse_overtime(payload: Any) -> commands.Overtime:
    data = parse_object("overtime", payload, {"reason"})
    return commands.Overtime(_text(data, "reason", "overtime"))


def parse_signature(payload: Any) -> commands.Signature:
    """Strokes and a PNG, checked for shape and size (the PNG is decoded by the session)."""
    data = parse_object("signature", payload, {"strokes", "png", "width", "height"}, max_bytes=MAX_UPLOAD_EVENT_BYTES)
    strokes = data.get("strokes")
    if not isinstance(strokes, list) or not strokes:
        raise BadRequest("'signature'.strokes must be a non-empty list of strokes")
    points = 0
    parsed = []
    for stroke in strokes:
        if not isinstance(stroke, list) or not stroke:
            raise BadRequest("each stroke must be a non-empty list of points {x, y, t}")
        for point in stroke:
            # finite numbers only: the strokes are stored as JSON evidence, which has no NaN
            if not isinstance(point, dict) or set(point) != {"x", "y", "t"} or not all(
                _finite(point[k]) for k in ("x", "y", "t")
            ):
                raise BadRequest("each point must be {x: number, y: number, t: number} (finite numbers, no other fields)")
            points += 1
        parsed.append(tuple(stroke))
    width, height = data.get("width"), data.get("height")
    for name, size in (("width", width), ("height", height)):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIGNATURE_SIDE):
            raise BadRequest(f"'signature'.{name} must be a whole number of pixels from 1 to {MAX_SIGNATURE_SIDE}, got {size!r}")
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
    return commands.Signature(tuple(parsed), png, width, height)


#: The signature pad's largest side in pixels (a 4K screen's canvas fits).
MAX_SIGNATURE_SIDE = 8192


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_COLOR_CHARS = set("0123456789abcdefABCDEF")


def _shape(value: Any, index: int) -> commands.Shape:
    where = f"'draw'.shapes[{index}]"
    if not isinstance(value, dict) or set(value) - {"kind", "points", "text", "color"}:
        raise BadRequest(f"{where} must be an object of kind, points, text?, color?")
    kind = value.get("kind")
    if kind not in commands.DRAWING_KINDS:
        raise BadRequest(f"{where}.kind must be one of {', '.join(commands.DRAWING_KINDS)}, got {kind!r}")
    points = value.get("points")
    wanted = 1 if kind == "text" else 2
    if not isinstance(points, list) or len(points) != wanted:
        raise BadRequest(f"{where}.points must be {wanted} point(s) [x, y]")
    parsed: list[tuple[float, float]] = []
    for point in points:
        if (not isinstance(point, list) or len(point) != 2
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c <= 1 for c in point)):
            raise BadRequest(f"{where}.points must be [x, y] fractions between 0 and 1, got {point!r}")
        parsed.append((float(point[0]), float(point[1])))
    text = value.get("text")
    if kind == "text":
        if not isinstance(text, str) or not text.strip():
            raise BadRequest(f"{where}.text must be a non-empty string")
        if len(text) > commands.MAX_DRAWING_TEXT:
            raise TooLarge(f"{where}.text is longer than {commands.MAX_DRAWING_TEXT} characters")
        check_text(text, f"{where}.text")
    elif text is not None:
        raise BadRequest(f"{where}.text is only for kind 'text'")
    color = value.get("color", "#ff3b30")
    if not isinstance(color, str) or len(color) != 7 or color[0] != "#" or not set(color[1:]) <= _COLOR_CHARS:
        raise BadRequest(f"{where}.color must be '#rrggbb', got {color!r}")
    return commands.Shape(kind, tuple(parsed), text.strip() if isinstance(text, str) else None, color)


def parse_draw(payload: Any) -> commands.Drawing:
    data = parse_object("draw", payload, {"shapes", "evidence_key"})
    shapes = data.get("shapes")
    if not isinstance(shapes, list) or not shapes:
        raise BadRequest("'draw'.shapes must be a non-empty list (send 'draw_clear' to clear)")
    if len(shapes) > commands.MAX_DRAWING_SHAPES:
        raise TooLarge(f"'draw'.shapes holds {len(shapes)} shapes; the limit is {commands.MAX_DRAWING_SHAPES}")
    key = data.get("evidence_key")
    if key is not None and (not isinstance(key, str) or not key.startswith(("stills/", "photos/")) or len(key) > 200):
        raise BadRequest("'draw'.evidence_key must be the key of a still or photo of this inspection")
    return commands.Drawing(tuple(_shape(s, i) for i, s in enumerate(shapes)), key)


def parse_camera(payload: Any) -> commands.CameraRequest:
    data = parse_object("camera", payload, {"action", "zoom"})
    action = data.get("action")
    if action not in commands.CAMERA_ACTIONS:
        raise BadRequest(f"'camera'.action must be one of {', '.join(commands.CAMERA_ACTIONS)}, got {action!r}")
    zoom = data.get("zoom")
    if action == "zoom":
        if not isinstance(zoom, (int, float)) or isinstance(zoom, bool) or not 1 <= zoom <= commands.MAX_CAMERA_ZOOM:
            raise BadRequest(f"'camera'.zoom must be a number from 1 to {commands.MAX_CAMERA_ZOOM}, got {zoom!r}")
        return commands.CameraRequest(action, float(zoom))
    if zoom is not None:
        raise BadRequest("'camera'.zoom is only for action 'zoom'")
    return commands.CameraRequest(action)


def parse_camera_result(payload: Any) -> commands.CameraResult:
    data = parse_object("camera_result", payload, {"request_id", "action", "ok", "reason", "detail"})
    request_id, action, ok = data.get("request_id"), data.get("action"), data.get("ok")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64:
        raise BadRequest("'camera_result'.request_id must be the id of a camera request")
    if action not in commands.CAMERA_ACTIONS:
        raise BadRequest(f"'camera_result'.action must be one of {', '.join(commands.CAMERA_ACTIONS)}")
    if not isinstance(ok, bool):
        raise BadRequest("'camera_result'.ok must be true or false")
    reason, detail = data.get("reason"), data.get("detail")
    if reason is not None and reason not in ("unsupported", "failed", "no_camera"):
        raise BadRequest("'camera_result'.reason must be unsupported, failed or no_camera")
    if detail is not None and (not isinstance(detail, str) or len(detail) > 300):
        raise BadRequest("'camera_result'.detail must be a string of at most 300 characters")
    if detail is not None:
        check_text(detail, "'camera_result'.detail")
    return commands.CameraResult(request_id, action, ok, reason, detail)
