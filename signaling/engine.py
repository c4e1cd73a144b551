"""Engine.IO's WebSocket transport without a task and two timers per packet.

python-engineio 4 reads every WebSocket message through a new task awaited with
``asyncio.wait_for`` (a future, a timer and a done callback) and its writer waits for every
outgoing packet with another ``wait_for``. Both are there only to notice a connection that
has gone silent for ``ping_interval + ping_timeout``. An evidence event costs a read and one
to three writes (its ack; a location is also broadcast to both participants), so at 3,000
events/s that machinery was several thousand tasks and timers a second on the one core the
server has (~20 us each, measured on this machine's Python).

:class:`LeanSocket` runs the same loops over the same queue and driver, awaiting the socket
and the queue directly, and writes a packet straight to the WebSocket when none is ahead of
it (:meth:`LeanSocket.send`). One timer per connection, re-armed only when it fires, closes
a WebSocket that received nothing for that long, which ends both loops as Engine.IO's
timeout did. The polling transport, the upgrade handshake and the packets on the wire are
Engine.IO's own. :func:`use_lean_loops` gives a just-created socket this class (Engine.IO
builds its sockets itself and has no factory to pass).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import logging
from typing import Any, Callable, Optional

from engineio import async_socket, exceptions, packet

logger = logging.getLogger(__name__)


class _SilenceTimer:
    """Calls ``on_silent`` once nothing was :meth:`heard` for ``limit_s``.

    One timer handle per connection: a message only stores the loop's time, and the timer,
    when it fires early, re-arms itself for the rest of the time.
    """

    def __init__(self, limit_s: float, on_silent: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit_s = limit_s
        self._on_silent = on_silent
        self.last = self._loop.time()
        self._handle: Optional[asyncio.TimerHandle] = self._loop.call_at(self.last + limit_s, self._check)

    def heard(self) -> None:
        self.last = self._loop.time()

    def _check(self) -> None:
        due = self.last + self._limit_s
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self._handle = None
        self._on_silent()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class LeanSocket(async_socket.AsyncSocket):  # type: ignore[misc]  # python-engineio is untyped
    """An Engine.IO socket whose WebSocket loops await directly (see the module docstring)."""

    # engineio's own state (set in its __init__), declared for the type checker
    connected: bool
    upgrading: bool
    upgraded: bool
    #: The WebSocket while the loops run; a packet goes straight to it when nothing is ahead
    _ws: Any = None
    #: A packet is being written straight to the WebSocket (its send may wait for the peer)
    _sending = False
    #: The writer holds packets taken from the queue that it has not written yet
    _holding = False
    _turn: "Optional[asyncio.Future[None]]" = None
    #: Closing the WebSocket itself after a close while the loops run (see :meth:`close`)
    _ws_closing: "Optional[asyncio.Future[None]]" = None

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """Engine.IO's close, then, while the loops run, close the WebSocket itself.

        Engine.IO only sends its CLOSE packet ("1"), which engine.io-client ignores on a
        WebSocket: a connection the server closed (over its frame budget, say) stayed open
        and kept being read until it fell silent. A close frame with a status code ends it
        for both sides at once (1008: the server's policy ended it).
        """
        await super().close(wait=wait, abort=abort, reason=reason)
        ws = self._ws
        if ws is None or self._ws_closing is not None:
            return  # not on a WebSocket, or its loops are ending it already
        code = 1008 if reason == self.server.reason.SERVER_DISCONNECT else 1000
        # a task: close() may run in the reader (as a frame is handled), which must go on
        # to stop reading while aiohttp waits for the peer's close frame; the handler awaits it
        self._ws_closing = asyncio.ensure_future(_close_websocket(ws, code))

    async def send(self, pkt: Any) -> None:
        """Write ``pkt`` at once when no packet is queued or being written ahead of it (an
        ack or a broadcast, nearly always), else queue it for the writer, in order.

        The writer task then wakes only for packets that met others on the way: one
        wake-up and queue round trip less per packet. aiohttp writes a frame to the
        transport before it waits for anything, so packets leave in the order sent here.
        """
        ws = self._ws
        if ws is None or self._sending or self._holding or self.upgrading or not self.queue.empty():
            await super().send(pkt)
            return
        if not await self.check_ping_timeout():
            return
        self._sending = True
        try:
            await ws.send(pkt.encode())
        except Exception as exc:  # the writer's rule: a failed write ends the connection
            self.server.logger.info("%s: a write failed (%r); closing", self.sid, exc)
            closing = asyncio.ensure_future(ws.close())
            closing.add_done_callback(_ignore_result)
        finally:
            self._sending = False
            turn, self._turn = self._turn, None
            if turn is not None and not turn.done():
                turn.set_result(None)

    async def _websocket_handler(self, ws: Any) -> None:
        limit = self.server.max_http_buffer_size
        if self.connected:
            # an upgrade from polling: Engine.IO's probe handshake, as engineio does it
            self.upgrading = True  # hold packet sends during the upgrade
            try:
                probe = packet.Packet(encoded_packet=await ws.wait())
            except OSError:
                return
            if probe.packet_type != packet.PING or probe.data != "probe":
                self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                self.upgrading = False
                return
            await ws.send(packet.Packet(packet.PONG, data="probe").encode())
            await self.queue.put(packet.Packet(packet.NOOP))  # end the pending poll
            try:
                upgrade = packet.Packet(encoded_packet=await ws.wait())
            except OSError:
                self.upgrading = False
                return
            if upgrade.packet_type != packet.UPGRADE:
                self.upgraded = False
                self.server.logger.info("%s: Failed websocket upgrade, expected UPGRADE packet", self.sid)
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True

        writer = asyncio.ensure_future(self._write_loop(ws))
        self._ws = ws
        silence = _SilenceTimer(self.server.ping_interval + self.server.ping_timeout, lambda: self._close_silent(ws))
        try:
            while True:
                try:
                    data = await ws.wait()
                except BaseException:  # closed, failed or cancelled: engineio breaks on each too
                    break
                if len(data) > limit:
                    break  # engineio: "packet is too large", the connection ends
                if self.closing or self.closed:
                    break  # closed by the server: nothing more of it is read
                silence.heard()
                try:
                    await self.receive(packet.Packet(encoded_packet=data))
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    self.server.logger.info("Receive error -- socket is closed")
                    break
                except Exception:
                    self.server.logger.exception("Unknown receive error")
                if self.closed:
                    break  # the frame closed it (over its budget, say): stop reading now
                # One message per connection per turn of the loop, as engineio's task per
                # message made it: aiohttp hands out buffered messages without suspending,
                # and a reader draining hundreds at once under load would hold up every
                # timer (the node's heartbeat lapsed and it fenced itself) and every other
                # connection. A bare yield costs a fraction of that task.
                await asyncio.sleep(0)
        finally:
            silence.cancel()
            self._ws = None  # what is sent from now on waits in the queue, as in engineio
        await self.queue.put(None)  # unlock the writer so it can exit
        await writer
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        if self._ws_closing is not None:
            await self._ws_closing  # aiohttp's close handshake (bounded by its own timeout)

    def _close_silent(self, ws: Any) -> None:
        """Nothing arrived for ping_interval + ping_timeout: close, which ends the reader."""
        self.server.logger.info("%s: nothing received for %.0f s; closing", self.sid,
                                self.server.ping_interval + self.server.ping_timeout)
        closing = asyncio.ensure_future(ws.close())
        closing.add_done_callback(_ignore_result)

    async def _write_loop(self, ws: Any) -> None:
        """Send what the queue holds, a batch at a time, until ``None`` (the reader ended)."""
        queue = self.queue
        while True:
            first = await queue.get()
            queue.task_done()
            if first is None:
                break
            batch = [first]
            while not queue.empty():
                more = queue.get_nowait()
                queue.task_done()
                if more is None:
                    queue.put_nowait(None)  # as engineio's poll: the end stays for the next round
                    break
                batch.append(more)
            self._holding = True  # sends wait behind this batch (see send)
            try:
                if self._sending:  # a packet written straight is still waiting for the peer
                    self._turn = asyncio.get_running_loop().create_future()
                    await self._turn
                for pkt in batch:
                    await ws.send(pkt.encode())
            except Exception:
                break
            finally:
                self._holding = False
        if self._ws_closing is None:  # else close() is closing it, with its status code
            await ws.close()


async def _close_websocket(ws: Any, code: int) -> None:
    """Close the driver's WebSocket with a status code; a failure only ends it sooner."""
    sock = getattr(ws, "_sock", None)  # engineio's aiohttp driver keeps the WebSocketResponse there
    try:
        if sock is not None and hasattr(sock, "close"):
            await sock.close(code=code, message=b"closed by the server")
        else:
            await ws.close()
    except Exception as exc:  # the peer is gone already: nothing left to close
        logger.debug("closing a WebSocket failed: %r", exc)


def _ignore_result(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("closing a silent WebSocket failed: %r", task.exception())


#: The python-engineio releases whose ``AsyncSocket._websocket_handler`` LeanSocket's mirrors
#: (its upgrade handshake is copied, not called): another release keeps Engine.IO's own
#: loops, slower but its own, and says so once, rather than run a handshake of another version.
TESTED_RELEASES = ("4.15.",)


@functools.lru_cache(maxsize=1)
def lean_loops_fit() -> bool:
    """The installed python-engineio is one LeanSocket was written against."""
    try:
        release = importlib.metadata.version("python-engineio")
    except importlib.metadata.PackageNotFoundError:
        release = "unknown"
    if release.startswith(TESTED_RELEASES):
        return True
    logger.warning("python-engineio %s is not one signaling/engine.py was tested with (%s): "
                   "Engine.IO's own WebSocket loops are used", release, ", ".join(TESTED_RELEASES))
    return False


def use_lean_loops(socket: Any) -> None:
    """Give an Engine.IO socket just created (not yet on a WebSocket) :class:`LeanSocket`'s loops."""
    if type(socket) is async_socket.AsyncSocket and lean_loops_fit():
        socket.__class__ = LeanSocket
