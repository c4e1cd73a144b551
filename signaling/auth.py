"""Who is calling, and may they: one middleware enforces the route policy for every request.

A request acts as a :class:`~identity.permissions.Principal`:
* an approval-core API key (``Authorization: Bearer tk_...``), holding its permissions;
* a logged-in staff member (the ``takan_session`` cookie, or ``Authorization: Session
  <token>``), holding their roles' permissions;
* nobody (pages, health, public keys, and routes authorised by a link token).

:data:`ROUTE_POLICY` names what each route needs. A route without an entry is refused
(deny by default), and ``tests/signaling/test_permissions.py`` walks the router so that a
new route cannot be left out.
"""

from __future__ import annotations

import logging
import re
from typing import Awaitable, Callable, Optional

from aiohttp import web

from approval.apikeys import ApiKeys
from approval.errors import Forbidden, Unauthorized
from identity.permissions import Principal
from identity.sessions import Session, StaffSessions

logger = logging.getLogger(__name__)

SESSION_COOKIE = "takan_session"
PASSWORD_CHANGE_PATHS = ("/api/v1/auth/password", "/api/v1/auth/me", "/api/v1/auth/logout", "/api/v1/auth/logout-all")
PUBLIC = "public"  # anyone
LINK = "link"  # authorised inside the handler by a participant's link token
STAFF = "staff"  # any logged-in staff member (their own account)

#: (method, route template) -> PUBLIC, LINK, STAFF or the permission it needs.
ROUTE_POLICY: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/console"): PUBLIC,
    ("GET", "/observe"): PUBLIC,
    ("GET", "/join"): PUBLIC,
    ("GET", "/audit"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("GET", "/admin"): PUBLIC,
    ("GET", "/vendor/socket.io.esm.min.js"): PUBLIC,
    ("GET", "/static/{filename}"): PUBLIC,
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/api/v1/keys"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("GET", "/api/v1/auth/oidc/start"): PUBLIC,
    ("GET", "/api/v1/auth/oidc/callback"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): STAFF,
    ("POST", "/api/v1/auth/logout-all"): STAFF,
    ("GET", "/api/v1/auth/me"): STAFF,
    ("POST", "/api/v1/auth/password"): STAFF,
    ("POST", "/api/v1/session/photos"): LINK,
    ("POST", "/api/v1/session/rating"): LINK,
    ("POST", "/api/v1/inspections"): "entry",
    ("GET", "/api/v1/inspections"): "query",
    ("GET", "/api/v1/inspections/{id}"): "query",
    ("POST", "/api/v1/inspections/{id}/cancel"): "entry",
    ("POST", "/api/v1/inspections/{id}/review"): "review",
    ("GET", "/api/v1/inspections/{id}/manifest"): "query",
    ("GET", "/api/v1/inspections/{id}/manifest.sig"): "query",
    ("GET", "/api/v1/inspections/{id}/manifest.sm2.sig"): "query",
    ("GET", "/api/v1/inspections/{id}/manifest.tsr"): "query",
    ("GET", "/api/v1/inspections/{id}/objects/{key}"): "query",
    ("GET", "/api/v1/inspections/{id}/verification"): "query",
    ("GET", "/api/v1/webhooks"): "admin",
    ("GET", "/api/v1/webhooks/{id}"): "admin",
    ("POST", "/api/v1/webhooks/{id}/resend"): "admin",
    ("GET", "/api/v1/admin/accounts"): "admin",
    ("POST", "/api/v1/admin/accounts"): "admin",
    ("POST", "/api/v1/admin/accounts/{user_id}/disable"): "admin",
    ("POST", "/api/v1/admin/accounts/{user_id}/enable"): "admin",
    ("POST", "/api/v1/admin/accounts/{user_id}/unlock"): "admin",
    ("POST", "/api/v1/admin/accounts/{user_id}/reset-password"): "admin",
    ("POST", "/api/v1/admin/accounts/{user_id}/roles"): "admin",
    ("GET", "/api/v1/audit/access-log"): "audit_read",
    ("GET", "/api/v1/ledger"): "query_all",
    ("GET", "/api/v1/publicity"): PUBLIC,
    ("POST", "/api/v1/inspections/{id}/publicity"): "approve",
    ("POST", "/api/v1/publicity/{id}/publish"): "approve",
    ("POST", "/api/v1/publicity/{id}/withdraw"): "approve",
    ("GET", "/api/v1/evaluation/report"): "query_all",
    ("GET", "/api/v1/warning-lists"): "admin",
    ("POST", "/api/v1/warning-lists/{kind}"): "admin",
}



