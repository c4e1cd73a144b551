"""Security headers on every response, credentials that are text, and per-caller rate
limits on the API."""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from errors import RateLimited, Unauthorized
from storage.livestate import LiveState

from .auth import SESSION_COOKIE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Pages load only their own scripts and styles; media and sockets go to this origin (and,
#: on several nodes, the page of a node may ask the deployment's entry URL where its room
#: went when this node stops answering: docs/nodes.md).
def content_security_policy(connect: tuple[str, ...] = ()) -> str:
    sources = " ".join(("'self'", *connect, "ws:", "wss:"))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data: blob:; media-src 'self' blob:; connect-src {sources}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )


def security_headers_middleware(tls: bool, connect: tuple[str, ...] = ()) -> Middleware:
    """The headers; ``connect``: origins the pages may fetch from besides their own."""
    csp = content_security_policy(connect)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", csp)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=(self)")
        if request.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")
        if tls:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    return middleware


def rate_limit_middleware(live: LiveState, per_minute: int) -> Middleware:
    """At most ``per_minute`` API requests per caller (key, session or address)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            who = request.headers.get("Authorization", "")[-24:] or request.cookies.get(SESSION_COOKIE, "")[-24:] or str(request.remote)
            if await live.hit(f"api:{who}", 60) > per_minute:
                raise RateLimited(f"more than {per_minute} requests a minute; slow down and retry")
        return await handler(request)

    return middleware


def credentials_middleware() -> Middleware:
    """A credential that is not UTF-8 text is a 401 before anything reads it.

    aiohttp hands undecodable header bytes (a latin-1 \\xe9) through as lone surrogates;
    hashing such a key, or naming a rate-limit bucket by it, fails with a 500. Keys,
    session tokens and cookies are ASCII as issued, so nothing valid is refused."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        for value in (request.headers.get("Authorization", ""), request.cookies.get(SESSION_COOKIE, "")):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise Unauthorized(
                    "the credential sent is not UTF-8 text; send Authorization: Bearer <api key> "
                    "exactly as it was issued, or log in again"
                ) from None
        return await handler(request)

    return middleware
