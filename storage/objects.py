"""The object store seam: what evidence, manifests and ledgers are written to.

Backends: :class:`storage.local.LocalObjectStore` (embedded default),
:class:`storage.s3.S3ObjectStore` (MinIO/S3), and :class:`storage.spool.SpoolingStore`, which
wraps either and keeps accepting writes through an outage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional, Protocol

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StorageError",
    "StorageUnavailable",
]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a store knows about one stored object: its key, size in bytes and SHA-256 (hex),
    and, from ``put``, the version tag :meth:`ObjectStore.versions` will list for it (None
    where the store cannot say yet: a spooled write)."""

    key: str
    size: int
    sha256: str
    version: Optional[str] = field(default=None, compare=False)

    @classmethod
    def of(cls, key: str, data: bytes) -> ObjectInfo:
        """Describe ``data`` stored under ``key``."""
        return cls(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())


class ObjectNotFound(KeyError):
    """No object is stored under the key (``exc.key``)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        # KeyError's own __str__ shows only repr(key); say what happened instead.
        return f"no object stored under key {self.key!r}"


class StorageError(Exception):
    """The backend refused an operation for a reason other than being unreachable.

    Usually a configuration problem (credentials, bucket policy); retrying will not help.
    """


class StorageUnavailable(StorageError):
    """The backend cannot be reached now (connection refused, timeout, HTTP 5xx).

    Retrying later may succeed; :class:`storage.spool.SpoolingStore` spools writes on it.
    """


class ObjectStore(Protocol):
    """A flat namespace of immutable-by-convention blobs addressed by validated keys.

    Keys follow :func:`storage.keys.validate_key`; an invalid key raises
    :class:`storage.keys.InvalidKey` before the backend is touched. ``start()`` must be
    awaited before use; ``start()`` and ``close()`` are idempotent.
    """

    async def start(self) -> None:
        """Prepare the backend (create the directory or bucket)."""
        ...

    async def close(self) -> None:
        """Release resources; safe to call twice, and after a failed start()."""
        ...

    async def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` (replacing any previous object), durably."""
        ...

    async def get(self, key: str) -> bytes:
        """Return the object's bytes; raise :class:`ObjectNotFound` if there is none."""
        ...

    async def head(self, key: str) -> ObjectInfo | None:
        """Return the object's :class:`ObjectInfo`, or None if there is none."""
        ...

    async def list(self, prefix: str) -> list[str]:
        """Return the keys starting with ``prefix`` (plain string prefix), sorted."""
        ...

    async def versions(self, prefix: str) -> dict[str, Optional[str]]:
        """The keys starting with ``prefix``, each with a version tag that changes whenever
        the object is replaced (S3: its ETag; a local file: inode, mtime and size), in one
        listing and no reads. None for a key whose stored version is not known yet (a write
        still spooled): a caller must treat it as changed."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...
