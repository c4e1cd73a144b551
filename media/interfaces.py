"""The seam between rooms and media (after Galène's conn.go).

A room talks to :class:`Source` objects (one publisher's incoming encoded track) and
:class:`Sink` objects (anything that consumes encoded frames: a subscriber's outgoing
track, the recorder). Neither side knows aiortc.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

import av


class Source(Protocol):
    """One publisher's encoded track."""

    kind: str

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (rate limited by the source)."""

    def capture_ntp(self, pts: int) -> Optional[int]:
        """The publisher's NTP time (64-bit) of the capture of the frame with ``pts``, from
        its sender reports (None: not known)."""


class Sink(Protocol):
    """A consumer of encoded frames. ``write`` must not block."""

    kind: str

    def attach(self, source: Optional[Source]) -> None:
        """The slot's publisher changed (``None``: nobody publishes it now)."""

    def write(self, packet: av.Packet[Any]) -> None:
        """One encoded frame (VP8 or Opus), pts in the RTP clock of the kind."""


#: A room's media slot: (publishing role, kind), e.g. ``("applicant", "video")``.
Slot = tuple[str, str]


class SinkHost(Protocol):
    """What a sink joins: a room's slots (:class:`media.relay.MediaRoom` is one)."""

    def add_sink(self, slot: Slot, sink: Sink) -> None:
        """Feed ``sink`` the frames of ``slot`` from now on (and tell it who publishes)."""

    def remove_sink(self, slot: Slot, sink: Sink) -> None:
        """Stop feeding ``sink``."""
