"""Routes declared with their authorization policy, in one place per route.

Each REST module's ``routes()`` returns :class:`Route` values made by :func:`get` /
:func:`post` / :func:`static`; :class:`RouteTable` adds them to the app's router and keeps
what each needs, for the authorization middleware (:mod:`web.auth`) and the permission
tests. A route that is not declared here has no policy and is refused (deny by default).

A policy is :data:`PUBLIC` (anyone), :data:`LINK` (authorised inside the handler by a
participant's link token), :data:`STAFF` (any logged-in staff member, their own account)
or the name of the permission it needs (:mod:`identity.permissions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping, Optional

from aiohttp import web

PUBLIC = "public"
LINK = "link"
STAFF = "staff"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    policy: str
    handler: Optional[Handler] = None
    directory: Optional[Path] = None  # a static route serves this folder


def get(path: str, handler: Handler, policy: str) -> Route:
    return Route("GET", path, policy, handler)


def post(path: str, handler: Handler, policy: str) -> Route:
    return Route("POST", path, policy, handler)


def put(path: str, handler: Handler, policy: str) -> Route:
    return Route("PUT", path, policy, handler)


def static(prefix: str, directory: Path, policy: str = PUBLIC) -> Route:
    return Route("GET", prefix, policy, directory=directory)


def template_of(path: str) -> str:
    """A path as the policy names it: ``{key:.+}`` becomes ``{key}``."""
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


def resource_template(resource: web.AbstractResource) -> Optional[str]:
    """A resource's path template as the policy names it (``{key}`` without its regex)."""
    info: Mapping[str, Any] = resource.get_info()
    template = info.get("formatter") or info.get("path")
    if template is None and "prefix" in info:  # static files
        template = info["prefix"].rstrip("/") + "/{filename}"
    if template is None:
        return None
    return template_of(str(template))


class RouteTable:
    """The app's routes and their policies."""

    def __init__(self) -> None:
        self._policies: dict[tuple[str, str], str] = {}

    def add(self, app: web.Application, routes: Iterable[Route]) -> None:
        for route in routes:
            if route.directory is not None:
                app.router.add_static(route.path, route.directory, append_version=False)
                key = (route.method, route.path.rstrip("/") + "/{filename}")
            else:
                assert route.handler is not None
                app.router.add_route(route.method, route.path, route.handler)
                key = (route.method, template_of(route.path))
            if key in self._policies:
                raise ValueError(f"route {key[0]} {key[1]} is declared twice")
            self._policies[key] = route.policy

    def policy(self, method: str, template: str) -> Optional[str]:
        """What ``method template`` needs; HEAD follows GET; None if undeclared."""
        found = self._policies.get((method, template))
        if found is None and method == "HEAD":
            found = self._policies.get(("GET", template))
        return found

    @property
    def policies(self) -> Mapping[tuple[str, str], str]:
        return dict(self._policies)


ROUTE_TABLE = web.AppKey("route_table", RouteTable)
