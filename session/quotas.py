"""How much a participant, and a session, may store: counts and bytes, checked first.

Everything a participant can make Takan store (signatures, photos, stills, notes, chat,
and every other event a client's message logs: drawings, camera requests and answers,
locations, prompts, signature requests, overtime reasons) is counted per participant role
and per session. A request over a cap is refused *before*
any decoding or writing, so a link holder cannot fill the disk or hold the event loop. The
counts are rebuilt from the evidence log when a session is resumed (after a restart or on
another node), so a restart does not reset them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from errors import Refused


class QuotaExceeded(Refused):
    code, title = "quota_exceeded", "Quota exceeded"


@dataclass(frozen=True)
class Limit:
    count: int
    bytes: int


MiB = 1024 * 1024
#: kind -> (per participant role, per session). Generous for a real inspection (a 30-minute
#: session has a handful of signatures, tens of photos, a few hundred chat lines).
LIMITS: dict[str, tuple[Limit, Limit]] = {
    "signature": (Limit(5, 3 * MiB), Limit(10, 6 * MiB)),
    "photo": (Limit(150, 1200 * MiB), Limit(150, 1200 * MiB)),
    "note": (Limit(500, 2 * MiB), Limit(500, 2 * MiB)),
    "chat": (Limit(1000, 2 * MiB), Limit(2000, 4 * MiB)),
    # the other logged client events, each sent by one role (an hour or two of a real
    # session: a location a minute from the page, every few seconds at most, is ~3,000 in
    # two hours; a few hundred marks and camera requests; a handful of overtime reasons)
    "still": (Limit(300, 600 * MiB), Limit(300, 600 * MiB)),
    "drawing": (Limit(1000, 8 * MiB), Limit(1000, 8 * MiB)),
    "camera": (Limit(500, 1 * MiB), Limit(500, 1 * MiB)),
    "camera_result": (Limit(500, 1 * MiB), Limit(500, 1 * MiB)),
    "location": (Limit(3000, 2 * MiB), Limit(3000, 2 * MiB)),
    "prompt": (Limit(300, 1 * MiB), Limit(300, 1 * MiB)),
    "sign_request": (Limit(50, 1 * MiB), Limit(50, 1 * MiB)),
    "overtime": (Limit(10, 1 * MiB), Limit(10, 1 * MiB)),
}
#: The evidence events that count, by kind.
EVENT_KINDS = {"signature.signed": "signature", "photo.uploaded": "photo",
               "note": "note", "chat": "chat", "still.captured": "still",
               "drawing.shown": "drawing", "drawing.cleared": "drawing",
               "camera.requested": "camera", "camera.answered": "camera_result",
               "location.updated": "location", "checkpoint.prompted": "prompt",
               "signature.requested": "sign_request", "timer.overtime_reason": "overtime"}
NAMES = {"signature": "signatures", "photo": "photos", "note": "notes", "chat": "chat messages",
         "still": "stills", "drawing": "drawings", "camera": "camera requests",
         "camera_result": "camera answers", "location": "locations", "prompt": "prompts",
         "sign_request": "signature requests", "overtime": "overtime reasons"}
#: Kinds whose bytes are those of the logged data (the others: a blob's size, or the text).
SIZED_BY_DATA = frozenset({"drawing", "camera", "camera_result", "location", "prompt", "sign_request", "overtime"})


def logged_size(data: dict[str, Any]) -> int:
    """The bytes an event's data takes in the log, as a quota counts them."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


class Usage:
    """What one session has stored so far."""

    def __init__(self) -> None:
        self._count: Counter[tuple[str, str]] = Counter()
        self._bytes: Counter[tuple[str, str]] = Counter()

    @classmethod
    def from_events(cls, events: Iterable[dict[str, Any]]) -> "Usage":
        usage = cls()
        for event in events:
            kind = EVENT_KINDS.get(str(event.get("type")))
            if kind is None or event.get("type") == "signature.strokes":
                continue  # a signature is counted once, by its PNG
            data = event.get("data") or {}
            if kind in SIZED_BY_DATA:
                # the staff member's name was added to the logged data: a few bytes more
                size = logged_size({k: v for k, v in data.items() if k != "staff"})
            else:
                size = int(data.get("size") or len(str(data.get("text", "")).encode()))
            usage.add(kind, str(event.get("actor")), size)
        return usage

    def check(self, kind: str, role: str, size: int) -> None:
        """Refuse (before the work) if storing ``size`` more bytes of ``kind`` goes over."""
        per_role, per_session = LIMITS[kind]
        name = NAMES[kind]
        if self._count[(kind, role)] + 1 > per_role.count or self._bytes[(kind, role)] + size > per_role.bytes:
            raise QuotaExceeded(
                f"the {role} has stored {self._count[(kind, role)]} {name} ({self._bytes[(kind, role)] // 1024} KiB); "
                f"at most {per_role.count} ({per_role.bytes // MiB} MiB) per inspection"
            )
        if self._count[(kind, "*")] + 1 > per_session.count or self._bytes[(kind, "*")] + size > per_session.bytes:
            raise QuotaExceeded(f"this inspection already has {self._count[(kind, '*')]} {name}; at most {per_session.count}")

    def add(self, kind: str, role: str, size: int) -> None:
        for who in (role, "*"):
            self._count[(kind, who)] += 1
            self._bytes[(kind, who)] += size
