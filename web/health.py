"""``GET /healthz``: is this node up, and what should an operator know about it."""

from __future__ import annotations

from aiohttp import web

from approval.workdays import WorkingCalendar
from storage.objects import ObjectStore

from .routes import PUBLIC, Route, get


class Health:
    def __init__(self, node_id: str, store: ObjectStore, calendar: WorkingCalendar) -> None:
        self.node_id = node_id
        self.store = store
        self.calendar = calendar

    def routes(self) -> list[Route]:
        return [get("/healthz", self.healthz, PUBLIC)]

    async def healthz(self, request: web.Request) -> web.Response:
        body: dict[str, object] = {"status": "ok", "node": self.node_id}
        depth = getattr(self.store, "depth", None)
        if depth is not None:
            body["spool_depth"] = depth
        warning = self.calendar.warning()  # next year's holidays not loaded (from November)
        if warning is not None:
            body["calendar"] = {"warning": warning}
        return web.json_response(body)
