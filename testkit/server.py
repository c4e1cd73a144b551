"""A real Takan server in the test's event loop, on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any, AsyncIterator, Optional

import aiohttp
from aiohttp import web

from takan import app as app_module
from takan.app import build_app
from takan.config import load_config
from web.server import GuardedAppRunner

API_KEY = "test-api-key-0123456789abcdef"
WEBHOOK_SECRET = "test-webhook-secret"


class RunningServer:
    def __init__(self, runner: web.AppRunner, base_url: str) -> None:
        self.runner = runner
        self.base_url = base_url

    @property
    def services(self) -> "ServiceView":
        return ServiceView(self.runner.app)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}", **extra}


class ServiceView:
    """``services.book`` for ``app[takan.app.BOOK]``: the tests' short way to a service."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        key = getattr(app_module, name.upper(), None)
        if not isinstance(key, web.AppKey):
            raise AttributeError(f"takan.app has no service key {name.upper()}")
        return self._app[key]


async def wait_healthy(http: aiohttp.ClientSession, base_url: str, timeout_s: float = 20.0) -> None:
    """Until ``GET /healthz`` answers 200 (a server started in another process)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with http.get(base_url + "/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"the server at {base_url} was not healthy after {timeout_s:g} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_server(
    data_dir: Path, port: Optional[int] = None, runner_options: Optional[dict[str, Any]] = None, **settings: Any
) -> AsyncIterator[RunningServer]:
    """Serve Takan with ``settings`` (flag names) until the block exits."""
    port = port or free_port()
    flags: dict[str, Any] = {
        "data_dir": str(data_dir),
        "host": "127.0.0.1",
        "port": str(port),
        "api_key": API_KEY,
        "webhook_secret": WEBHOOK_SECRET,
        "log_level": "INFO",
        # the suite predates staff logins for inspector links; tests of them pass "required"
        "inspector_login": "link",
    }
    flags.update({k: None if v is None else str(v) for k, v in settings.items()})
    app = build_app(load_config(flags, env={}))
    runner = GuardedAppRunner(app, **(runner_options or {}))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield RunningServer(runner, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def inspection_body(case_no: str = "DZ-2026-000123", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "case_no": case_no,
        "item_code": "food-business-license",
        "item_name": "食品经营许可",
        "applicant": {
            "name": "德州某某餐饮有限公司",
            "kind": "legal_person",
            "id_type": "USCC",
            "id_number": "91350100M000100Y43",
            "contact_name": "张三",
            "contact_phone": "13800000000",
        },
        "site": {"address": "德州市德城区某路1号", "lat": 37.4355, "lon": 116.3594, "radius_m": 300},
        "checkpoints": [{"code": "storefront", "title": "门头招牌", "required": True}],
        "callback_url": "http://127.0.0.1:9/hooks/takan",  # nothing listens: deliveries stay local
        "scheduled_at": "2026-11-27T09:30:00+08:00",
    }
    body.update(overrides)
    return body


async def create_inspection(server: RunningServer, session: aiohttp.ClientSession, **overrides: Any) -> dict[str, Any]:
    async with session.post(
        server.base_url + "/api/v1/inspections", json=inspection_body(**overrides), headers=server.headers()
    ) as response:
        body = await response.json(content_type=None)
        assert response.status == 201, body
        return body


async def logged_events(server: RunningServer, inspection_id: str) -> list[dict[str, Any]]:
    """The inspection's event log as the server holds it (the store gets chunks a moment later)."""
    journal = server.runner.app[app_module.JOURNAL]
    return list(await journal.events(inspection_id))
