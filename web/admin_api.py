"""Admin endpoints: webhook deliveries (see failures, re-send)."""

from __future__ import annotations

from aiohttp import web

from approval.apikeys import ApiKeys
from approval.outbox import Outbox
from errors import ValidationFailed

from .routes import Route, get, post

STATES = ("pending", "delivered", "failed")


class AdminApi:
    def __init__(self, keys: ApiKeys, outbox: Outbox) -> None:
        self.keys = keys
        self.outbox = outbox

    def routes(self) -> list[Route]:
        return [
            get("/api/v1/webhooks", self.deliveries, "admin"),
            get("/api/v1/webhooks/{id}", self.delivery, "admin"),
            post("/api/v1/webhooks/{id}/resend", self.resend, "admin"),
        ]

    async def deliveries(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state is not None and state not in STATES:
            raise ValidationFailed(
                f"state must be one of {', '.join(STATES)}",
                errors=[{"field": "state", "message": f"{state!r} is not a delivery state"}],
            )
        items = self.outbox.list(state)  # type: ignore[arg-type]
        return web.json_response({"stats": self.outbox.stats(), "items": [d.as_json() for d in items]})

    async def delivery(self, request: web.Request) -> web.Response:
        return web.json_response(self.outbox.get(request.match_info["id"]).as_json())

    async def resend(self, request: web.Request) -> web.Response:
        delivery = await self.outbox.resend(request.match_info["id"])
        return web.json_response(delivery.as_json(), status=202)
