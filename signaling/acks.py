"""The one place where errors become Socket.IO answers (docs/protocol.md, "Acks").

An event's ack is ``{ok: true, ...}`` or ``{ok: false, error: {code, message, ...}}``;
a refused connection gets the same ``{code, message}`` as its connect_error data.
Unexpected exceptions become an ``internal`` error with no stack trace on the wire.
"""

from __future__ import annotations

from typing import Any

from errors import TakanError, ValidationFailed
from media.sdp import BadSdp


def error_body(exc: BaseException) -> dict[str, Any]:
    """``{code, message, ...}`` for ``exc``."""
    if isinstance(exc, TakanError):
        # the pages know one code for bad input, whatever the REST status would be
        code = "bad_request" if isinstance(exc, ValidationFailed) else exc.code
        return {"code": code, "message": exc.detail, **exc.extra}
    if isinstance(exc, BadSdp):
        return {"code": "bad_sdp", "message": str(exc)}
    return {"code": "internal", "message": "internal error; it was logged. Retry"}


def error_ack(exc: BaseException) -> dict[str, Any]:
    """A Socket.IO error ack for ``exc``."""
    return {"ok": False, "error": error_body(exc)}
