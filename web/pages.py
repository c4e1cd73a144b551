"""The web pages: the participant pages and their static files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .routes import PUBLIC, Handler, Route, get, static

WEB_CLIENT = Path(__file__).resolve().parent.parent / "web_client"
STATIC_DIR = WEB_CLIENT / "static"
SOCKET_IO_CLIENT = WEB_CLIENT / "node_modules" / "socket.io-client" / "dist" / "socket.io.esm.min.js"

PAGES = {
    "/console": "console.html",
    "/observe": "console.html",
    "/join": "join.html",
    "/audit": "audit.html",
    "/login": "login.html",
    "/admin": "admin.html",
    "/workbench": "workbench.html",
}


def _page(name: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        path = STATIC_DIR / name
        if not path.is_file():
            raise web.HTTPNotFound(text=f"page {name} is missing from this installation")
        return web.FileResponse(path, headers={"Cache-Control": "no-store"})

    return handler


async def socket_io_client(request: web.Request) -> web.StreamResponse:
    if not SOCKET_IO_CLIENT.is_file():
        raise web.HTTPServiceUnavailable(
            text="the Socket.IO client is not installed; run: npm ci --prefix web_client"
        )
    return web.FileResponse(SOCKET_IO_CLIENT, headers={"Content-Type": "text/javascript"})


async def index(request: web.Request) -> web.Response:
    return web.Response(
        text="<!doctype html><meta charset=utf-8><title>Takan 踏勘</title>"
        "<h1>Takan 踏勘</h1><p>远程踏勘服务正在运行。请使用您收到的链接加入。</p>"
        "<p>The remote inspection service is running. Open the link you were given to join.</p>",
        content_type="text/html",
    )


def routes() -> list[Route]:
    """The pages, the vendored Socket.IO client and the static files: all public."""
    table = [get("/", index, PUBLIC)]
    table += [get(path, _page(name), PUBLIC) for path, name in PAGES.items()]
    table.append(get("/vendor/socket.io.esm.min.js", socket_io_client, PUBLIC))
    table.append(static("/static", STATIC_DIR))
    return table
