"""python-socketio's server with what a public endpoint needs: bounded frames.

* Frames are decoded with bounded JSON nesting (:mod:`jsonsafe`): 1,000 nested arrays in
  2 KB are refused, not a RecursionError with a traceback.
* Every frame, decodable or not, counts against its connection's budget (frames per
  second and bytes per ten seconds); a frame that fails to decode costs ten. A connection
  over budget is closed. The budget sits beside the namespace's own 50 events/s, which
  counts only frames that became events.
* Each connection's WebSocket loops are :mod:`signaling.engine`'s: no task and timers per
  packet.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import socketio
from socketio import packet

import jsonsafe

from .engine import use_lean_loops

logger = logging.getLogger(__name__)

FRAMES_PER_SECOND = 60
#: Two signatures (the largest event, up to about 1.2 MB) in ten seconds, plus everything else.
BYTES_PER_10_S = 5 * 512 * 1024
BAD_FRAME_COST = 10
#: An EVENT packet that asks for an ack: ``2`` [``/namespace,``] ``<id>`` ``[...``
_EVENT_WITH_ACK = re.compile(r"2(/[^,]{0,64},)?(\d{1,9})\[")
#: The event name at the start of an EVENT packet.
_EVENT_NAME = re.compile(r'2(?:/[^,]{0,64},)?\d{0,9}\["([A-Za-z_]{1,40})"')
#: Frames over this are refused undecoded unless they carry one of :data:`BIG_EVENTS`
#: (decoding a megabyte of JSON costs the event loop milliseconds: not for a refusal).
MAX_SMALL_FRAME = 72 * 1024
BIG_EVENTS = frozenset({"signature"})


class _BoundedJson:
    """The ``json`` a packet decodes with: bounded nesting."""

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return jsonsafe.loads(text, "the message")

    @staticmethod
    def dumps(value: Any, **kwargs: Any) -> str:
        if kwargs == _COMPACT_ARGS:  # what every packet asks for: an encoder made once, not per packet
            return _COMPACT.encode(value)
        return json.dumps(value, **kwargs)


_COMPACT_ARGS = {"separators": (",", ":")}
_COMPACT = json.JSONEncoder(separators=(",", ":"))


#: Event names of Socket.IO's own lifecycle, never a client's to send.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})


class BoundedPacket(packet.Packet):  # type: ignore[misc]
    json = _BoundedJson


class _Budget:
    def __init__(self) -> None:
        self.second = 0
        self.frames = 0
        self.window = 0
        self.bytes = 0

    def take(self, size: int, frames: int = 1) -> bool:
        now = time.monotonic()
        if int(now) != self.second:
            self.second, self.frames = int(now), 0
        if int(now // 10) != self.window:
            self.window, self.bytes = int(now // 10), 0
        self.frames += frames
        self.bytes += size
        return self.frames <= FRAMES_PER_SECOND and self.bytes <= BYTES_PER_10_S


class SocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """An :class:`socketio.AsyncServer` whose connections have a frame budget."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.packet_class = BoundedPacket
        self._budgets: dict[str, _Budget] = {}

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        # Engine.IO has just made the socket and has not started its transport yet
        use_lean_loops(self.eio.sockets.get(eio_sid))
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_event(self, eio_sid: str, namespace: Any, id: Any, data: Any) -> None:
        # "connect" and "disconnect" name the server's own lifecycle handlers: a client that
        # sends an event by that name must not run them (fake a drop, swap its link and role)
        if isinstance(data, list) and data and data[0] in RESERVED_EVENTS:
            logger.info("connection %s: a client event named %r refused", eio_sid, data[0])
            if id is not None:
                error = {"ok": False, "error": {"code": "bad_request", "message": f"{data[0]!r} is not an event a client may send"}}
                await self._send_packet(eio_sid, self.packet_class(packet.ACK, namespace=namespace or "/", data=[error], id=id))
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid not in self.eio.sockets:
            return  # closed (over its budget, say): nothing more is read from it
        budget = self._budgets.setdefault(eio_sid, _Budget())
        size = len(data) if isinstance(data, (str, bytes)) else 0
        if not budget.take(size):
            logger.warning("connection %s: over its frame budget; closing it", eio_sid)
            await self.eio.disconnect(eio_sid)
            return
        if size > MAX_SMALL_FRAME and isinstance(data, str):
            name = _EVENT_NAME.match(data[:120])
            if name is None or name.group(1) not in BIG_EVENTS:
                logger.info("connection %s: a %d-byte frame for %r refused undecoded", eio_sid, size,
                            name.group(1) if name else "?")
                if not budget.take(0, BAD_FRAME_COST):
                    await self.eio.disconnect(eio_sid)
                    return
                await self._refuse(eio_sid, data, jsonsafe.JsonRefused(
                    f"the message is {size} bytes; at most {MAX_SMALL_FRAME} unless it is a signature"))
                return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            # one line, no traceback: a broken or hostile client, not a server fault
            logger.info("connection %s: undecodable frame of %d bytes (%s)", eio_sid, size, str(exc)[:120])
            if not budget.take(0, BAD_FRAME_COST):
                logger.warning("connection %s: too many bad frames; closing it", eio_sid)
                await self.eio.disconnect(eio_sid)
                return
            await self._refuse(eio_sid, data, exc)

    async def _refuse(self, eio_sid: str, data: Any, exc: Exception) -> None:
        """Answer an event that asked for an ack with an error ack, as any refused event."""
        match = _EVENT_WITH_ACK.match(data) if isinstance(data, str) else None
        if match is None:
            return
        namespace, ack_id = (match.group(1) or "/,")[:-1], int(match.group(2))
        message = str(exc) if isinstance(exc, jsonsafe.JsonRefused) else "the message could not be decoded"
        code = "too_large" if "bytes; at most" in message else "bad_request"
        error = {"ok": False, "error": {"code": code, "message": message}}
        await self._send_packet(eio_sid, self.packet_class(packet.ACK, namespace=namespace, data=[error], id=ack_id))

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self._budgets.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)
