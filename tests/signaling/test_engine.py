"""signaling/engine.py: Engine.IO's WebSocket loops without a task and timers per packet."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import aiohttp
import engineio
import pytest
import socketio

from signaling.engine import LeanSocket, _SilenceTimer, use_lean_loops
from takan import app as app_module
from testkit.server import create_inspection, running_server
from testkit.sockets import token_of


@pytest.fixture
async def server(tmp_path):
    async with running_server(tmp_path / "data") as srv:
        yield srv


@pytest.mark.parametrize("transports", [["polling", "websocket"], ["websocket"]])
async def test_events_are_acked_over_both_ways_to_a_websocket(server, transports) -> None:
    """The browsers' way (long polling, then the upgrade handshake) and WebSocket at once."""
    async with aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.base_url, auth={"token": token_of(created["inspector_url"])}, transports=transports, wait_timeout=5)
    try:
        assert (await client.call("join", {}, timeout=10))["ok"]
        for n in range(5):
            ack = await client.call("note", {"text": f"note {n}"}, timeout=10)
            assert ack["ok"], ack
        assert client.transport() == "websocket"
        sockets = list(server.runner.app[app_module.SIO].eio.sockets.values())
        assert sockets and all(type(s) is LeanSocket and s.upgraded for s in sockets)
    finally:
        await client.disconnect()


class _FakeWebSocket:
    """The driver's face (wait, send, close) over queues, for a peer that goes silent."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Optional[str]] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed = asyncio.Event()

    async def wait(self) -> str:
        message = await self.incoming.get()
        if message is None:
            raise OSError("closed")
        return message

    async def send(self, message: Any) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        self.closed.set()
        self.incoming.put_nowait(None)


def _lean_socket(sid: str, messages: list[Any], **options: Any) -> Any:
    """An Engine.IO socket of a server made with ``options``, given LeanSocket's loops; the
    data of each message it receives is appended to ``messages``."""
    eio = engineio.AsyncServer(async_mode="aiohttp", monitor_clients=False, **options)

    async def message(sid: str, data: Any) -> None:
        messages.append(data)

    eio.on("message", message)
    socket = engineio.async_socket.AsyncSocket(eio, sid)
    use_lean_loops(socket)
    return socket


async def test_a_silent_websocket_is_closed_after_ping_interval_plus_timeout() -> None:
    received: list[Any] = []
    socket = _lean_socket("sid-1", received, ping_interval=0.2, ping_timeout=0.2)
    assert type(socket) is LeanSocket
    ws = _FakeWebSocket()
    loop = asyncio.get_running_loop()
    started = loop.time()
    handler = asyncio.ensure_future(socket._websocket_handler(ws))
    await socket.send(engineio.packet.Packet(engineio.packet.MESSAGE, data="out"))
    for text in ("hello", "again"):
        await asyncio.sleep(0.15)
        ws.incoming.put_nowait("4" + text)  # Engine.IO MESSAGE packets keep it alive
    await asyncio.wait_for(handler, 3)
    silent_for = loop.time() - started
    assert received == ["hello", "again"] and "4out" in ws.sent
    assert ws.closed.is_set() and socket.closed
    # closed 0.4 s after the last message (at ~0.3 s), not 0.4 s after the start
    assert 0.6 <= silent_for < 1.5, silent_for


async def test_the_silence_timer_waits_for_the_last_message() -> None:
    fired: list[float] = []
    loop = asyncio.get_running_loop()
    timer = _SilenceTimer(0.1, lambda: fired.append(loop.time()))
    start = loop.time()
    for _ in range(3):
        await asyncio.sleep(0.06)
        timer.heard()
    await asyncio.sleep(0.25)
    assert len(fired) == 1 and fired[0] - start >= 0.28
    timer.cancel()
    stopped = _SilenceTimer(0.05, lambda: fired.append(loop.time()))
    stopped.cancel()
    await asyncio.sleep(0.1)
    assert len(fired) == 1


class _SlowWebSocket(_FakeWebSocket):
    """A peer that reads slowly: the first write waits (aiohttp's drain) after writing."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def send(self, message: Any) -> None:
        self.sent.append(message)  # aiohttp writes the frame first, then may wait
        if len(self.sent) == 1:
            await self.release.wait()


async def test_packets_leave_in_the_order_sent_while_a_write_waits() -> None:
    socket = _lean_socket("sid-2", [])
    ws = _SlowWebSocket()
    handler = asyncio.ensure_future(socket._websocket_handler(ws))
    await asyncio.sleep(0.01)  # the loops run: packets now go straight to the WebSocket

    def message(n: int) -> Any:
        return engineio.packet.Packet(engineio.packet.MESSAGE, data=f"m{n}")

    first = asyncio.ensure_future(socket.send(message(0)))  # written, then waits for the peer
    await asyncio.sleep(0.01)
    for n in range(1, 4):
        await socket.send(message(n))  # queued behind it, for the writer
    await asyncio.sleep(0.01)
    assert ws.sent == ["4m0"]  # the writer waits for the write in progress
    ws.release.set()
    await first
    await asyncio.sleep(0.01)
    await socket.send(message(4))
    await asyncio.sleep(0.01)
    assert ws.sent == [f"4m{n}" for n in range(5)]
    ws.incoming.put_nowait(None)  # the peer leaves
    await asyncio.wait_for(handler, 3)
    assert ws.closed.is_set() and socket.closed


async def test_a_reader_takes_one_buffered_message_per_turn_of_the_loop() -> None:
    """Buffered messages come out without suspending: the reader yields after each, so a
    connection with a backlog does not hold up the loop's timers and other connections."""
    order: list[str] = []
    socket = _lean_socket("sid-3", order, async_handlers=False)
    ws = _FakeWebSocket()
    for n in range(4):
        ws.incoming.put_nowait(f"4m{n}")
    handler = asyncio.ensure_future(socket._websocket_handler(ws))

    async def other_work() -> None:
        for _ in range(6):
            order.append("tick")
            await asyncio.sleep(0)

    await other_work()
    ws.incoming.put_nowait(None)
    await asyncio.wait_for(handler, 3)
    messages = [i for i, item in enumerate(order) if item != "tick"]
    assert [order[i] for i in messages] == ["m0", "m1", "m2", "m3"]
    assert all(b - a > 1 for a, b in zip(messages, messages[1:])), order  # a tick between each


def test_an_untested_engineio_release_keeps_its_own_loops(monkeypatch, caplog) -> None:
    """LeanSocket copies engineio 4.15's upgrade handshake: another release must not get it."""
    import importlib.metadata

    from engineio import async_socket

    from signaling import engine

    assert engine.lean_loops_fit()  # what pyproject installs
    engine.lean_loops_fit.cache_clear()
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "4.99.0")
    try:
        socket = object.__new__(async_socket.AsyncSocket)
        engine.use_lean_loops(socket)
        assert type(socket) is async_socket.AsyncSocket
        assert any("4.99.0" in r.getMessage() for r in caplog.records)
    finally:
        engine.lean_loops_fit.cache_clear()


