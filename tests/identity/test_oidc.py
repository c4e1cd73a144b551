"""OIDC login against a tiny OpenID provider on loopback (a real HTTP peer with its own keys).

The fake provider publishes a discovery document and a JWKS, and answers the token endpoint
with an ID token that each test scripts (claims, signing key, algorithm). It checks client
authentication, the redirect URI and PKCE like a real provider would.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from errors import Forbidden, Unauthorized, Unavailable
from identity.accounts import Accounts
from identity.oidc import LoginRequest, OidcProvider, account_for
from tests.identity.conftest import PASSWORD

CLIENT_ID = "takan-dezhou"
CLIENT_SECRET = "s3cret:with/odd&chars"
REDIRECT_URI = "https://takan.example/login/oidc/callback"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@functools.cache
def rsa_key(index: int) -> rsa.RSAPrivateKey:
    """The index-th test key; generated once per run (2048-bit generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64url(numbers.e.to_bytes(3, "big")),
    }


def sign(header: dict[str, Any], payload: dict[str, Any], key: Optional[rsa.RSAPrivateKey]) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if key is None:  # alg none
        return signing_input + "."
    if header["alg"] == "HS256":  # the key-confusion forgery: HMAC keyed with the public key
        secret = json.dumps(jwk(header.get("kid", ""), key)).encode()
        return signing_input + "." + b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


@dataclass
class Grant:
    """What the token endpoint answers for one code."""

    claims: dict[str, Any]
    key: Optional[rsa.RSAPrivateKey]
    kid: Optional[str] = "k1"
    alg: str = "RS256"
    code_challenge: Optional[str] = None
    #: Served as the ID token instead of signing ``claims`` (for hand-made forgeries).
    raw_token: Optional[str] = None


@dataclass
class FakeProvider:
    """An OpenID provider on 127.0.0.1: discovery, JWKS, token endpoint."""

    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa_key(0))
    published: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_fetches: int = 0
    issuer: str = ""
    claimed_issuer: Optional[str] = None
    runner: Optional[web.AppRunner] = None

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_post("/token", self.token)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.issuer = f"http://127.0.0.1:{bound}"
        self.published.setdefault("k1", self.key)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.claimed_issuer or self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [jwk(kid, key) for kid, key in self.published.items()]})

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        client_id, _, secret = base64.b64decode(credentials).decode().partition(":") if scheme == "Basic" else ("", "", "")
        if (unquote(client_id), unquote(secret)) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.grants.pop(str(form.get("code")), None)
        if grant is None or form.get("grant_type") != "authorization_code" or form.get("redirect_uri") != REDIRECT_URI:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if grant.code_challenge is not None:
            verifier = str(form.get("code_verifier", ""))
            if b64url(hashlib.sha256(verifier.encode()).digest()) != grant.code_challenge:
                return web.json_response({"error": "invalid_grant", "error_description": "PKCE"}, status=400)
        header: dict[str, Any] = {"alg": grant.alg, "typ": "JWT"}
        if grant.kid is not None:
            header["kid"] = grant.kid
        id_token = grant.raw_token or sign(header, grant.claims, grant.key)
        return web.json_response({"access_token": "at", "token_type": "Bearer", "id_token": id_token})

    def claims(self, nonce: str, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "gov-user-42",
            "aud": CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "nonce": nonce,
            "name": "李四",
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def grant(self, code: str, nonce: str, *, key: Optional[rsa.RSAPrivateKey] = None, **changes: Any) -> None:
        self.grants[code] = Grant(self.claims(nonce, **changes), key or self.key)


@pytest.fixture
async def idp() -> AsyncIterator[FakeProvider]:
    provider = FakeProvider()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture
async def oidc(idp: FakeProvider) -> AsyncIterator[OidcProvider]:
    provider = OidcProvider(idp.issuer, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, jwks_refresh_s=0)
    await provider.start()
    yield provider
    await provider.close()


async def test_happy_path(idp: FakeProvider, oidc: OidcProvider, accounts: Accounts) -> None:
    assert oidc.ready
    login = LoginRequest.new()
    url = urlsplit(oidc.authorization_url(login.state, login.nonce, login.code_challenge))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{idp.issuer}/authorize"
    assert {k: v[0] for k, v in parse_qs(url.query).items()} == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": login.state,
        "nonce": login.nonce,
        "code_challenge": login.code_challenge,
        "code_challenge_method": "S256",
    }

    idp.grant("code-1", login.nonce)
    idp.grants["code-1"].code_challenge = login.code_challenge
    claims = await oidc.exchange("code-1", login.nonce, login.code_verifier)
    assert claims.subject == "gov-user-42" and claims.issuer == idp.issuer
    assert claims.audience == (CLIENT_ID,) and claims.name == "李四"
    assert claims.raw["nonce"] == login.nonce
    assert idp.token_requests[-1]["code_verifier"] == login.code_verifier
    assert "client_secret" not in idp.token_requests[-1]  # sent as HTTP Basic, not in the form

    # Mapped to the account bound to that subject.
    with pytest.raises(Forbidden, match="no Takan account is bound"):
        await account_for(accounts, claims)
    await accounts.create("li.si", "李四", ["reviewer"], PASSWORD, oidc_subject="gov-user-42")
    assert (await account_for(accounts, claims)).user_id == "li.si"
    await accounts.disable("li.si")
    with pytest.raises(Forbidden, match="disabled"):
        await account_for(accounts, claims)


