"""Staff web sessions: what a login cookie stands for, and when it stops working.

A session ends after ``idle_timeout_s`` without activity (default 15 min, GB/T 22239
"login timeout"), ``absolute_timeout_s`` after login whatever happens (default 8 h, one
working day), when its account is disabled, or when the account's ``sessions_revoked_at``
("log out everywhere", a password change) is at or after the session's creation. An account
may hold at most ``max_sessions_per_user`` sessions (GB/T 22239 limits concurrent sessions
per account); opening one more closes the least recently used.

Where sessions live: in the object store when one is given (the production choice), as
``records/sessions/<user_id>/<sha256 of token>.json``, so that every Takan node behind the
load balancer sees the same sessions and a restart logs nobody out. Without a store they live
in this process's memory: for a single node and for tests; a restart then logs everyone out.

The token is ``<user_id>.<secret>``: 256 random bits (43 url-safe characters) after the user
id. Only the token's SHA-256 is stored, so reading the store does not give a usable token.
The user id in the token (not a secret) lets the store keep an account's sessions together,
so "log out everywhere" and the per-account limit need no scan of every session.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any, Optional

from errors import Forbidden, Unauthorized
from storage.objects import ObjectInfo, ObjectNotFound, ObjectStore

from .accounts import USER_ID_PATTERN, Account, Accounts, now_utc
from .permissions import Principal

__all__ = ["EXPIRED", "SESSION_PREFIX", "Session", "StaffSessions"]

logger = logging.getLogger(__name__)

SESSION_PREFIX = "records/sessions/"
#: The one answer to a token that does not (or no longer) open a session.
EXPIRED = "session expired, log in again"
SCHEMA = 1
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}\Z")


@dataclass(frozen=True, slots=True)
class Session:
    """A live staff session as of the moment it was resolved.

    ``roles`` are the account's roles now (a role change takes effect at the next request);
    ``password_change_required`` says the web layer must send the user to the change form.
    """

    user_id: str
    token_sha256: str
    created_at: datetime.datetime
    last_seen_at: datetime.datetime
    expires_at: datetime.datetime
    method: str
    roles: frozenset[str] = frozenset()
    password_change_required: bool = False

    @property
    def principal(self) -> Principal:
        """The principal this session's requests act as."""
        return Principal.staff(self.user_id, self.roles)