async def test_a_connection_over_its_frame_budget_is_closed_at_once(server) -> None:
    """Over budget (three 1 MB chats in a second), the WebSocket itself is closed with a
    status code at once, not just sent Engine.IO's "1" (the browsers' client ignores it on a
    WebSocket and hung until the 45 s silence timeout); its frames are no longer read, it
    leaves no budget behind, and the server serves the next connection."""
    sio = server.runner.app[app_module.SIO]
    async with aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        token = token_of(created["inspector_url"])
        ws_url = server.base_url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with http.ws_connect(ws_url, max_msg_size=0) as ws:
            opened = await ws.receive_str()
            assert opened.startswith("0")
            sid = json.loads(opened[1:])["sid"]
            await ws.send_str('40{"token":"%s"}' % token)
            assert (await ws.receive_str()).startswith("40")
            big = "x" * (1024 * 1024)
            loop = asyncio.get_running_loop()
            closed_at: Optional[float] = None
            started = loop.time()
            for n in range(3):
                await ws.send_str(f"42{n + 1}" + json.dumps(["chat", {"text": big}]))
            try:
                while closed_at is None:
                    message = await asyncio.wait_for(ws.receive(), 1.5)
                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                        closed_at = loop.time()
                    elif ws.closed is False:
                        await ws.send_str('42["ping",{}]')  # a client that keeps talking
            except asyncio.TimeoutError:
                pass
            assert closed_at is not None and closed_at - started < 1.0, "the WebSocket was left open"
            assert ws.close_code in (1008, 1009), ws.close_code
        assert sid not in sio._budgets and sid not in sio.eio.sockets
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(server.base_url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
        try:
            assert (await client.call("join", {}, timeout=10))["ok"]
            assert (await client.call("ping", {}, timeout=10))["ok"]
        finally:
            await client.disconnect()
        assert sid not in sio._budgets
