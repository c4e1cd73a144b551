"""The direct SRTP path of media/tap.py's socket reader keeps aiortc's order of handling.

Unit tests with stand-ins for aioice's connection and aiortc's DTLS transport; the real path
runs in tests/media/test_transport_cc.py, where every packet of a real aiortc peer is
reported in transport feedback after going this way, and in every real-peer test of
tests/media.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from media import tap


class _Srtp:
    def unprotect(self, data: bytes) -> bytes:
        return data

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return data


class _Dtls:
    """What the path reads and calls on an RTCDtlsTransport."""

    def __init__(self) -> None:
        self._rx_srtp: Optional[_Srtp] = _Srtp()
        self._state = tap._DTLS_CONNECTED
        setattr(self, tap._DTLS_RX_BYTES, 0)
        setattr(self, tap._DTLS_RX_PACKETS, 0)
        self.handled: list[bytes] = []
        self.gate: Optional[asyncio.Future[None]] = None

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        if data.endswith(b"wait"):
            self.gate = asyncio.get_running_loop().create_future()
            await self.gate
        self.handled.append(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self.handled.append(data)


class _Connection:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def data_received(self, data: bytes, component: int) -> None:
        self._queue.put_nowait((data, component))

    async def recvfrom(self) -> tuple[bytes, int]:
        return await self._queue.get()  # type: ignore[no-any-return]


def _rtp(n: int, tail: bytes = b"") -> bytes:
    return bytes([0x80, 96]) + n.to_bytes(2, "big") + bytes(8) + tail


def _rtcp() -> bytes:
    return bytes([0x80, 201, 0, 1]) + bytes(4)


async def test_a_waiting_handler_holds_later_datagrams_in_order() -> None:
    dtls, connection = _Dtls(), _Connection()
    clock = tap._ArrivalClock(connection, dtls)  # type: ignore[arg-type]
    assert clock._take_direct(_rtp(1), 5.0)
    assert dtls.handled == [_rtp(1)] and clock.current == 5.0
    assert clock._take_direct(_rtp(2, b"wait"), None)  # its handler waits on a future
    assert dtls.handled == [_rtp(1)]
    assert clock._take_direct(_rtp(3), None) and clock._take_direct(_rtcp(), None)  # held behind it
    assert dtls.handled == [_rtp(1)]
    assert dtls.gate is not None
    dtls.gate.set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert dtls.handled == [_rtp(1), _rtp(2, b"wait"), _rtp(3), _rtcp()]
    assert clock.direct == 4 and getattr(dtls, tap._DTLS_RX_PACKETS) == 4


async def test_datagrams_take_the_queue_while_the_dtls_task_is_busy_or_behind() -> None:
    dtls, connection = _Dtls(), _Connection()
    clock = tap._ArrivalClock(connection, dtls)  # type: ignore[arg-type]
    connection.data_received(_rtp(1), 1)  # queued: the DTLS task has not taken it yet
    assert not clock._take_direct(_rtp(2), None)
    assert await connection.recvfrom() == (_rtp(1), 1)  # the task takes it and is busy with it
    assert connection._queue.empty() and not clock._take_direct(_rtp(2), None)
    task = asyncio.ensure_future(connection.recvfrom())  # back for the next one: idle
    await asyncio.sleep(0)
    assert clock._take_direct(_rtp(3), None)
    task.cancel()
    # no SRTP keys yet, or the transport no longer connected: aioice's path
    dtls._rx_srtp = None
    assert not clock._take_direct(_rtp(4), None)
    dtls._rx_srtp, dtls._state = _Srtp(), tap.DtlsState.CLOSED
    assert not clock._take_direct(_rtp(5), None)
    assert dtls.handled == [_rtp(3)]


async def test_a_failing_handler_is_logged_and_the_next_datagram_still_handled(caplog) -> None:
    dtls, connection = _Dtls(), _Connection()

    async def broken(data: bytes, arrival_time_ms: int) -> None:
        raise RuntimeError("boom")

    dtls._handle_rtp_data = broken  # type: ignore[method-assign]
    clock = tap._ArrivalClock(connection, dtls)  # type: ignore[arg-type]
    for n in range(3):
        assert clock._take_direct(_rtp(n), None)
    assert clock.failures == 3 and clock.direct == 3
    assert sum("handling an SRTP datagram failed" in r.getMessage() for r in caplog.records) == 1
    assert clock._take_direct(_rtcp(), None) and dtls.handled == [_rtcp()]


async def test_datagrams_held_behind_a_handler_that_never_resumes_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(tap, "HELD_DATAGRAMS", 3)
    dtls, connection = _Dtls(), _Connection()
    clock = tap._ArrivalClock(connection, dtls)  # type: ignore[arg-type]
    assert clock._take_direct(_rtp(0, b"wait"), None)
    for n in range(1, 10):
        assert clock._take_direct(_rtp(n), None)
    assert [data for data, _ in clock._held] == [_rtp(7), _rtp(8), _rtp(9)]  # the newest kept
