"""Government unified login (clause 5.4) through OpenID Connect, behind a small seam.

:class:`IdentityProvider` is the seam the web layer talks to; :class:`OidcProvider` speaks
the OpenID Connect authorization code flow (with PKCE) to any provider that publishes
``/.well-known/openid-configuration``. A provider whose protocol is not OIDC gets its own
class with the same two methods. Takan's own login (:mod:`identity.accounts`) stays the
fallback, and is what staff use when the provider cannot be reached.

The flow, as the web layer wires it::

    request = LoginRequest.new()              # keep in a short-lived, HttpOnly cookie
    redirect(provider.authorization_url(request.state, request.nonce, request.code_challenge))
    # ... the provider redirects back with ?code=...&state=...
    if not request.matches_state(query_state): refuse   # CSRF: the web layer's job
    claims = await provider.exchange(code, request.nonce, request.code_verifier)
    account = await account_for(accounts, claims)   # by Account.oidc_subject

The ID token is checked here, not trusted: an RS256 signature by a key of the provider's
JWKS, ``iss``, ``aud`` (and ``azp``), ``exp``, ``iat``, ``nbf`` and ``nonce``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Optional, Protocol
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import jsonsafe
from errors import Forbidden, Unauthorized, Unavailable

from .accounts import Account, Accounts, now_utc

__all__ = [
    "Claims",
    "IdentityProvider",
    "LoginRequest",
    "OidcProvider",
    "account_for",
]

logger = logging.getLogger(__name__)

_MAX_RESPONSE_BYTES = 1 << 20
_MIN_RSA_BITS = 2048
_DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True)
class Claims:
    """The checked claims of an ID token. ``raw`` holds every claim as sent."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    expires_at: datetime.datetime
    issued_at: datetime.datetime
    name: Optional[str] = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """The per-login random values: ``state`` (CSRF), ``nonce`` (ID token replay) and the
    PKCE ``code_verifier``. Keep them server-side or in a short-lived HttpOnly cookie."""

    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)

    @classmethod
    def new(cls) -> LoginRequest:
        """Fresh random values (256 bits each)."""
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48))

    def matches_state(self, state: str) -> bool:
        """True if ``state`` from the provider's redirect is this login's (constant-time)."""
        return isinstance(state, str) and hmac.compare_digest(state.encode(), self.state.encode())

    @property
    def code_challenge(self) -> str:
        """The PKCE S256 challenge of ``code_verifier`` (RFC 7636)."""
        return _b64url(hashlib.sha256(self.code_verifier.encode("ascii")).digest())


class IdentityProvider(Protocol):
    """An external login: where to send the browser, and what its answer proves."""

    def authorization_url(self, state: str, nonce: str, code_challenge: Optional[str] = None) -> str:
        """The provider's login page URL for this login (raise Unavailable if not reachable)."""
        ...

    async def exchange(self, code: str, nonce: str, code_verifier: Optional[str] = None) -> Claims:
        """Trade the authorization ``code`` for checked claims; raise Unauthorized if invalid."""
        ...


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    raw = text.encode("ascii")
    return base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)


def _is_loopback(host: Optional[str]) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, what: str) -> str:
    """Require https (plain http only to a loopback address, for tests and local stand-ins)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return url
    raise ValueError(f"{what} {url!r} must be an https:// URL (http:// only on loopback)")


def _bad_token(reason: str) -> Unauthorized:
    return Unauthorized(
        f"the identity provider's ID token was refused ({reason}); start the login again, "
        "or use Takan's own login"
    )


class _InvalidDiscovery(ValueError):
    """The provider's discovery document or JWKS is not usable (a configuration problem)."""


