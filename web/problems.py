"""The one place where errors become wire answers.

REST: RFC 9457 ``application/problem+json`` (the Socket.IO side is
:mod:`signaling.acks`). An :mod:`errors` family maps to its HTTP status here and nowhere
else. Unexpected exceptions become a 500 problem with no stack trace on the wire (the log
has it).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

import errors
from errors import TakanError

logger = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://takan.dev/problems/"
_HTTP_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    408: "Request timeout",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def problem_response(
    status: int, code: str, detail: str, errors: list[dict[str, Any]] | None = None, title: str | None = None,
    extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or _HTTP_TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    body.update(extra or {})
    text = json.dumps(body, ensure_ascii=False)
    try:
        encoded = text.encode()
    except UnicodeEncodeError:
        # a detail quoting a caller's lone surrogate: escaped, so the answer itself is sent
        encoded = json.dumps(body).encode()
    if status == 401:
        # RFC 9110 15.5.2: a 401 names the scheme that would be accepted
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return web.Response(
        status=status,
        headers=headers,
        body=encoded,
        content_type="application/problem+json",
        charset="utf-8",
    )


#: HTTP status of each error class; the most specific class in an error's MRO wins.
HTTP_STATUS: dict[type[TakanError], int] = {
    errors.Refused: 400,
    errors.BadRequest: 400,
    errors.ValidationFailed: 422,
    errors.TooLarge: 413,
    errors.RequestTimeout: 408,
    errors.UnsupportedMediaType: 415,
    errors.RateLimited: 429,
    errors.Gone: 410,
    errors.NotAuthorised: 403,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Unavailable: 503,
    errors.Elsewhere: 421,
    errors.Disconnect: 400,
}


def http_status(exc: TakanError) -> int:
    """The HTTP status that carries ``exc``."""
    for cls in type(exc).__mro__:
        status = HTTP_STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_problem(exc: TakanError) -> web.Response:
    """``exc`` as a problem+json response."""
    # where to go instead is the one extension member a problem carries (docs/nodes.md)
    extra = exc.extra if isinstance(exc, errors.Elsewhere) else None
    response = problem_response(http_status(exc), exc.code, exc.detail, exc.errors, exc.title, extra)
    if response.status == 408:
        response.force_close()  # RFC 9110 15.5.9: "Connection: close", the connection is not reused
    return response


@web.middleware
async def problems_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every 4xx/5xx under /api/ leaves as problem+json, never HTML or a traceback."""
    try:
        return await handler(request)
    except TakanError as exc:
        return error_problem(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status, "http_error")
        detail = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        if exc.status == 404:
            detail = f"no such resource: {request.method} {request.path}"
        elif exc.status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        elif exc.status == 413:
            detail = "the request body is too large"
        # the router's 405 lists the methods that are allowed (RFC 9110 15.5.6): keep it
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problem_response(exc.status, code, detail or exc.reason, headers=allow)
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "internal", "an internal error occurred; it was logged. Retry, then report it")
