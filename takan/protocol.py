"""The protocol's constants that the pages need, served at ``GET /api/v1/protocol``.

Built here, in the composition root, because the values come from both doors (Socket.IO
limits from :mod:`signaling`, upload limits from :mod:`web`) and from the domain below them;
:mod:`web.protocol` serves the document. Each value is read from the module that enforces it, so the pages
(``web_client/static/js/protocol.js`` loads this once) never repeat a limit, a role list or a
list of names that the server could change. Only what a page uses, or a client needs to stay
within ``docs/protocol.md``, belongs here.
"""

from __future__ import annotations

from typing import Any

from approval.evaluation import MAX_COMMENT as MAX_RATING_COMMENT
from approval.inspections import OPEN_STATUSES
from approval.outbox import EVENTS as WEBHOOK_EVENTS, STATES as WEBHOOK_STATES
from approval.prudent import KINDS as PRUDENT_LISTS
from identity.permissions import EXCLUSIVE_ROLES, ROLES as STAFF_ROLES

from session import commands
from session.rooms import SOURCE_ROLE
from session.timer import PHASES
from session.tokens import ROLES as LINK_ROLES
from signaling import messages
from signaling.namespace import MAX_EVENTS_PER_SECOND
from web.uploads import MAX_PHOTO_BYTES


def constants() -> dict[str, Any]:
    """The document served at ``GET /api/v1/protocol`` (plain JSON types only)."""
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
            "text_chars": commands.MAX_TEXT,
            "signature_png_bytes": commands.MAX_SIGNATURE_PNG,
            "signature_points": commands.MAX_STROKE_POINTS,
            "photo_bytes": MAX_PHOTO_BYTES,
            "rating_comment_chars": MAX_RATING_COMMENT,
            "drawing_shapes": commands.MAX_DRAWING_SHAPES,
            "drawing_text_chars": commands.MAX_DRAWING_TEXT,
            "camera_zoom_max": commands.MAX_CAMERA_ZOOM,
        },
        "open_statuses": list(OPEN_STATUSES),
        "timer_phases": [name for name, _ in PHASES],
        "prudent_lists": list(PRUDENT_LISTS),
        "webhooks": {"states": list(WEBHOOK_STATES), "events": list(WEBHOOK_EVENTS)},
    }
