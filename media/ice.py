"""ICE configuration for the server's peer connections."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any, Callable

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server, as configured and as sent to browsers."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def to_browser(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            entry["username"] = self.username
        if self.credential is not None:
            entry["credential"] = self.credential
        return entry

    def to_aiortc(self) -> RTCIceServer:
        return RTCIceServer(
            urls=list(self.urls), username=self.username, credential=self.credential
        )


def turn_rest_credentials(secret: str, user: str, ttl_s: int, now: float) -> tuple[str, str]:
    """coturn's shared-secret REST scheme (``use-auth-secret``): a short-lived TURN login.

    username = "<expiry unix time>:<user>", credential = base64(HMAC-SHA1(secret, username)).
    """
    username = f"{int(now) + ttl_s}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


#: The longest total outage the server's ICE must ride out without closing the peer
#: connection (a phone in a tunnel or a lift; issue 10 measures 8 s).
OUTAGE_TOLERANCE_S = 20.0


def consent_tolerance_s() -> float:
    """Shortest silence after which aioice gives up on a connected pair (RFC 7675 consent).

    aioice checks consent every CONSENT_INTERVAL s (randomised down to 0.8x), one request
    without retransmission each time, and closes the connection after CONSENT_FAILURES
    consecutive failures: aioice 0.13 tolerates about 6 x 5 x 0.8 = 24 s, enough for
    OUTAGE_TOLERANCE_S, so nothing is patched. ``check_consent_tolerance`` (start-up, tests)
    fails loudly if an upgrade shortens it.
    """
    return float(aioice.ice.CONSENT_FAILURES * aioice.ice.CONSENT_INTERVAL * 0.8) - 0.5


def check_consent_tolerance() -> None:
    if consent_tolerance_s() < OUTAGE_TOLERANCE_S:
        raise RuntimeError(
            f"aioice gives up on a silent connection after {consent_tolerance_s():.0f} s, less than "
            f"the {OUTAGE_TOLERANCE_S:.0f} s outage Takan rides out; raise it in media/ice.py"
        )


def rtc_configuration(servers: tuple[IceServer, ...]) -> RTCConfiguration:
    return RTCConfiguration(iceServers=[s.to_aiortc() for s in servers])


class LoopbackCandidates:
    """While started, aioice offers 127.0.0.1 as a host candidate.

    aioice leaves loopback out, so on a machine whose only interface is ``lo`` (a CI
    network namespace) ICE would never connect; browsers must then also be started with
    ``--allow-loopback-in-peer-connection``. aioice gathers through one module function
    with no per-connection hook, so this replaces that function: an app that asks for
    loopback candidates (``--ice-loopback``) owns one of these in a ``cleanup_ctx``, and the
    original function is back when the last owner closes. ``start`` and ``close`` are
    idempotent per owner.
    """

    _owners = 0
    _original: Callable[[bool, bool], list[str]] | None = None

    def __init__(self) -> None:
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        cls = LoopbackCandidates
        if cls._owners == 0:
            original = aioice.ice.get_host_addresses
            cls._original = original

            def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
                addresses = original(use_ipv4, use_ipv6)
                if use_ipv4 and "127.0.0.1" not in addresses:
                    addresses.append("127.0.0.1")
                return addresses

            aioice.ice.get_host_addresses = with_loopback
            logger.info("ICE: offering 127.0.0.1 host candidates")
        cls._owners += 1

    def close(self) -> None:
        if not self._started:
            return
        self._started = False
        cls = LoopbackCandidates
        cls._owners -= 1
        if cls._owners == 0 and cls._original is not None:
            setattr(aioice.ice, "get_host_addresses", cls._original)
            cls._original = None
