"""MinIO or any S3-compatible service as the object store, through the ``minio`` client."""

from __future__ import annotations

import asyncio
import base64
import builtins
import io
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import GOVERNANCE
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.helpers import MIN_PART_SIZE
from minio.retention import Retention

from .keys import validate_key, validate_prefix
from .objects import ObjectInfo, ObjectNotFound, StorageError, StorageUnavailable

__all__ = ["S3ObjectStore"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject"})
# S3 error codes that mean "the service is there but cannot serve now".
_UNAVAILABLE_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "XMinioServerNotInitialized"}
)
_SHA256_META = "x-amz-meta-sha256"


def _etag(etag: str | None) -> str | None:
    """An ETag as a version tag: a PUT's answer quotes it, a listing may not."""
    return (etag.strip('"') or None) if etag else None


class S3ObjectStore:
    """Objects in one bucket of a MinIO/S3 service at ``endpoint`` (``host:port``).

    ``start()`` creates the bucket if it is missing (with object lock when ``object_lock``
    is set). When ``object_lock`` is set and the bucket has object lock enabled, every put
    carries a GOVERNANCE retention of ``retention_days`` and an ``x-amz-checksum-sha256``
    (S3 requires a checksum on locked uploads); otherwise puts are plain.

    Each object's SHA-256 is stored as user metadata (``x-amz-meta-sha256``) so that
    ``head()`` need not download it. Blocking client calls run in a worker thread.

    Errors: an unreachable service (connection refused or reset, timeout, HTTP 5xx) raises
    :class:`storage.objects.StorageUnavailable` within about ``2 * timeout_s``; other refusals
    (credentials, policy) raise :class:`storage.objects.StorageError`.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        object_lock: bool = False,
        *,
        retention_days: int = 365,
        timeout_s: float = 5.0,
    ) -> None:
        if retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, got {retention_days!r}")
        self._endpoint = endpoint
        self._access_key = access_key
        self._secret_key = secret_key
        self._bucket = bucket
        self._secure = secure
        self._region = region
        self._object_lock = object_lock
        self._retention_days = retention_days
        self._timeout_s = timeout_s
        self._http: urllib3.PoolManager | None = None
        self._client: Minio | None = None
        self._ready = False
        self._lock_active = False
        self._start_lock = asyncio.Lock()

    @property
    def bucket(self) -> str:
        """The bucket holding the objects."""
        return self._bucket

    @property
    def retention_active(self) -> bool:
        """True when puts carry an object-lock retention (known after start())."""
        return self._lock_active

    async def start(self) -> None:
        """Connect and create the bucket if missing; raise StorageUnavailable if unreachable.

        A failed start() may be retried: the store stays unusable until one succeeds.
        """
        async with self._start_lock:
            if self._ready:
                return
            if self._client is None:
                # Short timeouts and a single retry: an outage must be noticed in seconds so
                # the caller can spool, not after minio's default five minutes and five tries.
                self._http = urllib3.PoolManager(
                    timeout=urllib3.Timeout(connect=self._timeout_s, read=self._timeout_s),
                    maxsize=10,
                    retries=urllib3.Retry(
                        total=1,
                        backoff_factor=0.2,
                        status_forcelist=[500, 502, 503, 504],
                    ),
                )
                self._client = Minio(
                    self._endpoint,
                    access_key=self._access_key,
                    secret_key=self._secret_key,
                    secure=self._secure,
                    region=self._region,
                    http_client=self._http,
                )
            self._lock_active = await self._call(self._ensure_bucket, self._client)
            self._ready = True
        logger.info(
            "S3 object store ready: %s/%s (retention %s)",
            self._endpoint,
            self._bucket,
            f"GOVERNANCE {self._retention_days} days" if self._lock_active else "off",
        )

    async def close(self) -> None:
        """Drop pooled connections; safe to call twice."""
        self._ready = False
        self._client = None
        if self._http is not None:
            self._http.clear()
            self._http = None

    def _ensure_bucket(self, client: Minio) -> bool:
        if not client.bucket_exists(self._bucket):
            try:
                client.make_bucket(self._bucket, self._region, object_lock=self._object_lock)
                logger.info("created bucket %s (object lock %s)", self._bucket, self._object_lock)
            except S3Error as exc:
                # Another node may have created it between our check and our request.
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        if not self._object_lock:
            return False
        try:
            client.get_object_lock_config(self._bucket)
        except S3Error as exc:
            if exc.code != "ObjectLockConfigurationNotFoundError":
                raise
            logger.warning(
                "object lock requested but bucket %s has none; objects are not retained",
                self._bucket,
            )
            return False
        return True

    def _require_client(self) -> Minio:
        if self._client is None or not self._ready:
            raise RuntimeError("S3ObjectStore is not started: await store.start() first")
        return self._client

    async def _call(self, func: Callable[..., _T], *args: object) -> _T:
        """Run a blocking client call in a thread, translating errors by consequence."""
        try:
            return await asyncio.to_thread(func, *args)
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
            raise StorageUnavailable(
                f"object store {self._endpoint} unreachable: {exc}"
            ) from exc
        except ServerError as exc:
            raise self._http_error(exc.status_code, exc) from exc
        except InvalidResponseError as exc:
            # A proxy's HTML 502/503 page arrives here rather than as an S3 error.
            raise self._http_error(getattr(exc, "_code", 0), exc) from exc
        except S3Error as exc:
            if exc.code in _UNAVAILABLE_CODES:
                raise StorageUnavailable(
                    f"object store {self._endpoint} unavailable: {exc.code}: {exc.message}"
                ) from exc
            raise self._http_error(exc.response.status, exc) from exc
        except MinioException as exc:
            raise StorageError(f"object store {self._endpoint} failed: {exc}") from exc

    def _http_error(self, status: int, exc: Exception) -> StorageError:
        if status >= 500:
            return StorageUnavailable(f"object store {self._endpoint} unavailable: {exc}")
        return StorageError(f"object store {self._endpoint} refused: {exc}")

    async def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Upload ``data`` under ``key`` in a single request."""
        validate_key(key)
        info = await self._call(self._put_blocking, key, data, content_type)
        logger.debug("stored %s/%s (%s bytes)", self._bucket, key, info.size)
        return info

    def _put_blocking(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        client = self._require_client()
        info = ObjectInfo.of(key, data)  # hashed here, off the event loop
        headers: dict[str, str | builtins.list[str] | tuple[str]] = {
            _SHA256_META: info.sha256
        }
        retention = None
        if self._lock_active:
            retention = Retention(
                GOVERNANCE, datetime.now(timezone.utc) + timedelta(days=self._retention_days)
            )
            digest = base64.b64encode(bytes.fromhex(info.sha256)).decode("ascii")
            headers["x-amz-checksum-sha256"] = digest
            headers["x-amz-sdk-checksum-algorithm"] = "SHA256"
        result = client.put_object(
            self._bucket,
            info.key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata=headers,
            retention=retention,
            # One part as large as the object: the data is already in memory, and a
            # single PUT keeps the checksum header valid (multipart would need per-part ones).
            part_size=max(MIN_PART_SIZE, len(data)),
        )
        return ObjectInfo(info.key, info.size, info.sha256, _etag(result.etag))

    async def get(self, key: str) -> bytes:
        """Download the object stored under ``key``."""
        validate_key(key)
        return await self._call(self._get_blocking, key)

    def _get_blocking(self, key: str) -> bytes:
        client = self._require_client()
        try:
            response = client.get_object(self._bucket, key)
        except S3Error as exc:
            if exc.code in _NOT_FOUND_CODES:
                raise ObjectNotFound(key) from None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    async def head(self, key: str) -> ObjectInfo | None:
        """Return the object's size and SHA-256 from its metadata, or None."""
        validate_key(key)
        return await self._call(self._head_blocking, key)

    def _head_blocking(self, key: str) -> ObjectInfo | None:
        client = self._require_client()
        try:
            stat = client.stat_object(self._bucket, key)
        except S3Error as exc:
            if exc.code in _NOT_FOUND_CODES:
                return None
            raise
        sha256 = stat.metadata.get(_SHA256_META) if stat.metadata else None
        if not sha256:
            # Written by another tool: hash the content once to answer.
            try:
                data = self._get_blocking(key)
            except ObjectNotFound:
                return None
            return ObjectInfo.of(key, data)
        return ObjectInfo(key=key, size=stat.size or 0, sha256=str(sha256))

    async def list(self, prefix: str) -> builtins.list[str]:
        """Return the sorted keys in the bucket starting with ``prefix``."""
        validate_prefix(prefix)
        return await self._call(self._list_blocking, prefix)

    def _list_blocking(self, prefix: str) -> builtins.list[str]:
        client = self._require_client()
        objects = client.list_objects(self._bucket, prefix=prefix or None, recursive=True)
        return sorted(obj.object_name for obj in objects if obj.object_name)

    async def versions(self, prefix: str) -> dict[str, str | None]:
        """The keys in the bucket starting with ``prefix``, each with its ETag, from the listing."""
        validate_prefix(prefix)
        return await self._call(self._versions_blocking, prefix)

    def _versions_blocking(self, prefix: str) -> dict[str, str | None]:
        client = self._require_client()
        objects = client.list_objects(self._bucket, prefix=prefix or None, recursive=True)
        return {obj.object_name: _etag(obj.etag) for obj in objects if obj.object_name}

    async def delete(self, key: str) -> None:
        """Remove the object (on a locked bucket this adds a delete marker)."""
        validate_key(key)
        await self._call(self._delete_blocking, key)
        logger.debug("deleted %s/%s", self._bucket, key)

    def _delete_blocking(self, key: str) -> None:
        self._require_client().remove_object(self._bucket, key)
