"""Request bodies read whole, with a size cap and a pause limit, or refused clearly.

``request.content.read(n)`` returns what is already buffered, not ``n`` bytes: a body
written in pieces would be taken for the whole. Everything here reads to the end of the
body (declared length or chunked), answers 413 once more than the cap has arrived whether
or not a length was declared, and 408 if the client stops sending in the middle.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

import jsonsafe
from errors import BadRequest, RequestTimeout, TooLarge, UnsupportedMediaType, ValidationFailed

#: How long a client may pause between two pieces of a body before it is refused.
BODY_PAUSE_S = 30.0
MAX_JSON_BODY = 256 * 1024
_CHUNK = 64 * 1024


async def read_body(request: web.Request, limit: int, what: str = "the body") -> bytes:
    """The whole body, at most ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"{what} is {declared} bytes; the limit is {limit}")
    data = bytearray()
    while True:
        try:
            chunk = await asyncio.wait_for(request.content.read(_CHUNK), BODY_PAUSE_S)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"{what} stopped arriving for {BODY_PAUSE_S:g} s; send it again") from None
        except web.RequestPayloadError as exc:
            # aiohttp's parser could not undo the body's framing or Content-Encoding (a
            # "gzip" body that is not gzip): the client sent it wrong, not a server fault
            reason = str(exc).strip().splitlines()[-1].strip() or "malformed"
            raise BadRequest(
                f"{what} could not be decoded ({reason}); send it again uncompressed, or as valid "
                "gzip or deflate matching its Content-Encoding"
            ) from None
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"{what} is larger than {limit} bytes")
    if declared is not None and len(data) != declared:
        raise BadRequest(f"{what} ended after {len(data)} of the {declared} bytes declared; send it again")
    return bytes(data)


def require_json_type(request: web.Request) -> None:
    ctype = request.content_type
    if ctype not in ("application/json", "application/merge-patch+json") and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"send Content-Type: application/json, not {ctype or 'nothing'}")


async def read_json(request: web.Request, limit: int = MAX_JSON_BODY) -> tuple[Any, bytes]:
    """The body parsed as JSON (bounded nesting, valid Unicode), and its raw bytes."""
    require_json_type(request)
    raw = await read_body(request, limit)
    try:
        return jsonsafe.check_unicode(jsonsafe.loads(raw), text=raw), raw
    except jsonsafe.JsonRefused as exc:
        raise BadRequest(str(exc)) from None


async def read_json_object(
    request: web.Request, allowed: set[str], required: frozenset[str] | set[str] = frozenset(), limit: int = MAX_JSON_BODY
) -> dict[str, Any]:
    """A JSON object body with only ``allowed`` fields and every ``required`` one (422)."""
    body, _ = await read_json(request, limit)
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", errors=[{"field": "$", "message": "must be an object"}])
    errors = [{"field": k, "message": "is not a known field"} for k in sorted(set(body) - allowed)]
    errors += [{"field": k, "message": "is required"} for k in sorted(set(required) - set(body))]
    if errors:
        raise ValidationFailed("the request body is not valid; see errors", errors=errors)
    return body
