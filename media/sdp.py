"""Checks on SDP from browsers before aiortc sees it."""

from __future__ import annotations

MAX_SDP_BYTES = 32 * 1024
MAX_MEDIA_SECTIONS = 8
_ALLOWED_MEDIA = {"audio", "video", "application"}


class BadSdp(ValueError):
    """The SDP is malformed, hostile or uses something Takan does not relay."""


def check_offer(sdp: object) -> str:
    """Return ``sdp`` if it looks like a usable offer, else raise :class:`BadSdp`."""
    if not isinstance(sdp, str):
        raise BadSdp(f"sdp must be a string, got {type(sdp).__name__}")
    if len(sdp.encode("utf-8", "replace")) > MAX_SDP_BYTES:
        raise BadSdp(f"sdp is larger than {MAX_SDP_BYTES} bytes")
    if "\x00" in sdp:
        raise BadSdp("sdp contains a NUL byte")
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        raise BadSdp("sdp must start with 'v=0'")
    media = 0
    fingerprint = False
    ice = False
    for number, line in enumerate(lines, start=1):
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise BadSdp(f"sdp line {number} is not '<letter>=<value>': {line[:40]!r}")
        if line.startswith("m="):
            media += 1
            kind = line[2:].split(" ", 1)[0]
            if kind not in _ALLOWED_MEDIA:
                raise BadSdp(f"sdp line {number}: media kind {kind!r} is not supported")
        elif line.startswith("a=fingerprint:"):
            fingerprint = True
        elif line.startswith("a=ice-ufrag:"):
            ice = True
    if media == 0:
        raise BadSdp("sdp has no media section")
    if media > MAX_MEDIA_SECTIONS:
        raise BadSdp(f"sdp has {media} media sections; at most {MAX_MEDIA_SECTIONS}")
    if not fingerprint:
        raise BadSdp("sdp has no DTLS fingerprint (a=fingerprint); media must be encrypted")
    if not ice:
        raise BadSdp("sdp has no ICE credentials (a=ice-ufrag)")
    return sdp
