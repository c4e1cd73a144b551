"""Errors typed by what they cause for the caller.

Raised anywhere below the web layer; ``signaling/problems.py`` maps each to an RFC 9457
problem (REST) or an error ack (Socket.IO) in one place.
"""

from __future__ import annotations

from typing import Any, Optional


class TakanError(Exception):
    """Base: ``status`` is the HTTP status, ``code`` a stable machine-readable name."""

    status = 500
    code = "internal"
    title = "Internal error"

    def __init__(self, detail: str, *, errors: Optional[list[dict[str, Any]]] = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class BadRequest(TakanError):
    status, code, title = 400, "bad_request", "Bad request"


class ValidationFailed(TakanError):
    status, code, title = 422, "validation_failed", "Validation failed"


class Unauthorized(TakanError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(TakanError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(TakanError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(TakanError):
    status, code, title = 409, "conflict", "Conflict"


class Gone(TakanError):
    status, code, title = 410, "gone", "Gone"


class TooLarge(TakanError):
    status, code, title = 413, "too_large", "Payload too large"


class UnsupportedMediaType(TakanError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class RateLimited(TakanError):
    status, code, title = 429, "rate_limited", "Too many requests"


class Unavailable(TakanError):
    status, code, title = 503, "unavailable", "Service unavailable"
