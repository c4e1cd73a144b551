"""Errors typed by what they cause, not by how a wire carries them.

Raised anywhere in Takan; mapped to an RFC 9457 problem in one place
(:mod:`web.problems`) and to a Socket.IO error ack in one place (:mod:`signaling.acks`).
The families, by consequence:

* :class:`Refused`: the request is refused and the user is told why (bad input, too
  large, too many, a rule of the session); the caller can fix it and retry.
* :class:`NotAuthorised`: the caller is not known (:class:`Unauthorized`: log in or send
  a key) or may not do this (:class:`Forbidden`).
* :class:`NotFound`: what was named does not exist (or is not the caller's to see).
* :class:`Conflict`: the thing exists but is in a state that does not allow this.
* :class:`Unavailable`: a dependency is down or missing on this node; retry later.
* :class:`Disconnect`: a protocol violation; the connection is dropped after the answer.
* :class:`Elsewhere`: another node serves this (an inspection's room); the caller goes
  there (``extra`` carries ``node_url``, docs/nodes.md).

``code`` is a stable machine-readable name; ``extra`` carries fields the caller needs
(e.g. where a one-time code was sent).
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "BadRequest",
    "Conflict",
    "Disconnect",
    "Elsewhere",
    "Forbidden",
    "Gone",
    "NotAuthorised",
    "NotFound",
    "RateLimited",
    "Refused",
    "RequestTimeout",
    "TakanError",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationFailed",
]


class TakanError(Exception):
    """Base of every error Takan shows to a caller."""

    code = "internal"
    title = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: Optional[list[dict[str, Any]]] = None,
        code: Optional[str] = None,
        extra: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        if code is not None:
            self.code = code
        self.extra = extra or {}


# -- refuse and tell the user -------------------------------------------------------------


class Refused(TakanError):
    code, title = "bad_request", "Bad request"


class BadRequest(Refused):
    code, title = "bad_request", "Bad request"


class ValidationFailed(Refused):
    code, title = "validation_failed", "Validation failed"


class TooLarge(Refused):
    code, title = "too_large", "Payload too large"


class UnsupportedMediaType(Refused):
    code, title = "unsupported_media_type", "Unsupported media type"


class RequestTimeout(Refused):
    """The client stopped sending (a body that stalls): it may send the request again."""

    code, title = "request_timeout", "Request timeout"


class RateLimited(Refused):
    code, title = "rate_limited", "Too many requests"


class Gone(Refused):
    code, title = "gone", "Gone"


# -- not authorised -------------------------------------------------------------------------


class NotAuthorised(TakanError):
    code, title = "forbidden", "Forbidden"


class Unauthorized(NotAuthorised):
    """Who is calling is not known: log in, send a key or open the link again."""

    code, title = "unauthorized", "Unauthorized"


class Forbidden(NotAuthorised):
    """The caller is known and may not do this."""

    code, title = "forbidden", "Forbidden"


# -- the rest -------------------------------------------------------------------------------


class NotFound(TakanError):
    code, title = "not_found", "Not found"


class Conflict(TakanError):
    code, title = "conflict", "Conflict"


class Unavailable(TakanError):
    code, title = "unavailable", "Service unavailable"


class Elsewhere(TakanError):
    """Another live node hosts this; ``extra["node_url"]`` says where to go."""

    code, title = "elsewhere", "Served by another node"


class Disconnect(TakanError):
    """The peer broke the protocol; it gets this answer, then the connection is closed."""

    code, title = "protocol_error", "Protocol error"