class OidcProvider:
    """An OpenID Connect provider used with the authorization code flow and PKCE.

    ``start()`` fetches the discovery document and the JWKS. If the provider cannot be
    reached, ``start()`` still returns, logs a warning and keeps retrying every ``retry_s``
    in the background (:attr:`ready` tells); a discovery document that is wrong (another
    issuer, no RS256) raises ValueError. ``start()`` and ``close()`` are idempotent.
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        *,
        scopes: Sequence[str] = ("openid", "profile"),
        leeway_s: float = 60,
        timeout_s: float = 10,
        retry_s: float = 30,
        jwks_refresh_s: float = 10,
        clock: Callable[[], datetime.datetime] = now_utc,
    ) -> None:
        """``leeway_s`` is the clock skew allowed when checking ``exp``/``iat``/``nbf``;
        ``jwks_refresh_s`` the least time between two JWKS fetches for an unknown key id."""
        self.issuer = _check_url(issuer, "the OIDC issuer")
        if not client_id:
            raise ValueError("client_id is required; register Takan with the identity provider")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._scopes = tuple(dict.fromkeys(("openid", *scopes)))
        self._leeway = datetime.timedelta(seconds=leeway_s)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry_s = retry_s
        self._jwks_refresh_s = jwks_refresh_s
        self._clock = clock
        self._http: Optional[aiohttp.ClientSession] = None
        self._config: Optional[dict[str, Any]] = None
        self._keys: dict[Optional[str], rsa.RSAPublicKey] = {}
        self._jwks_fetched_at = float("-inf")
        self._retrier: Optional[asyncio.Task[None]] = None
        self._discovery_lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        """True once the discovery document and keys have been fetched."""
        return self._config is not None

    async def start(self) -> None:
        """Open the HTTP client and discover the provider (see the class docstring)."""
        if self._http is not None:
            return
        self._http = aiohttp.ClientSession(timeout=self._timeout)
        try:
            await self._discover()
        except Unavailable as exc:
            logger.warning("OIDC provider %s not reachable (%s); retrying every %s s", self.issuer, exc.detail, self._retry_s)
            self._retrier = asyncio.create_task(self._retry_discovery(), name="oidc-discovery")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop retrying and close the HTTP client; safe to call twice."""
        retrier, self._retrier = self._retrier, None
        if retrier is not None:
            retrier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retrier
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    # ---- the flow --------------------------------------------------------------------

    def authorization_url(self, state: str, nonce: str, code_challenge: Optional[str] = None) -> str:
        """The provider's login page for this login; raises Unavailable until :attr:`ready`."""
        config = self._require_config()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self._scopes),
            "state": state,
            "nonce": nonce,
        }
        if code_challenge is not None:
            params.update(code_challenge=code_challenge, code_challenge_method="S256")
        endpoint: str = config["authorization_endpoint"]
        separator = "&" if urlsplit(endpoint).query else "?"
        return f"{endpoint}{separator}{urlencode(params, quote_via=quote)}"

    async def exchange(self, code: str, nonce: str, code_verifier: Optional[str] = None) -> Claims:
        """Trade ``code`` at the token endpoint and return the ID token's checked claims.

        Raises Unauthorized if the provider refuses the code or the ID token fails a check,
        Unavailable if the provider cannot be reached.
        """
        if not code or not nonce:
            raise Unauthorized("the login answer has no code (or the login has no nonce); start the login again")
        if self._config is None:
            try:
                await self._discover()
            except _InvalidDiscovery as exc:
                raise Unavailable(f"the government login is misconfigured ({exc}); use Takan's own login") from exc
        config = self._require_config()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        headers = {"Accept": "application/json"}
        methods = config.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if "client_secret_basic" in methods:
            # RFC 6749 2.3.1: form-encode id and secret before joining them.
            pair = f"{quote(self.client_id, safe='')}:{quote(self._client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form.update(client_id=self.client_id, client_secret=self._client_secret)
        status, body = await self._request("POST", config["token_endpoint"], data=form, headers=headers)
        if status != 200 or not isinstance(body, dict):
            error = body.get("error", f"HTTP {status}") if isinstance(body, dict) else f"HTTP {status}"
            logger.warning("OIDC token endpoint refused a code: %s", str(error)[:100])
            raise Unauthorized(f"the identity provider refused the login ({str(error)[:100]}); start the login again")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise _bad_token("the token response has no id_token")
        claims = await self._verify_id_token(id_token, nonce)
        logger.info("OIDC login verified for a subject of %s", claims.issuer)
        return claims

    # ---- the ID token ----------------------------------------------------------------

    async def _verify_id_token(self, token: str, nonce: str) -> Claims:
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 16_384:
            raise _bad_token("not a compact JWS")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            payload = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, UnicodeError):
            raise _bad_token("not valid base64url JSON") from None
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise _bad_token("header or payload is not a JSON object")
        # Only RS256: 'none' and HS256 (keyed with a public key) are the classic forgeries.
        if header.get("alg") != "RS256":
            raise _bad_token(f"algorithm {str(header.get('alg'))[:20]!r} is not RS256")
        if "crit" in header:
            raise _bad_token("it has critical header extensions Takan does not understand")
        kid = header.get("kid")
        keys = self._candidate_keys(kid)
        if not keys and time.monotonic() - self._jwks_fetched_at >= self._jwks_refresh_s:
            await self._fetch_jwks()  # the provider may have rotated its keys
            keys = self._candidate_keys(kid)
        if not keys:
            raise _bad_token("it is signed with a key the provider does not publish")
        signed = f"{parts[0]}.{parts[1]}".encode("ascii")
        for key in keys:
            try:
                key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
                break
            except InvalidSignature:
                continue
        else:
            raise _bad_token("bad signature")
        return self._check_claims(payload, nonce)

    def _candidate_keys(self, kid: object) -> list[rsa.RSAPublicKey]:
        if isinstance(kid, str):
            key = self._keys.get(kid)
            return [key] if key is not None else []
        return list(self._keys.values())

    def _check_claims(self, payload: dict[str, Any], nonce: str) -> Claims:
        now = self._clock()
        if payload.get("iss") != self.issuer:
            raise _bad_token("wrong issuer")
        audience = payload.get("aud")
        audiences = (audience,) if isinstance(audience, str) else tuple(audience) if isinstance(audience, list) else ()
        if self.client_id not in audiences:
            raise _bad_token("it was issued for another client (aud)")
        azp = payload.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.client_id:
            raise _bad_token("it was issued for another client (azp)")
        expires_at = self._time_claim(payload, "exp", required=True)
        issued_at = self._time_claim(payload, "iat", required=True)
        not_before = self._time_claim(payload, "nbf", required=False)
        assert expires_at is not None and issued_at is not None
        if now >= expires_at + self._leeway:
            raise _bad_token("it has expired")
        if issued_at > now + self._leeway or (not_before is not None and not_before > now + self._leeway):
            raise _bad_token("it is not valid yet (check the server clock)")
        sent_nonce = payload.get("nonce")
        if not isinstance(sent_nonce, str) or not hmac.compare_digest(sent_nonce.encode(), nonce.encode()):
            raise _bad_token("nonce mismatch")
        subject = payload.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise _bad_token("no valid sub")
        name = payload.get("name")
        return Claims(
            issuer=self.issuer,
            subject=subject,
            audience=tuple(str(a) for a in audiences),
            expires_at=expires_at,
            issued_at=issued_at,
            name=name if isinstance(name, str) else None,
            raw=MappingProxyType(dict(payload)),
        )

    @staticmethod
    def _time_claim(payload: dict[str, Any], name: str, *, required: bool) -> Optional[datetime.datetime]:
        value = payload.get(name)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad_token(f"no numeric {name}")
        try:
            return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise _bad_token(f"{name} is out of range") from None

    # ---- discovery -------------------------------------------------------------------

    def _require_config(self) -> dict[str, Any]:
        if self._config is None:
            raise Unavailable(
                "the government login is not available yet (its provider has not answered); "
                "use Takan's own login or try again in a minute"
            )
        return self._config

    async def _discover(self) -> None:
        async with self._discovery_lock:
            if self._config is not None:
                return
            status, document = await self._request("GET", self.issuer.rstrip("/") + _DISCOVERY_PATH)
            if status != 200 or not isinstance(document, dict):
                raise Unavailable(f"the OIDC discovery document answered HTTP {status}")
            if document.get("issuer") != self.issuer:
                raise _InvalidDiscovery(
                    f"the provider says its issuer is {str(document.get('issuer'))[:200]!r}, not "
                    f"{self.issuer!r}; configure the issuer exactly as the provider states it"
                )
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(name), str):
                    raise _InvalidDiscovery(f"the OIDC discovery document has no {name}")
                _check_url(document[name], f"the provider's {name}")
            algorithms = document.get("id_token_signing_alg_values_supported") or ["RS256"]
            if "RS256" not in algorithms:
                raise _InvalidDiscovery(f"the provider does not sign ID tokens with RS256 (only {algorithms})")
            self._config = document
            try:
                await self._fetch_jwks()
            except BaseException:
                self._config = None
                raise
            logger.info("OIDC provider %s discovered (%d signing keys)", self.issuer, len(self._keys))

    async def _fetch_jwks(self) -> None:
        config = self._require_config()
        self._jwks_fetched_at = time.monotonic()
        status, jwks = await self._request("GET", config["jwks_uri"])
        if status != 200 or not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise Unavailable(f"the provider's JWKS answered HTTP {status} without a key list")
        keys: dict[Optional[str], rsa.RSAPublicKey] = {}
        for jwk in jwks["keys"]:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
                continue
            if jwk.get("alg", "RS256") != "RS256":
                continue
            try:
                numbers = rsa.RSAPublicNumbers(
                    e=int.from_bytes(_b64url_decode(jwk["e"]), "big"),
                    n=int.from_bytes(_b64url_decode(jwk["n"]), "big"),
                )
                key = numbers.public_key()
            except (KeyError, ValueError, TypeError):
                logger.warning("ignoring a malformed RSA key in %s", config["jwks_uri"])
                continue
            if key.key_size < _MIN_RSA_BITS:
                logger.warning("ignoring a %d-bit RSA key in %s (too short)", key.key_size, config["jwks_uri"])
                continue
            kid = jwk.get("kid")
            keys[kid if isinstance(kid, str) else None] = key
        if not keys:
            raise _InvalidDiscovery(f"the provider's JWKS at {config['jwks_uri']} has no usable RS256 key")
        self._keys = keys

    async def _retry_discovery(self) -> None:
        while self._config is None:
            await asyncio.sleep(self._retry_s)
            try:
                await self._discover()
            except Unavailable as exc:
                logger.warning("OIDC provider %s still not reachable (%s)", self.issuer, exc.detail)
            except _InvalidDiscovery as exc:
                logger.error("OIDC provider %s: %s", self.issuer, exc)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        data: Optional[dict[str, str]] = None,
        headers: Optional[dict[str, str]] = None,
    ) -> tuple[int, Any]:
        """Send one request; return (status, parsed JSON body or None). Never follows redirects."""
        if self._http is None:
            raise RuntimeError("call OidcProvider.start() before using it")
        try:
            async with self._http.request(method, url, data=data, headers=headers, allow_redirects=False) as response:
                # read to the end (content.read(n) returns only what is buffered), capped
                raw = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    raw += chunk
                    if len(raw) > _MAX_RESPONSE_BYTES:
                        break
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise Unavailable(
                f"the identity provider cannot be reached ({type(exc).__name__}); "
                "use Takan's own login or try again later"
            ) from exc
        if len(raw) > _MAX_RESPONSE_BYTES:
            raise Unavailable(f"the identity provider's answer from {url} is larger than 1 MiB")
        try:
            return status, jsonsafe.loads(bytes(raw), "the provider's answer") if raw else None
        except ValueError:
            return status, None


async def account_for(accounts: Accounts, claims: Claims) -> Account:
    """Return the enabled account bound to ``claims.subject`` (``Account.oidc_subject``).

    Raises Forbidden if no account is bound to that identity or the account is disabled:
    the person proved who they are but has no access to Takan.
    """
    account = await accounts.find_by_oidc_subject(claims.subject)
    if account is None:
        # The subject is an opaque identifier, not a secret: the admin needs it to bind.
        logger.warning("OIDC login of subject %r (issuer %s) bound to no account", claims.subject, claims.issuer)
        raise Forbidden(
            "your government login worked, but no Takan account is bound to it; ask an "
            "administrator to bind your government identity to your Takan account"
        )
    if not account.enabled:
        raise Forbidden(f"account {account.user_id!r} is disabled; ask an administrator to enable it")
    return account