PRINCIPAL = web.RequestKey("principal", Optional[Principal])  # type: ignore[arg-type]


def caller(request: web.Request) -> Principal:
    """The principal the middleware authenticated (401 if the route let anonymous through)."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        raise Unauthorized("log in (staff) or send Authorization: Bearer <api key>")
    return principal


def actor_of(principal: Principal) -> str:
    """How the evidence and access logs name the caller."""
    return f"{'api' if principal.kind == 'api_key' else principal.kind}:{principal.id}"


def resource_template(resource: web.AbstractResource) -> Optional[str]:
    """A resource's path template as the policy names it (``{key}`` without its regex)."""
    info = resource.get_info()
    template = info.get("formatter") or info.get("path")
    if template is None and "prefix" in info:  # static files
        template = info["prefix"].rstrip("/") + "/{filename}"
    if template is None:
        return None
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", template)


def route_template(request: web.Request) -> Optional[str]:
    resource = request.match_info.route.resource
    return None if resource is None else resource_template(resource)


class Authenticator:
    def __init__(self, keys: ApiKeys, sessions: StaffSessions, secure_cookies: bool) -> None:
        self.keys = keys
        self.sessions = sessions
        self.secure_cookies = secure_cookies

    async def principal(self, request: web.Request) -> Optional[Principal]:
        """The caller, or None if the request carries no credentials (bad ones raise 401)."""
        header = request.headers.get("Authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "session":
                return self._checked(request, await self.sessions.touch(value.strip()))
            key = self.keys.authenticate(header)
            return Principal.api_key(key.id, api_key_permissions(key.permissions))
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            if request.method not in ("GET", "HEAD") and not _same_origin(request):
                raise Forbidden("cross-site request refused: send it from Takan's own pages")
            return self._checked(request, await self.sessions.touch(token))
        return None

    @staticmethod
    def _checked(request: web.Request, session: "Session") -> Principal:
        """A password that must be changed (new account, reset, 90 days old) allows nothing else."""
        if session.password_change_required and request.path not in PASSWORD_CHANGE_PATHS:
            raise Forbidden("change your password first (POST /api/v1/auth/password); nothing else is allowed until then")
        return session.principal

    def set_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE, token, httponly=True, secure=self.secure_cookies, samesite="Strict", path="/"
        )

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/")


def api_key_permissions(granted: list[str]) -> set[str]:
    """An API key's permissions: its grants; query keys see every inspection they may query."""
    permissions = set(granted)
    if "query" in permissions:
        permissions.add("query_all")
    return permissions


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
    return origin.rstrip("/") == f"{request.scheme}://{request.host}"


def authorization_middleware(auth: Authenticator) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path.startswith("/socket.io/"):
            return await handler(request)  # Socket.IO authorises by link token on connect
        template = route_template(request)
        if template is None or request.match_info.http_exception is not None:
            return await handler(request)  # 404/405: let the router answer
        policy = ROUTE_POLICY.get((request.method, template))
        if policy is None and request.method == "HEAD":
            policy = ROUTE_POLICY.get(("GET", template))
        if policy is None:
            logger.error("route %s %s has no authorization policy; refused", request.method, template)
            raise Forbidden("this route has no authorization policy")
        if policy in (PUBLIC, LINK):
            principal = None
            if request.headers.get("Authorization") or request.cookies.get(SESSION_COOKIE):
                try:
                    principal = await auth.principal(request)
                except (Unauthorized, Forbidden):
                    principal = None
            request[PRINCIPAL] = principal
            return await handler(request)
        principal = await auth.principal(request)
        if principal is None:
            raise Unauthorized("log in (staff) or send Authorization: Bearer <api key>")
        if policy == STAFF:
            if principal.kind != "staff":
                raise Forbidden("this needs a staff login (an API key has no account)")
        else:
            principal.require(policy)
        request[PRINCIPAL] = principal
        return await handler(request)

    return middleware
