"""Idempotency-Key handling for POSTs of the approval core."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Any, AsyncContextManager, AsyncIterator, Optional

from evidence.canonical import canonical_json
from storage.objects import ObjectNotFound, ObjectStore

from errors import ValidationFailed

PREFIX = "records/idempotency/"
MAX_KEY_LENGTH = 255


class KeyedLocks:
    """One holder at a time per key, for requests that carry an idempotency key (an API
    key's Idempotency-Key here, a photo's upload_id in session/service.py): a retry racing
    the original waits for its answer instead of doing the work twice. A key's lock exists
    only while it has a holder or a waiter."""

    def __init__(self) -> None:
        # key -> (lock, holders and waiters); an entry leaves with its last user
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def exclusive(self, slot: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(slot, (asyncio.Lock(), 0))
        self._locks[slot] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[slot]
            if users == 1:
                del self._locks[slot]
            else:
                self._locks[slot] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class IdempotencyKeys:
    """Remembers (API key, Idempotency-Key) -> (body digest, response).

    The digest is of the body's RFC 8785 canonical form (``canonical_sha256``), so the same
    JSON re-indented or with its members in another order is the same request. Records
    stored before carry only ``body_sha256``, the digest of the raw bytes: they are still
    compared that way, and every new record carries both, for a node not yet upgraded."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._locks = KeyedLocks()

    def exclusive(self, api_key_id: str, key: str) -> AsyncContextManager[None]:
        """One request at a time per (API key, Idempotency-Key), so a retry racing the
        original waits for its answer instead of creating a second inspection."""
        return self._locks.exclusive((api_key_id, key))

    @property
    def locks_held(self) -> int:
        """Keys with a request in progress (the memory test checks this drains)."""
        return len(self._locks)

    @staticmethod
    def _object_key(api_key_id: str, key: str) -> str:
        owner = api_key_id.replace(":", "-")
        return f"{PREFIX}{owner}/{hashlib.sha256(key.encode()).hexdigest()}.json"

    @staticmethod
    def check_key(key: str) -> str:
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ValidationFailed(
                f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
                errors=[{"field": "Idempotency-Key", "message": "invalid header value"}],
            )
        return key

    async def recall(self, api_key_id: str, key: str, body: Any, raw: bytes) -> Optional[dict[str, Any]]:
        """The stored response for this key, if the body (parsed ``body``, sent as ``raw``)
        is the same JSON; 422 if it differs."""
        try:
            saved = json.loads(await self._store.get(self._object_key(api_key_id, key)))
        except ObjectNotFound:
            return None
        if "canonical_sha256" in saved:
            same = saved["canonical_sha256"] == _canonical_sha256(body)
        else:
            same = saved["body_sha256"] == hashlib.sha256(raw).hexdigest()
        if not same:
            raise ValidationFailed(
                "this Idempotency-Key was used with a different request body; use a new key",
                errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}],
            )
        return dict(saved["response"])

    async def remember(self, api_key_id: str, key: str, body: Any, raw: bytes, response: dict[str, Any]) -> None:
        record = {
            "canonical_sha256": _canonical_sha256(body),
            "body_sha256": hashlib.sha256(raw).hexdigest(),
            "response": response,
        }
        await self._store.put(self._object_key(api_key_id, key), json.dumps(record).encode(), "application/json")


def _canonical_sha256(body: Any) -> str:
    try:
        return hashlib.sha256(canonical_json(body)).hexdigest()
    except (ValueError, OverflowError):
        # NaN, Infinity, or a number past a double's range: no JSON number carries it
        raise ValidationFailed(
            "the body holds a number outside the range of a JSON number (about ±1.8e308); send it in range",
            errors=[{"field": "$", "message": "a number is out of range"}],
        ) from None
