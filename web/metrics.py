"""``GET /metrics``: Prometheus text format, for an admin's key or session, or loopback.

A scraper on the same host (or behind the node's own proxy on loopback) needs no
credentials; from elsewhere the caller must hold the ``admin`` permission.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from errors import Unauthorized

from .auth import PRINCIPAL
from .routes import PUBLIC, Route, get


def from_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


class MetricsEndpoint:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def routes(self) -> list[Route]:
        # PUBLIC to the route policy: the handler decides (loopback, or the admin permission)
        return [get("/metrics", self.metrics, PUBLIC)]

    async def metrics(self, request: web.Request) -> web.Response:
        if not from_loopback(request):
            principal = request.get(PRINCIPAL)
            if principal is None:
                raise Unauthorized("metrics need an admin's API key or staff login (or a scraper on loopback)")
            principal.require("admin")
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
