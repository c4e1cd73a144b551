"""GET /api/v1/protocol serves the constants the server enforces, for the pages."""

from __future__ import annotations

import json

import aiohttp

from approval.evaluation import MAX_COMMENT
from identity.permissions import ROLES
from session import commands as actions
from signaling import messages
from web import uploads
from takan.protocol import constants
from web.protocol import PATH
from session.rooms import SOURCE_ROLE
from signaling.namespace import MAX_EVENTS_PER_SECOND
from session.tokens import ROLES as LINK_ROLES
from testkit.server import running_server


def test_the_values_are_the_enforcing_modules() -> None:
    served = constants()
    assert served["limits"] == {
        "event_bytes": messages.MAX_EVENT_BYTES,
        "upload_event_bytes": messages.MAX_UPLOAD_EVENT_BYTES,
        "events_per_second": MAX_EVENTS_PER_SECOND,
        "text_chars": actions.MAX_TEXT,
        "signature_png_bytes": actions.MAX_SIGNATURE_PNG,
        "signature_points": actions.MAX_STROKE_POINTS,
        "photo_bytes": uploads.MAX_PHOTO_BYTES,
        "rating_comment_chars": MAX_COMMENT,
        "drawing_shapes": actions.MAX_DRAWING_SHAPES,
        "drawing_text_chars": actions.MAX_DRAWING_TEXT,
        "camera_zoom_max": actions.MAX_CAMERA_ZOOM,
    }
    assert served["roles"]["staff"] == list(ROLES)
    assert served["roles"]["link"] == list(LINK_ROLES)
    assert served["source_role"] == SOURCE_ROLE
    assert json.loads(json.dumps(served)) == served  # plain JSON


async def test_served_to_anyone_without_credentials(tmp_path) -> None:
    async with running_server(tmp_path / "data") as server, aiohttp.ClientSession() as http:
        async with http.get(server.base_url + PATH) as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-store"
            assert await r.json() == constants()
