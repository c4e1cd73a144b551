"""ICE configuration for the server's peer connections."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
from dataclasses import dataclass
from typing import Any, Callable

import aioice.ice
import aioice.stun
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


#: Consent (RFC 7675) expires once no check has been answered for this long: the RFC's
#: 30 s, as Chromium has it.
CONSENT_EXPIRY_S = 30.0
#: Each consent check is retransmitted this many times (0.5 and 1.5 s after it is sent,
#: aioice's RTO doubling; it times out at 3.5 s), so an answer that comes within 3.5 s counts.
CONSENT_RETRANSMISSIONS = 2


def consent_tolerance_s() -> float:
    """Shortest silence after which the server gives up on a connected pair."""
    return CONSENT_EXPIRY_S


def check_consent_tolerance() -> None:
    if consent_tolerance_s() < OUTAGE_TOLERANCE_S:
        raise RuntimeError(
            f"the server's ICE gives up on a silent connection after {consent_tolerance_s():.0f} s, less than "
            f"the {OUTAGE_TOLERANCE_S:.0f} s outage Takan rides out; raise CONSENT_EXPIRY_S in media/ice.py"
        )
    missing = [f"Connection.{name}" for name in ("query_consent", "build_request", "close")
               if not callable(getattr(aioice.ice.Connection, name, None))]
    if not hasattr(aioice.ice, "CONSENT_INTERVAL"):
        missing.append("CONSENT_INTERVAL")
    if missing:
        raise RuntimeError(f"aioice lacks {', '.join(missing)}: port media/ice.py's consent checks to it")


async def _query_consent(self: Any) -> None:
    """aioice's ``Connection.query_consent`` with late answers counted (RFC 7675).

    aioice sends each check once and counts it failed if no answer comes within 0.5 s,
    closing the connection after 6 failures in a row. On a link whose queue holds a second
    or more (a mobile carrier's buffer; the field bench's 80 kbit/s downlink) every answer
    comes too late, and 30 s into such a link the server closed the inspector's peer
    connection although the inspector was there all along: 15 s without audio while the
    page rebuilt it. Here each check is retransmitted (same transaction, so any answer to
    it counts), and consent expires only when none has been answered for CONSENT_EXPIRY_S.
    """
    assert self.remote_password is not None  # checks start once connect() has it
    loop = asyncio.get_running_loop()
    answered = loop.time()
    while True:
        await asyncio.sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
        for pair in list(self._nominated.values()):
            request = self.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(request, pair.remote_addr, integrity_key=self.remote_password.encode("utf8"),
                                            retransmissions=CONSENT_RETRANSMISSIONS)
                answered = loop.time()
            except aioice.stun.TransactionError:
                pass
        if loop.time() - answered >= CONSENT_EXPIRY_S:
            logger.info("ICE: no consent check answered for %.0f s; closing the connection", loop.time() - answered)
            self._query_consent_task = None
            await self.close()
            return


#: aioice's own, kept for tests that compare.
AIOICE_QUERY_CONSENT = aioice.ice.Connection.query_consent


def count_late_consent_answers() -> None:
    """Install :func:`_query_consent` for every aioice connection of this process (idempotent)."""
    aioice.ice.Connection.query_consent = _query_consent  # type: ignore[method-assign]


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
