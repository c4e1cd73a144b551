"""Admin endpoints: webhook deliveries (see failures, re-send)."""

from __future__ import annotations

from typing import Optional, cast

from aiohttp import web

from approval.apikeys import ApiKeys
from approval.outbox import PAGE_MAX, DeliveryState, Outbox
from errors import ValidationFailed

from .routes import Route, get, post

STATES = ("pending", "delivered", "failed")
#: Deliveries per page of ``GET /api/v1/webhooks`` unless ``limit`` says otherwise.
DEFAULT_LIMIT = 100


def _integer(request: web.Request, name: str, default: int, low: int, high: Optional[int]) -> int:
    """The query parameter ``name`` as an integer in [low, high], ``default`` if absent; 422 otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise ValidationFailed(f"{name} must be an integer {bounds}",
                               errors=[{"field": name, "message": f"{raw!r} is not an integer {bounds}"}])
    return value


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
        """The newest ``limit`` deliveries (``state`` ones if given) before ``before``, in
        enqueue order, with the counts, the total in the state and the cursor of the older
        page (``next_before``, null when there is none)."""
        state = request.query.get("state")
        if state is not None and state not in STATES:
            raise ValidationFailed(
                f"state must be one of {', '.join(STATES)}",
                errors=[{"field": "state", "message": f"{state!r} is not a delivery state"}],
            )
        chosen = cast(Optional[DeliveryState], state)  # checked above
        limit = _integer(request, "limit", DEFAULT_LIMIT, 1, PAGE_MAX)
        before = _integer(request, "before", 0, 0, None) if "before" in request.query else None
        items, older = await self.outbox.page(chosen, limit, before)
        return web.json_response({
            "stats": self.outbox.stats(),
            "total": self.outbox.count(chosen),
            "items": [d.as_json() for d in items],
            "next_before": older,
        })

    async def delivery(self, request: web.Request) -> web.Response:
        return web.json_response((await self.outbox.load(request.match_info["id"])).as_json())

    async def resend(self, request: web.Request) -> web.Response:
        delivery = await self.outbox.resend(request.match_info["id"])
        return web.json_response(delivery.as_json(), status=202)
