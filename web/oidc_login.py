"""Staff login through the government platform's identity provider (5.4), when configured.

GET /api/v1/auth/oidc/start?next=/audit  -> redirect to the provider (state, nonce, PKCE)
GET /api/v1/auth/oidc/callback?code&state -> session cookie, redirect to ``next``
The provider's subject must be bound to a Takan account (``Account.oidc_subject``): an
admin decides who may log in; the provider only proves who they are.
"""

from __future__ import annotations

import time
from typing import Optional

from aiohttp import web

from errors import BadRequest, NotFound, Unavailable
from identity.accounts import Accounts
from identity.oidc import IdentityProvider, LoginRequest, account_for
from identity.sessions import StaffSessions

from .auth import Authenticator
from .routes import PUBLIC, Route, get

PENDING_TTL_S = 600
MAX_PENDING = 10_000


def _safe_next(value: Optional[str]) -> str:
    """Only same-site paths: never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/audit"
    return value


class OidcLogin:
    def __init__(self, provider: Optional[IdentityProvider], accounts: Accounts, sessions: StaffSessions, auth: Authenticator) -> None:
        self.provider = provider
        self.accounts = accounts
        self.sessions = sessions
        self.auth = auth
        self._pending: dict[str, tuple[LoginRequest, str, float]] = {}

    def routes(self) -> list[Route]:
        return [get("/api/v1/auth/oidc/start", self.start, PUBLIC), get("/api/v1/auth/oidc/callback", self.callback, PUBLIC)]

    def _require(self) -> IdentityProvider:
        if self.provider is None:
            raise NotFound("no identity provider is configured here; log in with your Takan account")
        return self.provider

    async def start(self, request: web.Request) -> web.Response:
        provider = self._require()
        now = time.monotonic()
        self._pending = {s: p for s, p in self._pending.items() if p[2] > now}
        if len(self._pending) >= MAX_PENDING:
            raise Unavailable("too many logins in progress; try again in a minute")
        login = LoginRequest.new()
        self._pending[login.state] = (login, _safe_next(request.query.get("next")), now + PENDING_TTL_S)
        raise web.HTTPFound(provider.authorization_url(login.state, login.nonce, login.code_challenge))

    async def callback(self, request: web.Request) -> web.Response:
        provider = self._require()
        state, code = request.query.get("state", ""), request.query.get("code", "")
        pending = self._pending.pop(state, None)
        if pending is None or pending[2] < time.monotonic() or not code:
            raise BadRequest("this login link is unknown or expired; start the login again")
        login, next_path, _ = pending
        claims = await provider.exchange(code, login.nonce, login.code_verifier)
        account = await account_for(self.accounts, claims)
        token = await self.sessions.open(account, method="oidc")
        response = web.HTTPFound(next_path)
        self.auth.set_cookie(response, token)
        raise response
