"""Records made on another node: looked up in the store before a handler says 404.

Each node's inspection book is an in-memory index that other nodes' announcements keep
fresh (docs/nodes.md); an announcement can arrive after the approval core's next request,
which the load balancer may send to another node. For every ``/api/v1/inspections/{id}...``
route, this looks an id the book does not know up in the object store first, so the
handlers (which read the book synchronously) find it.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from approval.inspections import InspectionBook

from .routes import Handler

PREFIX = "/api/v1/inspections/"


def record_lookup_middleware(book: InspectionBook) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        inspection_id = request.match_info.get("id")
        if inspection_id and request.path.startswith(PREFIX) and book.find(inspection_id) is None:
            await book.fetch(inspection_id)
        return await handler(request)

    return middleware