async def test_a_code_works_once(idp: FakeProvider, oidc: OidcProvider) -> None:
    login = LoginRequest.new()
    idp.grant("code-1", login.nonce)
    await oidc.exchange("code-1", login.nonce)
    with pytest.raises(Unauthorized, match="invalid_grant"):
        await oidc.exchange("code-1", login.nonce)


async def test_wrong_pkce_verifier_is_refused_by_the_provider(idp: FakeProvider, oidc: OidcProvider) -> None:
    login = LoginRequest.new()
    idp.grant("code-1", login.nonce)
    idp.grants["code-1"].code_challenge = login.code_challenge
    with pytest.raises(Unauthorized, match="refused the login"):
        await oidc.exchange("code-1", login.nonce, LoginRequest.new().code_verifier)


async def refused(oidc: OidcProvider, nonce: str, reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason) as caught:
        await oidc.exchange("code-1", nonce)
    assert "start the login again" in caught.value.detail


async def test_bad_signature(idp: FakeProvider, oidc: OidcProvider) -> None:
    idp.grant("code-1", "n", key=rsa_key(1))  # another key, claiming kid k1
    await refused(oidc, "n", "bad signature")


async def test_tampered_payload(idp: FakeProvider, oidc: OidcProvider) -> None:
    idp.grant("code-1", "n")
    grant = idp.grants["code-1"]
    header, _, signature = sign({"alg": "RS256", "kid": "k1"}, grant.claims, idp.key).split(".")
    forged_payload = b64url(json.dumps({**grant.claims, "sub": "gov-admin"}).encode())
    grant.raw_token = f"{header}.{forged_payload}.{signature}"
    await refused(oidc, "n", "bad signature")


@pytest.mark.parametrize("garbage", ["a.b", "a.b.c", "!!!.???.***", "e30.e30.", "W10.W10.AA"])
async def test_malformed_tokens(idp: FakeProvider, oidc: OidcProvider, garbage: str) -> None:
    idp.grant("code-1", "n")
    idp.grants["code-1"].raw_token = garbage
    await refused(oidc, "n", "ID token was refused")


async def test_wrong_audience(idp: FakeProvider, oidc: OidcProvider) -> None:
    idp.grant("code-1", "n", aud="another-app")
    await refused(oidc, "n", "another client")


async def test_several_audiences_need_azp(idp: FakeProvider, oidc: OidcProvider) -> None:
    idp.grant("code-1", "n", aud=[CLIENT_ID, "another-app"])
    await refused(oidc, "n", "azp")
    idp.grant("code-1", "n", aud=[CLIENT_ID, "another-app"], azp=CLIENT_ID)
    assert (await oidc.exchange("code-1", "n")).audience == (CLIENT_ID, "another-app")


async def test_expired(idp: FakeProvider, oidc: OidcProvider) -> None:
    now = int(time.time())
    idp.grant("code-1", "n", exp=now - 120, iat=now - 420)
    await refused(oidc, "n", "expired")


async def test_expiry_allows_a_little_clock_skew(idp: FakeProvider, oidc: OidcProvider) -> None:
    now = int(time.time())
    idp.grant("code-1", "n", exp=now - 10, iat=now - 310)
    await oidc.exchange("code-1", "n")


