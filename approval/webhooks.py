"""Webhook delivery to the approval core (CONTRACT.md, section Webhooks).

:class:`approval.outbox.Outbox` holds what is owed; :class:`WebhookSender` is the task that
POSTs it, at least once:

* a 2xx marks the delivery delivered; anything else (another status, a redirect, a timeout,
  a refused connection, a missing secret) is recorded as an attempt and retried;
* retries back off exponentially: nominal steps ``base_delay_s * 2**n`` (5 s, 10 s, 20 s, ...)
  capped at ``max_delay_s`` (1 h), each drawn uniformly from 80-100 % of its step so that
  receivers that failed together do not get retried together;
* a delivery whose retry round has lasted ``give_up_after_s`` (24 h) when an attempt fails
  becomes ``failed``: visible in :meth:`Outbox.list` and :meth:`Outbox.stats`, sendable
  again with :meth:`Outbox.resend`;
* per callback URL, deliveries go out one at a time in enqueue order, so the approval core
  never sees ``inspection.reviewed`` before the ``inspection.judged`` it follows. A failing
  delivery holds the later ones for its URL back until it is delivered or failed; other
  URLs are not affected.

Redirects are never followed (a 3xx is a failure recorded with its ``Location``): a
callback URL must not be a way to make Takan POST somewhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable
from typing import Optional

import aiohttp

from .outbox import Attempt, Delivery, Outbox, check_callback_url, rfc3339_at, unix_time

__all__ = [
    "USER_AGENT",
    "Delivery",
    "Outbox",
    "WebhookSender",
    "backoff_step",
    "sign",
]

logger = logging.getLogger(__name__)

USER_AGENT = "Takan-Webhooks/1"
#: How much of a non-2xx response body an attempt keeps, for the admin.
_EXCERPT_BYTES = 200


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Takan-Signature`` header value for ``body`` sent at unix time ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff_step(failures: int, base_delay_s: float, max_delay_s: float) -> float:
    """The nominal wait after the ``failures``-th failed attempt of a round (1, 2, ...)."""
    if failures < 1:
        raise ValueError(f"failures counts from 1, got {failures}")
    # Past 2**40 the step is capped anyway; the bound keeps the float finite.
    return float(min(max_delay_s, base_delay_s * 2 ** min(failures - 1, 40)))


#: While this node is cut off from the others (Outbox.held), how often the sender looks again.
HELD_RETRY_S = 1.0


class WebhookSender:
    """Sends the outbox's due deliveries from a task it owns.

    ``secret_for(api_key_id)`` returns the webhook secret of an API key, or None if the key
    is unknown; it is asked at every attempt (a None is a failed attempt, retried like any).
    ``timeout_s`` bounds one POST, connecting included. Up to ``max_concurrency`` callback
    URLs are served at once.

    The outbox must be started first; ``start()`` and ``close()`` are idempotent, ``close()``
    cancels the loop and any POST in flight (such a delivery stays pending and is sent again
    by the next process) and waits for them.
    """

    def __init__(
        self,
        outbox: Outbox,
        secret_for: Callable[[str], Optional[str]],
        *,
        timeout_s: float = 10.0,
        give_up_after_s: float = 86400.0,
        base_delay_s: float = 5.0,
        max_delay_s: float = 3600.0,
        max_concurrency: int = 8,
        rng: Optional[random.Random] = None,
    ) -> None:
        if base_delay_s <= 0 or max_delay_s < base_delay_s:
            raise ValueError(
                f"need 0 < base_delay_s <= max_delay_s, got {base_delay_s} and {max_delay_s}"
            )
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._outbox = outbox
        self._secret_for = secret_for
        self._timeout_s = timeout_s
        self._give_up_after_s = give_up_after_s
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._max_concurrency = max_concurrency
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._session: Optional[aiohttp.ClientSession] = None
        self._loop_task: Optional[asyncio.Task[None]] = None
        # callback URL -> the task sending its head delivery
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def start(self) -> None:
        """Start sending, beginning with the deliveries earlier processes left pending."""
        if self._closed:
            raise RuntimeError("this WebhookSender was closed; create a new one")
        if self._loop_task is not None:
            return
        if not self._outbox.started:
            raise RuntimeError("the Outbox is not started: await outbox.start() before sender.start()")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
        )
        self._outbox.add_listener(self._wake.set)
        self._loop_task = asyncio.create_task(self._run(), name="webhook-sender")
        logger.info("webhook sender started")

    async def close(self) -> None:
        """Stop sending; safe to call twice and before start()."""
        if self._closed:
            return
        self._closed = True
        self._outbox.remove_listener(self._wake.set)
        tasks = [t for t in (self._loop_task, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        logger.info("webhook sender closed")

    # ---- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                timeout = self._dispatch()
            except Exception:
                # A bug must not stop delivery for good: log it and look again a little later.
                logger.exception("webhook sender: cannot pick the due deliveries")
                timeout = self._base_delay_s
            try:
                async with asyncio.timeout(timeout):  # not wait_for: see session/background.py
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _dispatch(self) -> Optional[float]:
        """Start a task for each due head delivery; return how long to sleep (None: until woken)."""
        if self._outbox.held:
            return HELD_RETRY_S  # cut off from the other nodes: look again soon (nothing wakes us)
        now = time.time()
        next_due: Optional[float] = None
        for delivery in self._outbox.heads():
            if delivery.callback_url in self._in_flight:
                continue
            due = delivery.due_at
            if due is None:
                continue
            if due > now:
                next_due = due if next_due is None else min(next_due, due)
            elif len(self._in_flight) < self._max_concurrency:
                self._in_flight[delivery.callback_url] = asyncio.create_task(
                    self._send(delivery), name=f"webhook-{delivery.delivery_id}"
                )
        return None if next_due is None else max(0.0, next_due - now)

    async def _send(self, delivery: Delivery) -> None:
        try:
            if not await self._outbox.still_ours(delivery):
                return  # another node's now, or held: heads() says what is next
            attempt = await self._attempt(delivery)
            retry_at = None if attempt.ok else self._retry_at(delivery, attempt)
            record = asyncio.ensure_future(
                self._outbox.record_attempt(delivery.delivery_id, attempt, retry_at)
            )
            try:
                updated = await asyncio.shield(record)
            except asyncio.CancelledError:
                # close() during the write: finish it, so the next process sees the attempt.
                await record
                raise
            self._log(updated, attempt)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never lose the loop to a bug: the delivery stays pending and is tried again.
            logger.exception("webhook %s: attempt could not be recorded", delivery.delivery_id)
            await asyncio.sleep(self._base_delay_s)
        finally:
            self._in_flight.pop(delivery.callback_url, None)
            self._wake.set()

    def _retry_at(self, delivery: Delivery, attempt: Attempt) -> Optional[float]:
        """When to try again after the failed ``attempt``, or None to give up."""
        at = unix_time(attempt.at)
        round_start = unix_time(delivery.round_started_at) if delivery.round_started_at else at
        if at - round_start >= self._give_up_after_s:
            return None
        step = backoff_step(delivery.round_attempts + 1, self._base_delay_s, self._max_delay_s)
        return at + step * self._rng.uniform(0.8, 1.0)

    async def _attempt(self, delivery: Delivery) -> Attempt:
        """POST the delivery once; never raises except on cancellation."""
        assert self._session is not None
        started = time.time()
        clock = time.monotonic()
        at = rfc3339_at(started)

        def done(
            status: Optional[int] = None, error: Optional[str] = None, location: Optional[str] = None
        ) -> Attempt:
            duration_ms = int((time.monotonic() - clock) * 1000)
            return Attempt(at=at, duration_ms=duration_ms, status=status, error=error, location=location)

        try:
            check_callback_url(delivery.callback_url)
            secret = self._secret_for(delivery.api_key_id)
        except Exception as exc:
            return done(error=f"cannot send: {exc}")
        if not secret:
            return done(error=f"no webhook secret for API key {delivery.api_key_id!r}")
        headers = {
            "Content-Type": "application/json",
            "Takan-Delivery": delivery.delivery_id,
            "Takan-Event": delivery.event,
            "Takan-Signature": sign(secret, delivery.body, int(started)),
        }
        try:
            async with self._session.post(
                delivery.callback_url,
                data=delivery.body,
                headers=headers,
                allow_redirects=False,
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return done(status=status)
                if 300 <= status < 400:
                    location = response.headers.get("Location")
                    return done(
                        status=status,
                        error=f"HTTP {status} redirect (not followed) to {location!r}",
                        location=location,
                    )
                try:
                    excerpt = (await response.content.read(_EXCERPT_BYTES)).decode(errors="replace")
                except (aiohttp.ClientError, TimeoutError):
                    excerpt = ""
                error = f"HTTP {status}: {excerpt.strip()}" if excerpt.strip() else f"HTTP {status}"
                return done(status=status, error=error)
        except TimeoutError:
            return done(error=f"timed out after {self._timeout_s:g} s")
        except aiohttp.ClientConnectorError as exc:
            return done(error=f"cannot connect: {exc.os_error or exc}")
        except (aiohttp.ClientError, OSError) as exc:
            return done(error=f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _log(delivery: Delivery, attempt: Attempt) -> None:
        n = len(delivery.attempts)
        if delivery.state == "delivered":
            logger.info(
                "webhook %s delivered to %s (attempt %d, HTTP %s)",
                delivery.delivery_id,
                delivery.callback_url,
                n,
                attempt.status,
            )
        elif delivery.state == "failed":
            logger.error(
                "webhook %s to %s failed for good after %d attempts: %s",
                delivery.delivery_id,
                delivery.callback_url,
                n,
                attempt.error,
            )
        else:
            logger.warning(
                "webhook %s to %s: attempt %d failed (%s); next at %s",
                delivery.delivery_id,
                delivery.callback_url,
                n,
                attempt.error,
                delivery.next_attempt_at,
            )

