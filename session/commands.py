"""What a participant asks of the session, as typed, validated records.

The Socket.IO handlers (:mod:`signaling.messages`) parse each client event into one of
these; the session service (:mod:`session.service`) trusts them. Limits that a page also
needs to know are served to it (:mod:`web.protocol`), not copied into JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

MAX_TEXT = 2000
MAX_SIGNATURE_PNG = 512 * 1024
MAX_STROKE_POINTS = 20000


@dataclass(frozen=True)
class Join:
    device: Optional[str]
    takeover: bool


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


@dataclass(frozen=True)
class LinkStats:
    """What a page measures of its own media (getStats), for the operator's metrics."""

    bitrate_kbps: Optional[float]
    loss_pct: Optional[float]
    rtt_ms: Optional[float]
    fps: Optional[float]
    freezes: Optional[int]


@dataclass(frozen=True)
class OtpVerify:
    code: str


@dataclass(frozen=True)
class Prompt:
    checkpoint: str


@dataclass(frozen=True)
class Capture:
    checkpoint: str


@dataclass(frozen=True)
class Note:
    text: str
    checkpoint: Optional[str]


@dataclass(frozen=True)
class Chat:
    text: str


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float
    accuracy_m: Optional[float]


@dataclass(frozen=True)
class SignRequest:
    role: str


@dataclass(frozen=True)
class Signature:
    """A hand signature: its strokes (lists of ``{x, y, t}``) and the PNG bytes."""

    strokes: tuple[tuple[dict[str, float], ...], ...]
    png: bytes
    width: Any
    height: Any


@dataclass(frozen=True)
class Overtime:
    reason: str


@dataclass(frozen=True)
class Photo:
    """An applicant's own photo, uploaded over HTTP (:mod:`web.uploads`)."""

    checkpoint: str
    data: bytes
    details: dict[str, Any]


#: what a drawing may hold (issue 14: point at the spot)
DRAWING_KINDS = ("arrow", "circle", "text")
MAX_DRAWING_SHAPES = 50
MAX_DRAWING_TEXT = 60


@dataclass(frozen=True)
class Shape:
    """One mark on the frozen picture; coordinates are fractions (0-1) of its width/height.

    ``arrow``: from ``points[0]`` to ``points[1]``; ``circle``: centre ``points[0]``, a point
    on the rim ``points[1]``; ``text``: ``text`` at ``points[0]``."""

    kind: str
    points: tuple[tuple[float, float], ...]
    text: Optional[str] = None
    color: str = "#ff3b30"


@dataclass(frozen=True)
class Drawing:
    """The inspector's marks, shown over the applicant's camera view at once."""

    shapes: tuple[Shape, ...]
    evidence_key: Optional[str] = None  # the still it was drawn on, if any


CAMERA_ACTIONS = ("torch_on", "torch_off", "zoom", "photo")
#: the zoom a request may ask for; the phone clamps it to what its camera offers
MAX_CAMERA_ZOOM = 20


@dataclass(frozen=True)
class CameraRequest:
    """The inspector asks the phone's camera to do something (issue 14: camera controls)."""

    action: str
    zoom: Optional[float] = None


@dataclass(frozen=True)
class CameraResult:
    """The phone's answer: done, or why not (``unsupported`` where the browser cannot)."""

    request_id: str
    action: str
    ok: bool
    reason: Optional[str] = None
    detail: Optional[str] = None
