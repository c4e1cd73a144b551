"""The server's ICE consent checks (RFC 7675) over real aioice connections on loopback.

A link whose queue holds a second or more (a mobile carrier's buffer) answers every check
late; the server must not close such a connection, and must still close one whose peer is
gone. Time is scaled down: checks every 0.1 s, aioice's retransmission timer 0.05 s.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aioice
import aioice.ice
import aioice.stun
import pytest

from media import ice
from media.ice import LoopbackCandidates, count_late_consent_answers


async def _connected_pair() -> tuple[Any, Any]:
    a = aioice.Connection(ice_controlling=True, components=1, use_ipv6=False)
    b = aioice.Connection(ice_controlling=False, components=1, use_ipv6=False)
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for candidate in b.local_candidates:
        await a.add_remote_candidate(candidate)
    await a.add_remote_candidate(None)
    for candidate in a.local_candidates:
        await b.add_remote_candidate(candidate)
    await b.add_remote_candidate(None)
    a.remote_username, a.remote_password = b.local_username, b.local_password
    b.remote_username, b.remote_password = a.local_username, a.local_password
    await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 10)
    return a, b


def _answers(conn: Any, delay_s: float | None) -> None:
    """``conn`` answers STUN checks ``delay_s`` late (None: not at all)."""
    loop = asyncio.get_running_loop()
    for protocol in conn._protocols:
        send = protocol.send_stun

        def delayed(message: Any, addr: Any, send: Any = send) -> None:
            if message.message_class != aioice.stun.Class.RESPONSE:
                send(message, addr)
            elif delay_s is not None:
                loop.call_later(delay_s, send, message, addr)

        protocol.send_stun = delayed


@pytest.fixture
def fast_consent(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.1)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.05)
    monkeypatch.setattr(ice, "CONSENT_EXPIRY_S", 1.0)
    # aioice's own until a test installs Takan's (a ServerPeer of an earlier test may have)
    monkeypatch.setattr(aioice.ice.Connection, "query_consent", ice.AIOICE_QUERY_CONSENT)
    loopback = LoopbackCandidates()
    loopback.start()
    yield
    loopback.close()


async def _closed_within(conn: Any, seconds: float) -> bool:
    await asyncio.sleep(seconds)
    task = conn._query_consent_task
    return task is None or task.done()


@pytest.mark.parametrize("takans, delay_s, closed", [
    (False, 0.15, True),  # aioice's own: an answer later than one RTO, the only wait it gives, fails
    (True, 0.15, False),  # Takan's: within the retransmissions' 0.35 s, the answer counts
])
async def test_late_answers(fast_consent, takans: bool, delay_s: float, closed: bool) -> None:
    if takans:
        count_late_consent_answers()
    a, b = await _connected_pair()
    try:
        _answers(b, delay_s)
        assert await _closed_within(a, 2.0) is closed
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_a_peer_that_never_answers_loses_consent_after_the_expiry(fast_consent) -> None:
    count_late_consent_answers()
    a, b = await _connected_pair()
    try:
        _answers(b, None)
        assert not await _closed_within(a, 0.6)  # under CONSENT_EXPIRY_S: still open
        assert await _closed_within(a, 1.5)
    finally:
        await asyncio.gather(a.close(), b.close())
