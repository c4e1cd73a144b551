"""``GET /api/v1/protocol``: the protocol's constants, for the pages (built by
:mod:`takan.protocol` from the modules that enforce them)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .routes import PUBLIC, Route, get

PATH = "/api/v1/protocol"


class ProtocolDocument:
    def __init__(self, constants: dict[str, Any]) -> None:
        self.constants = constants

    def routes(self) -> list[Route]:
        return [get(PATH, self.serve, PUBLIC)]

    async def serve(self, request: web.Request) -> web.Response:
        return web.json_response(self.constants)
