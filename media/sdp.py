"""Checks on SDP from browsers before aiortc sees it."""

from __future__ import annotations

from aiortc.sdp import candidate_from_sdp

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
    #: each media section's a=mid values, in order (aiortc fails on a missing or repeated
    #: one only when it makes the answer, with a bare ValueError)
    mids: list[list[str]] = []
    for number, line in enumerate(lines, start=1):
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise BadSdp(f"sdp line {number} is not '<letter>=<value>': {line[:40]!r}")
        if line.startswith("m="):
            media += 1
            kind = line[2:].split(" ", 1)[0]
            if kind not in _ALLOWED_MEDIA:
                raise BadSdp(f"sdp line {number}: media kind {kind!r} is not supported")
            mids.append([])
        elif line.startswith("a=candidate:"):
            _check_candidate(number, line)
        elif line.startswith("a=mid:") and mids:
            mids[-1].append(line[len("a=mid:"):].strip())
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
    _check_mids(mids)
    return sdp


def _check_candidate(number: int, line: str) -> None:
    """An ICE candidate line aiortc can parse (it asserts on a short one, with no message)."""
    try:
        candidate_from_sdp(line[len("a=candidate:"):])
    except (ValueError, IndexError, AssertionError) as exc:
        raise BadSdp(f"sdp line {number} is not an ICE candidate ({reason(exc)}): {line[:80]!r}") from exc


def _check_mids(mids: list[list[str]]) -> None:
    """Every media section names itself with exactly one ``a=mid``, unique in the offer."""
    seen: dict[str, int] = {}
    for section, values in enumerate(mids, start=1):
        if not values or not values[0]:
            raise BadSdp(f"sdp media section {section} has no a=mid (each section needs one)")
        if len(values) > 1:
            raise BadSdp(f"sdp media section {section} has {len(values)} a=mid lines; exactly one is allowed")
        if values[0] in seen:
            raise BadSdp(f"sdp media sections {seen[values[0]]} and {section} have the same a=mid {values[0][:32]!r}")
        seen[values[0]] = section


def reason(exc: BaseException) -> str:
    """What went wrong, never empty: the exception's message, else its class name (aiortc
    raises some errors, an AssertionError or an IndexError, with no message)."""
    text = str(exc).strip()
    return text[:200] if text else type(exc).__name__