async def test_issued_in_the_future(idp: FakeProvider, oidc: OidcProvider) -> None:
    now = int(time.time())
    idp.grant("code-1", "n", iat=now + 600, exp=now + 900)
    await refused(oidc, "n", "not valid yet")


async def test_wrong_nonce(idp: FakeProvider, oidc: OidcProvider) -> None:
    idp.grant("code-1", "other-login")
    await refused(oidc, "n", "nonce")


async def test_missing_nonce(idp: FakeProvider, oidc: OidcProvider) -> None:
    idp.grant("code-1", "n")
    del idp.grants["code-1"].claims["nonce"]
    await refused(oidc, "n", "nonce")


async def test_wrong_issuer(idp: FakeProvider, oidc: OidcProvider) -> None:
    idp.grant("code-1", "n", iss="https://evil.example")
    await refused(oidc, "n", "wrong issuer")


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512"])
async def test_other_algorithms_are_refused(idp: FakeProvider, oidc: OidcProvider, alg: str) -> None:
    idp.grant("code-1", "n")
    idp.grants["code-1"].alg = alg
    if alg == "none":
        idp.grants["code-1"].key = None
    await refused(oidc, "n", "not RS256")


async def test_rotated_key_is_fetched(idp: FakeProvider, oidc: OidcProvider) -> None:
    fetches = idp.jwks_fetches
    rotated = rsa_key(2)
    idp.published = {"k2": rotated}
    idp.grant("code-1", "n", key=rotated)
    idp.grants["code-1"].kid = "k2"
    await oidc.exchange("code-1", "n")
    assert idp.jwks_fetches == fetches + 1
    # An unknown key id is still refused after the refetch.
    idp.grant("code-1", "n", key=rsa_key(3))
    idp.grants["code-1"].kid = "k9"
    await refused(oidc, "n", "does not publish")


async def test_unknown_client_is_refused(idp: FakeProvider) -> None:
    provider = OidcProvider(idp.issuer, CLIENT_ID, "wrong secret", REDIRECT_URI)
    await provider.start()
    idp.grant("code-1", "n")
    with pytest.raises(Unauthorized, match="invalid_client"):
        await provider.exchange("code-1", "n")
    await provider.close()


async def test_issuer_mismatch_in_discovery_is_a_configuration_error(idp: FakeProvider) -> None:
    idp.claimed_issuer = "https://login.example.gov.cn"
    provider = OidcProvider(idp.issuer, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    with pytest.raises(ValueError, match="configure the issuer exactly"):
        await provider.start()
    await provider.close()


def test_plain_http_only_on_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        OidcProvider("http://login.example.gov.cn", CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    OidcProvider("https://login.example.gov.cn", CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    OidcProvider("http://127.0.0.1:8000", CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_provider_is_retried_in_the_background() -> None:
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}", CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, retry_s=0.05)
    await provider.start()  # does not raise: Takan's own login keeps working
    assert not provider.ready
    with pytest.raises(Unavailable, match="own login"):
        provider.authorization_url("s", "n")
    with pytest.raises(Unavailable, match="cannot be reached"):
        await provider.exchange("code-1", "n")

    idp = FakeProvider()
    await idp.start(port)
    try:
        for _ in range(100):
            if provider.ready:
                break
            await asyncio.sleep(0.05)
        assert provider.ready
        idp.grant("code-1", "n")
        assert (await provider.exchange("code-1", "n")).subject == "gov-user-42"
    finally:
        await provider.close()
        await provider.close()  # idempotent
        await idp.stop()


async def test_login_request_values_are_random_and_pkce_s256() -> None:
    first, second = LoginRequest.new(), LoginRequest.new()
    assert len({first.state, first.nonce, first.code_verifier, second.state}) == 4
    expected = b64url(hashlib.sha256(first.code_verifier.encode()).digest())
    assert first.code_challenge == expected
    assert first.state not in repr(first)
    assert first.matches_state(first.state) and not first.matches_state(second.state)


async def test_claims_times(idp: FakeProvider, oidc: OidcProvider) -> None:
    idp.grant("code-1", "n", exp=2_000_000_000, iat=int(time.time()))
    claims = await oidc.exchange("code-1", "n")
    assert claims.expires_at == datetime.datetime.fromtimestamp(2_000_000_000, datetime.timezone.utc)
