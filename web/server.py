"""The HTTP server around the app: aiohttp's, with the timeouts it lacks.

aiohttp has no limit on how long a client may take to send a request's head, so a client
that trickles a header a byte at a time (slowloris), or opens a connection and says
nothing, holds a file descriptor for as long as it likes. :class:`GuardedAppRunner` serves
the app with connections that must deliver each request head within
:data:`HEADER_TIMEOUT_S`; idle keep-alive connections close after
:data:`KEEPALIVE_TIMEOUT_S`; a body that stops arriving for :data:`web.bodies.BODY_PAUSE_S`
is refused with 408 (:mod:`web.bodies`). Socket.IO's long-polls and WebSockets are
requests in progress, so none of this cuts them.

The figures: a phone on a poor link sends a 1-2 KB head in well under a second even at
50 kbit/s; 10 s leaves room for a stalled radio. Browsers reuse idle connections within a
few seconds; 15 s keeps them useful without hoarding descriptors.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from .problems import problem_response

HEADER_TIMEOUT_S = 10.0
KEEPALIVE_TIMEOUT_S = 15.0
_PARSER_CODES = {400: "bad_request", 413: "too_large", 431: "header_too_large", 500: "internal", 504: "timeout"}


class GuardedRequestHandler(RequestHandler):
    """A connection that closes if a request head does not arrive in time.

    The deadline is armed when the connection opens and again each time a response has
    been sent (the next head must then arrive in time too); it is disarmed when a complete
    head has been parsed.
    """

    header_timeout_s = HEADER_TIMEOUT_S

    def __init__(self, *args: Any, header_timeout_s: float = HEADER_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._head_deadline: Optional[asyncio.TimerHandle] = None
        self._heads_seen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_count > self._heads_seen:
            self._heads_seen = self._request_count
            self._disarm()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._disarm()
        super().connection_lost(exc)

    async def _handle_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._handle_request(*args, **kwargs)
        finally:
            if not self._messages:
                self._arm()  # the connection is idle again: the next head has a deadline too

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: Optional[BaseException] = None, message: Optional[str] = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request its parser refused (a head over 8 KiB, a bad
        Content-Length, an encoding it cannot undo) as a problem, like every other 4xx/5xx:
        aiohttp's own (logged, closing the connection) is text/plain."""
        super().handle_error(request, status, exc, message)  # logs it; raises if a response was begun
        if status >= 500:
            detail = "an internal error occurred; it was logged. Retry, then report it"
        else:
            lines = (message or "").strip().splitlines()
            reason = lines[0].rstrip(":") if lines else "malformed"
            detail = f"the request could not be read ({reason}); correct it and send it again"
        response = problem_response(status, _PARSER_CODES.get(status, "http_error"), detail)
        response.force_close()
        return response

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self._loop.call_later(self.header_timeout_s, self._head_timed_out, self._request_count)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self, count_when_armed: int) -> None:
        self._head_deadline = None
        if self._request_count == count_when_armed and self.transport is not None:
            self.force_close()


class GuardedServer(Server):
    def __init__(self, *args: Any, header_timeout_s: float = HEADER_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout_s = header_timeout_s

    def __call__(self) -> RequestHandler:
        try:
            return GuardedRequestHandler(self, loop=self._loop, header_timeout_s=self._header_timeout_s, **self._kwargs)
        except TypeError:
            # aiohttp changed RequestHandler's signature: fail loudly rather than serve unguarded
            raise RuntimeError("aiohttp's RequestHandler changed; update web/server.py") from None


class GuardedAppRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections have the timeouts above."""

    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("access_log", None)
        kwargs.setdefault("handle_signals", False)
        super().__init__(app, keepalive_timeout=keepalive_timeout_s, **kwargs)
        self._header_timeout_s = header_timeout_s

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        # the same server, built as the guarded kind (its arguments are aiohttp's own)
        return GuardedServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            header_timeout_s=self._header_timeout_s,
            **server._kwargs,
        )
