"""How much a participant, and a session, may store: counts and bytes, checked first.

Everything a participant can make Takan store (signatures, photos, notes, chat) is
counted per participant role and per session. A request over a cap is refused *before*
any decoding or writing, so a link holder cannot fill the disk or hold the event loop. The
counts are rebuilt from the evidence log when a session is resumed (after a restart or on
another node), so a restart does not reset them.
"""

from __future__ import annotations

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
}
#: The evidence events that count, by kind.
EVENT_KINDS = {"signature.signed": "signature", "photo.uploaded": "photo",
               "note": "note", "chat": "chat"}
NAMES = {"signature": "signatures", "photo": "photos", "note": "notes", "chat": "chat messages"}


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
