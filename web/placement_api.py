"""``POST /api/v1/session/node``: which node serves the session of a link (docs/nodes.md).

The page asks with its link token as a ``text/plain`` body, a request a browser sends
across origins without a preflight, so the page of a node that stopped answering can ask
the deployment's entry URL (the load balancer) where its room went. The answer carries
``Access-Control-Allow-Origin: *``: it names a node URL and nothing about the inspection,
and only to the holder of a valid link. The node that answers takes the room if no live
node hosts it.
"""

from __future__ import annotations

from aiohttp import web

from session.service import SessionService

from .bodies import read_body
from .routes import LINK, Route, post

MAX_TOKEN_BYTES = 4096


class PlacementApi:
    def __init__(self, sessions: SessionService, entry_url: str) -> None:
        self.sessions = sessions
        self.entry_url = entry_url

    def routes(self) -> list[Route]:
        return [post("/api/v1/session/node", self.node, LINK)]

    async def node(self, request: web.Request) -> web.Response:
        # the whole body: content.read(n) returns what is buffered, which may be a piece of it
        raw = await read_body(request, MAX_TOKEN_BYTES, "the link token (send it alone as the body)")
        place = await self.sessions.locate(raw.decode("utf-8", "replace").strip())
        return web.json_response(
            {"node": place.node_id, "node_url": place.url, "entry_url": self.entry_url},
            headers={"Access-Control-Allow-Origin": "*"},
        )
