"""S3ObjectStore specifics against moto: bucket creation, object lock, outage detection."""

from __future__ import annotations

import time
import uuid

import pytest
from minio import Minio

from storage.objects import StorageUnavailable
from testkit.servers import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, free_port, s3_store


def _client(endpoint: str) -> Minio:
    return Minio(endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, secure=False, region=S3_REGION)


async def test_start_creates_the_bucket_once(s3_endpoint: str) -> None:
    bucket = f"takan-test-{uuid.uuid4().hex[:16]}"
    first = s3_store(s3_endpoint, bucket)
    await first.start()
    await first.put("a", b"1")
    assert _client(s3_endpoint).bucket_exists(bucket)
    # A second node finds the bucket and its objects.
    second = s3_store(s3_endpoint, bucket)
    await second.start()
    assert await second.get("a") == b"1"
    for store in (first, second):
        await store.close()


async def test_object_lock_puts_carry_governance_retention(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint, object_lock=True, retention_days=3)
    await store.start()
    assert store.retention_active
    info = await store.put("inspections/1/manifest.json", b"{}", "application/json")
    stat = _client(s3_endpoint).stat_object(store.bucket, info.key)
    assert stat.metadata is not None
    assert stat.metadata["x-amz-object-lock-mode"] == "GOVERNANCE"
    assert stat.metadata["x-amz-object-lock-retain-until-date"].startswith(
        time.strftime("%Y-%m-%d", time.gmtime(time.time() + 3 * 86400))
    )
    assert await store.head(info.key) == info
    await store.close()


async def test_object_lock_on_a_bucket_without_lock_is_reported_not_fatal(s3_endpoint: str) -> None:
    bucket = f"takan-test-{uuid.uuid4().hex[:16]}"
    _client(s3_endpoint).make_bucket(bucket)
    store = s3_store(s3_endpoint, bucket, object_lock=True)
    await store.start()
    assert not store.retention_active
    await store.put("a", b"1")
    await store.close()


async def test_unreachable_service_is_reported_fast() -> None:
    store = s3_store(f"127.0.0.1:{free_port()}", timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="unreachable"):
        await store.start()
    assert time.monotonic() - started < 3
    with pytest.raises(RuntimeError, match="start"):
        await store.get("a")
    await store.close()
    await store.close()
