"""The protocol's constants that the pages need, served at ``GET /api/v1/protocol``.

Each value is read from the module that enforces it, so the pages
(``web_client/static/js/protocol.js`` loads this once) never repeat a limit, a role list or a
list of names that the server could change. Only what a page uses, or a client needs to stay
within ``docs/protocol.md``, belongs here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from approval.evaluation import MAX_COMMENT as MAX_RATING_COMMENT
from approval.inspections import OPEN_STATUSES
from approval.outbox import EVENTS as WEBHOOK_EVENTS, STATES as WEBHOOK_STATES
from approval.prudent import KINDS as PRUDENT_LISTS
from identity.permissions import EXCLUSIVE_ROLES, ROLES as STAFF_ROLES

from . import actions, messages
from .rooms import SOURCE_ROLE
from .sockets import MAX_EVENTS_PER_SECOND
from .timer import PHASES
from .tokens import ROLES as LINK_ROLES
from .uploads import MAX_PHOTO_BYTES

PATH = "/api/v1/protocol"


def constants() -> dict[str, Any]:
    """The document served at :data:`PATH` (plain JSON types only)."""
    return {
        "roles": {
            "link": list(LINK_ROLES),
            "staff": list(STAFF_ROLES),
            "staff_exclusive": [list(pair) for pair in EXCLUSIVE_ROLES],
        },
        "source_role": dict(SOURCE_ROLE),
        "limits": {
            "event_bytes": messages.MAX_EVENT_BYTES,
            "upload_event_bytes": messages.MAX_UPLOAD_EVENT_BYTES,
            "events_per_second": MAX_EVENTS_PER_SECOND,
            "text_chars": actions.MAX_TEXT,
            "signature_png_bytes": actions.MAX_SIGNATURE_PNG,
            "signature_points": actions.MAX_STROKE_POINTS,
            "photo_bytes": MAX_PHOTO_BYTES,
            "rating_comment_chars": MAX_RATING_COMMENT,
        },
        "open_statuses": list(OPEN_STATUSES),
        "timer_phases": [name for name, _ in PHASES],
        "prudent_lists": list(PRUDENT_LISTS),
        "webhooks": {"states": list(WEBHOOK_STATES), "events": list(WEBHOOK_EVENTS)},
    }


async def serve(request: web.Request) -> web.Response:
    return web.json_response(constants())


def routes() -> list[web.RouteDef]:
    return [web.get(PATH, serve)]
