"""The permission matrix: every route and every Socket.IO event against every role.

Generated from the router and the handler classes, so a new route or event that is not in
the policy tables fails here.
"""

from __future__ import annotations

import inspect

import aiohttp
import pytest

from identity.permissions import ROLE_PERMISSIONS
from signaling.namespace import EVENT_ROLES, SessionNamespace
from testkit.server import create_inspection, running_server
from testkit.sockets import Participant
from web.auth import api_key_permissions
from web.routes import LINK, PUBLIC, ROUTE_TABLE, STAFF, resource_template

STRONG = "Correct-Horse-42-Battery!"
API_PERMISSIONS = ("query", "entry", "review", "approve", "admin")


def router_routes(app) -> list[tuple[str, str]]:
    routes = []
    for resource in app.router.resources():
        template = resource_template(resource)
        if template is None or template.startswith("/socket.io"):
            continue
        for route in resource:
            if route.method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                routes.append((route.method, template))
    return sorted(set(routes), key=lambda r: (r[1].endswith("logout-all"), r[1].endswith("logout"), r))


def test_every_route_has_a_policy(tmp_path) -> None:
    from takan.app import build_app
    from takan.config import load_config

    app = build_app(load_config({"data_dir": str(tmp_path)}, env={}))
    # routes are declared with their policy (web.routes); this catches one added to the
    # router some other way
    policies = app[ROUTE_TABLE].policies
    missing = [r for r in router_routes(app) if r not in policies]
    assert not missing, f"routes without an authorization policy: {missing}"


def test_every_event_handler_has_a_role_policy() -> None:
    handlers = {
        name[3:]
        for cls in (SessionNamespace,)
        for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if name.startswith("on_") and list(inspect.signature(member).parameters)[1:3] == ["sid", "payload"]
    }
    assert handlers == set(EVENT_ROLES), f"events without a policy: {handlers - set(EVENT_ROLES)}; stale: {set(EVENT_ROLES) - handlers}"


def fill(template: str, inspection_id: str) -> str:
    return (
        template.replace("{id}", inspection_id if template.startswith("/api/v1/inspections/") else "nope")
        .replace("{key}", "events.jsonl")
        .replace("{user_id}", "nobody")
        .replace("{kind}", "dishonest")
        .replace("{filename}", "css/takan.css")
        .replace("{year}", "2026")
    )


async def test_route_matrix(tmp_path) -> None:
    async with running_server(tmp_path / "d", api_rate_per_minute="100000") as server, aiohttp.ClientSession() as http:
        services = server.services
        created = await create_inspection(server, http)
        principals: dict[str, tuple[dict[str, str], set[str] | None]] = {"anonymous": ({}, None)}
        for permission in API_PERMISSIONS:
            issued = await services.keys.issue(f"only-{permission}", (permission,))
            principals[f"api:{permission}"] = ({"Authorization": f"Bearer {issued.token}"}, api_key_permissions([permission]) | {"api"})
        for role in ROLE_PERMISSIONS:
            account, _ = await services.accounts.create(f"user.{role}", f"测试{role}", [role], STRONG, must_change_password=False)
            principals[f"staff:{role}"] = ({"__staff__": account.user_id}, set(ROLE_PERMISSIONS[role]) | {"staff"})

        app = server.runner.app
        failures = []
        for method, template in router_routes(app):
            policy = app[ROUTE_TABLE].policies[(method, template)]
            for name, (headers, held) in principals.items():
                headers = dict(headers)
                if "__staff__" in headers:
                    account = await services.accounts.get(headers.pop("__staff__"))
                    headers["Authorization"] = f"Session {await services.staff_sessions.open(account)}"
                kwargs = {"json": {}} if method in ("POST", "PUT") else {}
                async with http.request(method, server.base_url + fill(template, created["id"]), headers=headers, **kwargs) as r:
                    status = r.status
                if policy == PUBLIC:
                    allowed = True
                elif policy == LINK:
                    allowed = False  # no link token sent
                elif policy == STAFF:
                    allowed = held is not None and "staff" in held
                else:
                    allowed = held is not None and policy in held
                denied = status in (401, 403)
                if allowed == denied:
                    failures.append(f"{method} {template} as {name}: {status} (policy {policy})")
        assert not failures, "\n".join(failures)


@pytest.mark.parametrize("role", ["inspector", "applicant", "observer"])
async def test_event_matrix(tmp_path, role) -> None:
    async with running_server(tmp_path / "d") as server, aiohttp.ClientSession() as http:
        created = await create_inspection(server, http)
        participant = Participant(server.base_url, created[f"{role}_url"])
        try:
            assert await participant.connect()
            for event, roles in EVENT_ROLES.items():
                if event in ("join", "end"):
                    continue
                ack = await participant.call(event, {})
                forbidden = ack.get("ok") is False and ack["error"]["code"] == "forbidden"
                assert forbidden == (role not in roles), (role, event, ack)
            ack = await participant.call("end", {})
            assert (ack.get("error", {}).get("code") == "forbidden") == (role != "inspector"), ack
        finally:
            await participant.close()
