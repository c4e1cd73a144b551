"""Parsers for the client -> server Socket.IO events of docs/protocol.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from approval.errors import BadRequest, TooLarge

MAX_EVENT_BYTES = 64 * 1024
#: A signature carries its PNG and strokes: the one event allowed to be larger.
MAX_UPLOAD_EVENT_BYTES = 1024 * 1024
MAX_CANDIDATE_LENGTH = 1024


@dataclass(frozen=True)
class Offer:
    sdp: str


@dataclass(frozen=True)
class IceCandidate:
    candidate: Optional[str]
    sdp_mid: Optional[str]
    sdp_mline_index: Optional[int]


@dataclass(frozen=True)
class MediaState:
    audio: bool
    video: bool


def parse_object(event: str, payload: Any, allowed: set[str], max_bytes: int = MAX_EVENT_BYTES) -> dict[str, Any]:
    """The payload as a dict with only ``allowed`` fields, at most ``max_bytes`` as JSON."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadRequest(f"'{event}' takes a JSON object, got {type(payload).__name__}")
    size = len(json.dumps(payload, ensure_ascii=False).encode())
    if size > max_bytes:
        raise TooLarge(f"'{event}' payload is {size} bytes; the limit is {max_bytes}")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise BadRequest(f"'{event}' has unknown field(s): {', '.join(map(repr, unknown))}")
    return payload


def parse_empty(event: str, payload: Any) -> None:
    parse_object(event, payload, set())


def parse_offer(payload: Any) -> Offer:
    data = parse_object("offer", payload, {"sdp", "type"})
    if data.get("type", "offer") != "offer":
        raise BadRequest(f"'offer'.type must be 'offer', got {data.get('type')!r}")
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise BadRequest("'offer'.sdp must be a non-empty string")
    return Offer(sdp)


def parse_ice(payload: Any) -> IceCandidate:
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
    return IceCandidate(candidate or None, mid, index)


def parse_media(payload: Any) -> MediaState:
    data = parse_object("media", payload, {"audio", "video"})
    for name in ("audio", "video"):
        if not isinstance(data.get(name), bool):
            raise BadRequest(f"'media'.{name} must be true or false")
    return MediaState(data["audio"], data["video"])
