"""API keys of the approval core: issued by an admin, stored hashed, revocable."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import asdict, dataclass
from typing import Optional

from storage.objects import ObjectNotFound, ObjectStore

from errors import Forbidden, NotFound, Unauthorized
from .inspections import now_utc, rfc3339

logger = logging.getLogger(__name__)

KEY_PREFIX = "records/apikeys/"
#: Permissions of the standard (9.4) that an API key may hold, plus admin.
PERMISSIONS = ("query", "entry", "review", "approve", "admin", "personal_data")
SEEDED_KEY_ID = "seeded"
#: How often a running server reads the keys again: a key issued or revoked by the CLI (or
#: by another node) counts everywhere within this long.
REFRESH_S = 5.0


@dataclass
class ApiKey:
    id: str
    name: str
    secret_sha256: str
    permissions: list[str]
    webhook_secret: str
    created_at: str
    revoked_at: Optional[str] = None

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"API key {self.id!r} lacks the {permission!r} permission")


@dataclass(frozen=True)
class IssuedKey:
    """What an admin sees once: the bearer token and the webhook secret."""

    key: ApiKey
    token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiKeys:
    """The keys, held in memory for authentication and read again every :data:`REFRESH_S`
    seconds while started (``start()``/``close()`` are idempotent)."""

    def __init__(self, store: ObjectStore, refresh_s: float = REFRESH_S) -> None:
        self._store = store
        self._keys: dict[str, ApiKey] = {}
        self._versions: dict[str, Optional[str]] = {}
        self._lock = asyncio.Lock()
        self.refresh_s = refresh_s
        self._refresher: Optional[asyncio.Task[None]] = None

    async def start(self) -> None:
        """Read every key; then keep reading what changes (a running server)."""
        await self.refresh()
        if self._refresher is None and self.refresh_s > 0:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_often(), name="api-keys-refresh")

    async def refresh(self) -> None:
        """Read the keys whose stored version changed (one listing, then a read per change)."""
        versions = await self._store.versions(KEY_PREFIX)
        async with self._lock:
            for name in set(self._versions) - set(versions):
                self._keys.pop(name[len(KEY_PREFIX):].removesuffix(".json"), None)
                del self._versions[name]
            for name, version in versions.items():
                if version is not None and self._versions.get(name) == version:
                    continue
                try:
                    key = ApiKey(**json.loads(await self._store.get(name)))
                except ObjectNotFound:
                    continue  # deleted since the listing
                self._keys[key.id] = key
                self._versions[name] = version

    async def _refresh_often(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception as exc:  # the store is down: the keys held stay in force
                logger.warning("API keys not read again (%s); retrying in %.0f s", exc, self.refresh_s)

    async def close(self) -> None:
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._keys.clear()
        self._versions.clear()

    def __len__(self) -> int:
        return sum(1 for k in self._keys.values() if k.revoked_at is None)

    async def issue(self, name: str, permissions: tuple[str, ...] = PERMISSIONS) -> IssuedKey:
        key_id = secrets.token_hex(6)
        token = f"tk_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(
            id=key_id,
            name=name,
            secret_sha256=_digest(token),
            permissions=list(permissions),
            webhook_secret=secrets.token_urlsafe(32),
            created_at=rfc3339(now_utc()) or "",
        )
        await self._save(key)
        logger.info("API key %s (%s) issued", key.id, name)
        return IssuedKey(key, token)

    async def seed(self, token: str, webhook_secret: Optional[str]) -> ApiKey:
        """Install the key given by TAKAN_API_KEY (replacing an earlier seed)."""
        previous = self._keys.get(SEEDED_KEY_ID)
        key = ApiKey(
            id=SEEDED_KEY_ID,
            name="seeded by TAKAN_API_KEY",
            secret_sha256=_digest(token),
            permissions=list(PERMISSIONS),
            webhook_secret=webhook_secret
            or (previous.webhook_secret if previous else secrets.token_urlsafe(32)),
            created_at=previous.created_at if previous else rfc3339(now_utc()) or "",
        )
        await self._save(key)
        return key

    async def revoke(self, key_id: str) -> None:
        key = self._keys.get(key_id)
        if key is None:
            raise NotFound(f"no API key {key_id!r}")
        key.revoked_at = rfc3339(now_utc())
        await self._save(key)

    def all(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    def get(self, key_id: str) -> Optional[ApiKey]:
        return self._keys.get(key_id)

    def authenticate(self, authorization: Optional[str]) -> ApiKey:
        """Resolve an ``Authorization: Bearer`` header to a live key (401 otherwise)."""
        if not authorization:
            raise Unauthorized("send Authorization: Bearer <api key>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <api key>'")
        if not token.isascii():  # issued keys are ASCII; anything else cannot match (nor be hashed as sent)
            raise Unauthorized("the API key is not known; ask an admin to issue one")
        digest = _digest(token.strip())
        for key in self._keys.values():
            if hmac.compare_digest(key.secret_sha256, digest):
                if key.revoked_at is not None:
                    raise Unauthorized(f"API key {key.id!r} was revoked at {key.revoked_at}")
                return key
        raise Unauthorized("the API key is not known; ask an admin to issue one")

    async def _save(self, key: ApiKey) -> None:
        async with self._lock:
            await self._store.put(f"{KEY_PREFIX}{key.id}.json", json.dumps(asdict(key)).encode(), "application/json")
            self._keys[key.id] = key
