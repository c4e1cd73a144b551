"""Takan storage: the object store (system of record) and live room state.

Embedded defaults need no service: :class:`LocalObjectStore` and :class:`MemoryLiveState`.
The engines for scale-out live in their own modules so that importing this package does not
require them to be reachable: ``storage.s3.S3ObjectStore`` (MinIO/S3) and
``storage.redis_state.RedisLiveState`` (Redis). Wrap the object store in
:class:`SpoolingStore` so that writes survive an outage of the backend.

This package imports nothing from other Takan packages.
"""

from .keys import InvalidKey, validate_key, validate_prefix
from .livestate import LiveState, MemoryLiveState
from .local import LocalObjectStore
from .objects import ObjectInfo, ObjectNotFound, ObjectStore, StorageError, StorageUnavailable
from .spool import SpoolingStore

__all__ = [
    "InvalidKey",
    "LiveState",
    "LocalObjectStore",
    "MemoryLiveState",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "SpoolingStore",
    "StorageError",
    "StorageUnavailable",
    "validate_key",
    "validate_prefix",
]
