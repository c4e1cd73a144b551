"""Fetches RFC 3161 timestamps for seals and live log heads, never blocking either.

Every seal submits the new manifest's SHA-256; a live inspection's log head is submitted
every ``head_interval_s``. One task (owned here: ``start()``/``close()``) asks the TSAs
(:class:`~evidence.tsa.TsaClient`) and on failure retries with backoff (5 s doubling to
5 min) for as long as it takes; what is still pending survives a restart as a marker
object ``system/timestamps-pending/<id>``. A token over the current manifest is stored as
``manifest.tsr`` (served at ``GET .../manifest.tsr``; until then that answers 404
``pending``); the next seal keeps it as ``timestamps/manifest-<sha256[:16]>.tsr`` and lists
it, so each token is itself covered by the following seal. Head tokens are stored as
``timestamps/head-<seq>.tsr`` and listed by the next seal.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Callable, Optional

from storage.objects import ObjectNotFound, ObjectStore

from .manifest import MANIFEST, TIMESTAMP, prefix_of
from .tsa import TsaClient, TsaUnavailable

__all__ = ["Timestamper", "TIMESTAMPS"]

logger = logging.getLogger(__name__)

TIMESTAMPS = "timestamps/"
PENDING = "system/timestamps-pending/"


class Timestamper:
    def __init__(
        self,
        store: ObjectStore,
        client: Optional[TsaClient],
        *,
        retry_s: float = 5.0,
        max_retry_s: float = 300.0,
        head_interval_s: float = 180.0,
    ) -> None:
        self.store = store
        self.client = client
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.head_interval_s = head_interval_s
        self.heads: Optional[Callable[[], list[tuple[str, int, str]]]] = None  #: live (id, seq, head) to stamp
        self._manifests: dict[str, str] = {}  # inspection id -> manifest sha256 hex, waiting for a token
        self._stamped_heads: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: Optional[asyncio.Task[None]] = None
        self.last_error: Optional[str] = None

    @property
    def enabled(self) -> bool:
        return self.client is not None and bool(self.client.urls)

    @property
    def pending(self) -> dict[str, str]:
        return dict(self._manifests)

    async def start(self) -> None:
        """Resume what was pending before a restart, and start the task (idempotent)."""
        if not self.enabled or self._task is not None:
            return
        for key in await self.store.list(PENDING):
            inspection_id = key[len(PENDING):]
            try:
                body = await self.store.get(prefix_of(inspection_id) + MANIFEST)
            except ObjectNotFound:
                await self.store.delete(key)
                continue
            self._manifests[inspection_id] = hashlib.sha256(body).hexdigest()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="timestamper")

    async def close(self) -> None:
        """Stop the task; pending work resumes at the next start. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def expect(self, inspection_id: str) -> None:
        """A seal of ``inspection_id`` is about to write its manifest: leave the marker first,
        so that a process killed before :meth:`submit` still stamps the manifest it left
        (:meth:`start` reads the current manifest of every marker)."""
        if not self.enabled:
            return
        try:
            await self.store.put(PENDING + inspection_id, b"", "text/plain")
        except Exception as exc:  # submit() tries again
            logger.warning("inspection %s: could not note the coming timestamp: %s", inspection_id, exc)

    async def submit(self, inspection_id: str, manifest_sha256: str) -> None:
        """Timestamp this manifest (replacing any older pending one of the inspection)."""
        if not self.enabled:
            return
        self._manifests[inspection_id] = manifest_sha256
        try:
            await self.store.put(PENDING + inspection_id, manifest_sha256.encode(), "text/plain")
        except Exception as exc:  # the marker only matters across a restart
            logger.warning("inspection %s: could not note the pending timestamp: %s", inspection_id, exc)
        self._wake.set()

    async def _run(self) -> None:
        delay = self.retry_s
        last_heads = asyncio.get_running_loop().time()
        while True:
            now = asyncio.get_running_loop().time()
            if self.heads is not None and now - last_heads >= self.head_interval_s:
                last_heads = now
                await self._stamp_heads()
            failed = await self._stamp_manifests()
            wait = delay if failed else self.head_interval_s
            delay = min(delay * 2, self.max_retry_s) if failed else self.retry_s
            self._wake.clear()
            try:
                async with asyncio.timeout(min(wait, self.head_interval_s)):  # not wait_for: see session/background.py
                    await self._wake.wait()
            except asyncio.TimeoutError:
                pass

    async def _stamp_manifests(self) -> bool:
        assert self.client is not None
        failed = False
        for inspection_id, sha in list(self._manifests.items()):
            try:
                token = await self.client.stamp(bytes.fromhex(sha))
            except TsaUnavailable as exc:
                self.last_error = str(exc)
                logger.warning("inspection %s: no timestamp yet (will retry): %s", inspection_id, exc)
                failed = True
                continue
            try:
                current = hashlib.sha256(await self.store.get(prefix_of(inspection_id) + MANIFEST)).hexdigest()
                if current == sha:
                    await self.store.put(prefix_of(inspection_id) + TIMESTAMP, token, "application/timestamp-reply")
                    logger.info("inspection %s: manifest %s timestamped", inspection_id, sha[:12])
                if self._manifests.get(inspection_id) == sha:
                    del self._manifests[inspection_id]
                    await self.store.delete(PENDING + inspection_id)
            except Exception as exc:
                logger.warning("inspection %s: storing the timestamp failed (will retry): %s", inspection_id, exc)
                failed = True
        return failed

    async def _stamp_heads(self) -> None:
        assert self.client is not None and self.heads is not None
        for inspection_id, seq, head in self.heads():
            if self._stamped_heads.get(inspection_id) == seq:
                continue
            try:
                token = await self.client.stamp(bytes.fromhex(head))
                await self.store.put(prefix_of(inspection_id) + f"{TIMESTAMPS}head-{seq:08d}.tsr", token, "application/timestamp-reply")
            except Exception as exc:  # a head stamp is a bonus: the next round tries again
                logger.info("inspection %s: log head not timestamped: %s", inspection_id, exc)
                continue
            self._stamped_heads[inspection_id] = seq

    async def idle(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is pending (for tests); False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._manifests:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True