class _MemoryStore:
    """The few ObjectStore operations sessions need, in a dict (sessions without a store)."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._objects.clear()

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        self._objects[key] = data
        return ObjectInfo.of(key, data)

    async def get(self, key: str) -> bytes:
        try:
            return self._objects[key]
        except KeyError:
            raise ObjectNotFound(key) from None

    async def head(self, key: str) -> Optional[ObjectInfo]:
        data = self._objects.get(key)
        return None if data is None else ObjectInfo.of(key, data)

    async def list(self, prefix: str) -> builtins.list[str]:
        return sorted(k for k in self._objects if k.startswith(prefix))

    async def versions(self, prefix: str) -> dict[str, Optional[str]]:
        return {k: ObjectInfo.of(k, v).sha256 for k, v in self._objects.items() if k.startswith(prefix)}

    async def delete(self, key: str) -> None:
        self._objects.pop(key, None)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _aware(moment: Optional[datetime.datetime]) -> datetime.datetime:
    if moment is None:
        return now_utc()
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime (tzinfo=UTC), not a naive one")
    return moment


@dataclass(frozen=True, slots=True)
class _Record:
    key: str
    user_id: str
    token_sha256: str
    created_at: datetime.datetime
    last_seen_at: datetime.datetime
    method: str

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "schema": SCHEMA,
                "user_id": self.user_id,
                "token_sha256": self.token_sha256,
                "created_at": _iso(self.created_at),
                "last_seen_at": _iso(self.last_seen_at),
                "method": self.method,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def parse(cls, key: str, raw: bytes) -> _Record:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            key=key,
            user_id=data["user_id"],
            token_sha256=data["token_sha256"],
            created_at=datetime.datetime.fromisoformat(data["created_at"]),
            last_seen_at=datetime.datetime.fromisoformat(data["last_seen_at"]),
            method=data.get("method", "password"),
        )


class StaffSessions:
    """Open, check and end staff sessions; see the module docstring for the rules.

    ``start()`` must be awaited before use (it starts the sweeper that deletes expired
    sessions from the store every ``sweep_interval_s``; None disables it); ``start()`` and
    ``close()`` are idempotent. Methods take an optional aware ``now`` for tests.
    """

    def __init__(
        self,
        accounts: Accounts,
        store: Optional[ObjectStore] = None,
        *,
        idle_timeout_s: float = 900,
        absolute_timeout_s: float = 8 * 3600,
        max_sessions_per_user: int = 3,
        touch_interval_s: float = 30,
        sweep_interval_s: Optional[float] = 600,
    ) -> None:
        """``touch_interval_s``: activity is written at most this often per session (each
        write is a PUT to the store); an idle timeout is therefore exact to within it."""
        if idle_timeout_s <= 0 or absolute_timeout_s <= 0:
            raise ValueError("idle_timeout_s and absolute_timeout_s must be positive")
        if max_sessions_per_user < 1:
            raise ValueError(f"max_sessions_per_user must be >= 1, got {max_sessions_per_user}")
        self._accounts = accounts
        self._store: ObjectStore = store if store is not None else _MemoryStore()
        self._in_memory = store is None
        self._idle = datetime.timedelta(seconds=idle_timeout_s)
        self._absolute = datetime.timedelta(seconds=absolute_timeout_s)
        self._max_per_user = max_sessions_per_user
        self._touch_interval = datetime.timedelta(seconds=touch_interval_s)
        self._sweep_interval_s = sweep_interval_s
        self._sweeper: Optional[asyncio.Task[None]] = None
        self._lock = asyncio.Lock()
        self._started = False

    @property
    def in_memory(self) -> bool:
        """True if sessions live in this process only (a restart logs everyone out)."""
        return self._in_memory

    async def start(self) -> None:
        """Start the sweeper of expired sessions."""
        if self._started:
            return
        if self._sweep_interval_s is not None:
            self._sweeper = asyncio.create_task(self._sweep_forever(self._sweep_interval_s), name="session-sweeper")
        self._started = True

    async def close(self) -> None:
        """Stop the sweeper and wait for it; safe to call twice.

        Sessions in the store stay valid; sessions in memory are forgotten (logged out).
        """
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        if self._in_memory:
            await self._store.close()
        self._started = False

    # ---- the session life cycle ------------------------------------------------------

    async def open(self, account: Account, now: Optional[datetime.datetime] = None, *, method: str = "password") -> str:
        """Open a session for ``account`` (just authenticated) and return its token.

        ``method`` records how the user logged in ("password", "oidc"). If the account
        already has ``max_sessions_per_user`` live sessions, the least recently used ones are
        closed. The token is shown to the browser once (as an HttpOnly, Secure cookie) and
        never logged.
        """
        self._require_started()
        moment = _aware(now)
        if not account.enabled:
            raise Forbidden(f"account {account.user_id!r} is disabled; ask an administrator to enable it")
        token = f"{account.user_id}.{secrets.token_urlsafe(32)}"
        digest = hashlib.sha256(token.encode()).hexdigest()
        record = _Record(
            key=f"{SESSION_PREFIX}{account.user_id}/{digest}.json",
            user_id=account.user_id,
            token_sha256=digest,
            created_at=moment,
            last_seen_at=moment,
            method=method,
        )
        async with self._lock:
            live: builtins.list[_Record] = []
            for existing in await self._records_of(account.user_id):
                if self._expiry_reason(existing, moment) is None:
                    live.append(existing)
                else:
                    await self._store.delete(existing.key)
            live.sort(key=lambda r: r.last_seen_at)
            while len(live) >= self._max_per_user:
                oldest = live.pop(0)
                await self._store.delete(oldest.key)
                logger.info("account %s: closed its least recently used session (limit %d)", account.user_id, self._max_per_user)
            await self._store.put(record.key, record.to_bytes(), "application/json")
        logger.info("account %s: session opened (%s)", account.user_id, method)
        return token

    async def resolve(self, token: str, now: Optional[datetime.datetime] = None) -> Session:
        """Return the live session ``token`` opens; raise Unauthorized (:data:`EXPIRED`) if none.

        Does not count as activity: call :meth:`touch` for requests the user made.
        """
        self._require_started()
        moment = _aware(now)
        record = await self._load(token)
        reason = self._expiry_reason(record, moment)
        account = await self._accounts.find(record.user_id)
        if reason is None:
            reason = self._account_reason(account, record)
        if reason is not None or account is None:
            await self._store.delete(record.key)
            logger.info("account %s: session ended (%s)", record.user_id, reason)
            raise Unauthorized(EXPIRED)
        return Session(
            user_id=record.user_id,
            token_sha256=record.token_sha256,
            created_at=record.created_at,
            last_seen_at=record.last_seen_at,
            expires_at=min(record.last_seen_at + self._idle, record.created_at + self._absolute),
            method=record.method,
            roles=account.roles,
            password_change_required=self._accounts.needs_password_change(account, moment),
        )

    async def touch(self, token: str, now: Optional[datetime.datetime] = None) -> Session:
        """Resolve ``token`` and record activity at ``now`` (restarting the idle timeout)."""
        moment = _aware(now)
        session = await self.resolve(token, moment)
        if moment - session.last_seen_at < self._touch_interval:
            return session
        record = _Record(
            key=f"{SESSION_PREFIX}{session.user_id}/{session.token_sha256}.json",
            user_id=session.user_id,
            token_sha256=session.token_sha256,
            created_at=session.created_at,
            last_seen_at=moment,
            method=session.method,
        )
        async with self._lock:
            # Do not resurrect a session closed while we were resolving it.
            if await self._store.head(record.key) is None:
                raise Unauthorized(EXPIRED)
            await self._store.put(record.key, record.to_bytes(), "application/json")
        return Session(
            user_id=session.user_id,
            token_sha256=session.token_sha256,
            created_at=session.created_at,
            last_seen_at=moment,
            expires_at=min(moment + self._idle, session.created_at + self._absolute),
            method=session.method,
            roles=session.roles,
            password_change_required=session.password_change_required,
        )

    async def close_session(self, token: str) -> None:
        """Log out: end the session ``token`` opens. An unknown or malformed token is ignored."""
        parsed = _parse_token(token)
        if parsed is None:
            return
        user_id, digest = parsed
        await self._store.delete(f"{SESSION_PREFIX}{user_id}/{digest}.json")
        logger.info("account %s: session closed (logout)", user_id)

    async def close_all(self, user_id: str, now: Optional[datetime.datetime] = None) -> int:
        """Log ``user_id`` out everywhere; return how many stored sessions were deleted.

        Marks the account (``sessions_revoked_at``), which voids its sessions on every node
        even if a deletion is missed, then deletes them.
        """
        self._require_started()
        await self._accounts.revoke_sessions(user_id, _aware(now))
        async with self._lock:
            keys = await self._store.list(f"{SESSION_PREFIX}{user_id}/")
            for key in keys:
                await self._store.delete(key)
        logger.info("account %s: logged out everywhere (%d sessions)", user_id, len(keys))
        return len(keys)

    async def sessions_of(self, user_id: str, now: Optional[datetime.datetime] = None) -> builtins.list[Session]:
        """The live sessions of ``user_id``, most recently used first (for a "your sessions" page)."""
        moment = _aware(now)
        account = await self._accounts.find(user_id)
        live = [
            r
            for r in await self._records_of(user_id)
            if self._expiry_reason(r, moment) is None and self._account_reason(account, r) is None
        ]
        live.sort(key=lambda r: r.last_seen_at, reverse=True)
        return [
            Session(
                user_id=r.user_id,
                token_sha256=r.token_sha256,
                created_at=r.created_at,
                last_seen_at=r.last_seen_at,
                expires_at=min(r.last_seen_at + self._idle, r.created_at + self._absolute),
                method=r.method,
                roles=account.roles if account else frozenset(),
            )
            for r in live
        ]

    async def sweep(self, now: Optional[datetime.datetime] = None) -> int:
        """Delete the stored sessions that timed out; return how many. Runs periodically."""
        moment = _aware(now)
        removed = 0
        for key in await self._store.list(SESSION_PREFIX):
            try:
                record = _Record.parse(key, await self._store.get(key))
            except ObjectNotFound:
                continue
            except (ValueError, KeyError):
                logger.warning("deleting unreadable session record %s", key)
                record = None
            if record is None or self._expiry_reason(record, moment) is not None:
                await self._store.delete(key)
                removed += 1
        if removed:
            logger.info("swept %d expired sessions", removed)
        return removed

    # ---- internals -------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("call StaffSessions.start() before using it")

    def _expiry_reason(self, record: _Record, now: datetime.datetime) -> Optional[str]:
        if now - record.last_seen_at >= self._idle:
            return "idle timeout"
        if now - record.created_at >= self._absolute:
            return "absolute timeout"
        return None

    @staticmethod
    def _account_reason(account: Optional[Account], record: _Record) -> Optional[str]:
        if account is None:
            return "account gone"
        if not account.enabled:
            return "account disabled"
        if account.sessions_revoked_at is not None and account.sessions_revoked_at >= record.created_at:
            return "sessions revoked"
        return None

    async def _load(self, token: str) -> _Record:
        parsed = _parse_token(token)
        if parsed is None:
            raise Unauthorized(EXPIRED)
        user_id, digest = parsed
        key = f"{SESSION_PREFIX}{user_id}/{digest}.json"
        try:
            record = _Record.parse(key, await self._store.get(key))
        except ObjectNotFound:
            raise Unauthorized(EXPIRED) from None
        if not secrets.compare_digest(record.token_sha256, digest) or record.user_id != user_id:
            raise Unauthorized(EXPIRED)
        return record

    async def _records_of(self, user_id: str) -> builtins.list[_Record]:
        records: builtins.list[_Record] = []
        for key in await self._store.list(f"{SESSION_PREFIX}{user_id}/"):
            try:
                records.append(_Record.parse(key, await self._store.get(key)))
            except ObjectNotFound:
                continue
        return records

    async def _sweep_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep()
            except Exception:  # keep sweeping: a store outage must not end the task
                logger.exception("sweeping expired sessions failed; will retry in %s s", interval_s)


def _parse_token(token: str) -> Optional[tuple[str, str]]:
    """Split a token into (user id, SHA-256 of the whole token), or None if malformed."""
    if not isinstance(token, str) or len(token) > 100:
        return None
    user_id, dot, secret = token.rpartition(".")
    if not dot or not USER_ID_PATTERN.match(user_id) or not _SECRET.match(secret):
        return None
    return user_id, hashlib.sha256(token.encode()).hexdigest()
