"""Staff login (password + TOTP, 9.3.3), logout, and the admin's account management."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from errors import RateLimited, ValidationFailed
from identity.accounts import Account, Accounts
from identity.sessions import StaffSessions
from privacy.masking import mask_id_number, mask_phone
from storage.livestate import LiveState

from .auth import SESSION_COOKIE, Authenticator, caller
from .bodies import read_json_object
from .routes import PUBLIC, STAFF, Route, get, post

#: Logins per client address per minute (on top of the per-account lockout).
LOGIN_ATTEMPTS_PER_MINUTE = 20


async def _json(request: web.Request, allowed: set[str], required: set[str]) -> dict[str, Any]:
    body = await read_json_object(request, allowed, required)
    wrong = [{"field": k, "message": "must be a string"} for k in sorted(required) if not isinstance(body[k], (str, list))]
    if wrong:
        raise ValidationFailed("the request body is not valid; see errors", errors=wrong)
    return body


def _roles(body: dict[str, Any]) -> list[str]:
    roles = body.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ValidationFailed("roles must be a list of role names", errors=[{"field": "roles", "message": "must be a list of strings"}])
    return roles


def account_view(account: Account, full: bool = False) -> dict[str, Any]:
    return {
        "user_id": account.user_id,
        "real_name": account.real_name,
        "roles": sorted(account.roles),
        "enabled": account.enabled,
        "id_number": account.id_number if full else (mask_id_number(account.id_number) if account.id_number else None),
        "phone": account.phone if full else (mask_phone(account.phone) if account.phone else None),
        "locked_until": account.locked_until.isoformat() if account.locked_until else None,
        "must_change_password": account.must_change_password,
        "last_login_at": account.last_login_at.isoformat() if account.last_login_at else None,
    }


class StaffApi:
    def __init__(self, accounts: Accounts, sessions: StaffSessions, auth: Authenticator, live: LiveState) -> None:
        self.accounts = accounts
        self.sessions = sessions
        self.auth = auth
        self.live = live

    def routes(self) -> list[Route]:
        return [
            post("/api/v1/auth/login", self.login, PUBLIC),
            post("/api/v1/auth/logout", self.logout, STAFF),
            post("/api/v1/auth/logout-all", self.logout_all, STAFF),
            get("/api/v1/auth/me", self.me, STAFF),
            post("/api/v1/auth/password", self.change_password, STAFF),
            get("/api/v1/admin/accounts", self.list_accounts, "admin"),
            post("/api/v1/admin/accounts", self.create_account, "admin"),
            post("/api/v1/admin/accounts/{user_id}/disable", self.disable, "admin"),
            post("/api/v1/admin/accounts/{user_id}/enable", self.enable, "admin"),
            post("/api/v1/admin/accounts/{user_id}/unlock", self.unlock, "admin"),
            post("/api/v1/admin/accounts/{user_id}/reset-password", self.reset_password, "admin"),
            post("/api/v1/admin/accounts/{user_id}/roles", self.set_roles, "admin"),
        ]

    async def login(self, request: web.Request) -> web.Response:
        if await self.live.hit(f"login:{request.remote}", 60) > LOGIN_ATTEMPTS_PER_MINUTE:
            raise RateLimited("too many login attempts from this address; wait a minute")
        body = await _json(request, {"user_id", "password", "totp"}, {"user_id", "password", "totp"})
        account = await self.accounts.authenticate(str(body["user_id"]), str(body["password"]), str(body["totp"]))
        token = await self.sessions.open(account)
        response = web.json_response(
            {"user": account_view(account), "must_change_password": self.accounts.needs_password_change(account)}
        )
        self.auth.set_cookie(response, token)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        token = request.cookies.get(SESSION_COOKIE) or request.headers.get("Authorization", " ").split(" ", 1)[1]
        await self.sessions.close_session(token)
        response = web.json_response({"ok": True})
        self.auth.clear_cookie(response)
        return response

    async def logout_all(self, request: web.Request) -> web.Response:
        principal = caller(request)
        closed = await self.sessions.close_all(principal.id)
        await self.accounts.revoke_sessions(principal.id)
        response = web.json_response({"ok": True, "closed": closed})
        self.auth.clear_cookie(response)
        return response

    async def me(self, request: web.Request) -> web.Response:
        principal = caller(request)
        account = await self.accounts.get(principal.id)
        return web.json_response({"user": account_view(account), "permissions": sorted(principal.permissions)})

    async def change_password(self, request: web.Request) -> web.Response:
        principal = caller(request)
        body = await _json(request, {"old_password", "new_password"}, {"old_password", "new_password"})
        await self.accounts.change_password(principal.id, str(body["old_password"]), str(body["new_password"]))
        return web.json_response({"ok": True})

    # -- admin ------------------------------------------------------------------------

    async def list_accounts(self, request: web.Request) -> web.Response:
        full = caller(request).can_see_personal_data
        return web.json_response({"items": [account_view(a, full) for a in await self.accounts.list()]})

    async def create_account(self, request: web.Request) -> web.Response:
        body = await _json(
            request, {"user_id", "real_name", "roles", "password", "id_number", "phone"}, {"user_id", "real_name", "roles", "password"}
        )
        roles = _roles(body)
        account, totp_uri = await self.accounts.create(
            str(body["user_id"]), str(body["real_name"]), roles, str(body["password"]),
            id_number=body.get("id_number"), phone=body.get("phone"),
        )
        return web.json_response({"user": account_view(account), "totp_uri": totp_uri}, status=201)

    async def disable(self, request: web.Request) -> web.Response:
        account = await self.accounts.disable(request.match_info["user_id"])
        await self.sessions.close_all(account.user_id)
        return web.json_response(account_view(account))

    async def enable(self, request: web.Request) -> web.Response:
        return web.json_response(account_view(await self.accounts.enable(request.match_info["user_id"])))

    async def unlock(self, request: web.Request) -> web.Response:
        return web.json_response(account_view(await self.accounts.unlock(request.match_info["user_id"])))

    async def reset_password(self, request: web.Request) -> web.Response:
        body = await _json(request, {"password", "new_totp"}, {"password"})
        uri = await self.accounts.reset_password(request.match_info["user_id"], str(body["password"]), new_totp=bool(body.get("new_totp")))
        return web.json_response({"ok": True, "totp_uri": uri})

    async def set_roles(self, request: web.Request) -> web.Response:
        body = await _json(request, {"roles"}, {"roles"})
        return web.json_response(account_view(await self.accounts.set_roles(request.match_info["user_id"], _roles(body))))
