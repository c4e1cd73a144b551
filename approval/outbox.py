"""The webhook outbox: every delivery the approval core is owed, persisted before it is sent.

A delivery is one JSON object in the object store (the system of record) at
``records/webhooks/<delivery_id>.json``; :class:`Outbox` keeps an index in memory, rebuilt from
the store at start, so deliveries enqueued by an earlier process are picked up again.

The body is fixed when the delivery is enqueued and every attempt sends the same bytes; only
the ``Takan-Signature`` header (its timestamp) changes per attempt. The webhook secret is not
stored: a delivery names the API key that created the inspection and the sender asks for that
key's secret at each attempt (see :class:`approval.webhooks.WebhookSender`).

One process writes an outbox at a time (the same rule as :class:`InspectionBook`).
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import datetime
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Optional, get_args
from urllib.parse import urlsplit

from storage.objects import ObjectStore, StorageError

from errors import Conflict, NotFound
from .inspections import now_utc, parse_rfc3339, rfc3339

__all__ = [
    "EVENTS",
    "RECORD_PREFIX",
    "Attempt",
    "Delivery",
    "DeliveryState",
    "Outbox",
    "check_callback_url",
    "rfc3339_at",
    "unix_time",
]

logger = logging.getLogger(__name__)

RECORD_PREFIX = "records/webhooks/"
#: The events of CONTRACT.md (section Webhooks); the contract only ever adds to them.
EVENTS = ("inspection.judged", "inspection.reviewed", "inspection.cancelled", "inspection.expired")

DeliveryState = Literal["pending", "delivered", "failed"]
STATES: tuple[DeliveryState, ...] = get_args(DeliveryState)


def rfc3339_at(unix: float) -> str:
    """Unix time as RFC 3339 UTC with milliseconds (``2026-11-27T01:30:00.000Z``)."""
    return rfc3339(datetime.datetime.fromtimestamp(unix, datetime.timezone.utc)) or ""


def unix_time(value: str) -> float:
    """The unix time of an RFC 3339 timestamp."""
    moment = parse_rfc3339(value)
    if moment is None:
        raise ValueError("no timestamp")
    return moment.timestamp()


def check_callback_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL with a host, else raise ValueError."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a port outside 0-65535 or not a number
    except ValueError as exc:
        raise ValueError(f"callback URL {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"callback URL {url!r} must be an absolute http(s) URL with a host")
    return url


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a delivery: when, how long, and what came back.

    ``status`` is the HTTP status if a response arrived; ``error`` says what went wrong
    (a non-2xx status, a redirect and its ``location``, a timeout, a refused connection).
    """

    at: str
    duration_ms: int
    status: Optional[int] = None
    error: Optional[str] = None
    location: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook owed to one callback URL, and what happened to it so far.

    ``seq`` orders deliveries by enqueue across restarts. The retry *round* starts at the
    first attempt after enqueue or after :meth:`Outbox.resend`: ``round_started_at`` and
    ``round_attempts`` drive the backoff and the give-up window, while ``attempts`` keeps
    every attempt ever made.
    """

    delivery_id: str
    seq: int
    event: str
    callback_url: str
    api_key_id: str
    occurred_at: str
    body: bytes
    state: DeliveryState = "pending"
    attempts: tuple[Attempt, ...] = ()
    next_attempt_at: Optional[str] = None
    round_started_at: Optional[str] = None
    round_attempts: int = 0
    delivered_at: Optional[str] = None
    failed_at: Optional[str] = None
    resends: int = 0

    @property
    def key(self) -> str:
        """The object store key of this delivery's record."""
        return f"{RECORD_PREFIX}{self.delivery_id}.json"

    @property
    def due_at(self) -> Optional[float]:
        """Unix time of the next attempt, or None if the delivery is not pending."""
        if self.state != "pending" or self.next_attempt_at is None:
            return None
        return unix_time(self.next_attempt_at)

    def as_json(self) -> dict[str, Any]:
        """The delivery for the admin API (the secret is never part of a delivery)."""
        return {
            "delivery_id": self.delivery_id,
            "event": self.event,
            "callback_url": self.callback_url,
            "api_key_id": self.api_key_id,
            "occurred_at": self.occurred_at,
            "state": self.state,
            "attempts": [a.as_json() for a in self.attempts],
            "next_attempt_at": self.next_attempt_at,
            "delivered_at": self.delivered_at,
            "failed_at": self.failed_at,
            "resends": self.resends,
            "body": self.body.decode(),
        }

    def to_record(self) -> bytes:
        record = {
            name.name: getattr(self, name.name) for name in dataclasses.fields(self)
        }
        record["body"] = self.body.decode()
        record["attempts"] = [a.as_json() for a in self.attempts]
        return json.dumps(record, ensure_ascii=False, sort_keys=True).encode()

    @classmethod
    def from_record(cls, data: bytes) -> Delivery:
        record = json.loads(data)
        record["body"] = record["body"].encode()
        record["attempts"] = tuple(Attempt(**a) for a in record["attempts"])
        if record["state"] not in STATES:
            raise ValueError(f"unknown delivery state {record['state']!r}")
        delivery = cls(**record)
        # Timestamps the sender computes with: a bad one is found here, not in its loop.
        for stamp in (delivery.occurred_at, delivery.next_attempt_at, delivery.round_started_at):
            if stamp is not None:
                unix_time(stamp)
        if delivery.state == "pending" and delivery.next_attempt_at is None:
            raise ValueError("a pending delivery without next_attempt_at")
        return delivery


class Outbox:
    """Persistent queue of webhook deliveries, with the admin's view of them.

    ``start()`` loads the deliveries persisted in the store; ``enqueue()`` returns only once
    the new delivery is stored. :class:`approval.webhooks.WebhookSender` sends them and reports
    each attempt back through :meth:`record_attempt`.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._deliveries: dict[str, Delivery] = {}
        self._pending: dict[str, Delivery] = {}
        self._next_seq = 0
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._started = False
        self._closed = False

    async def start(self) -> None:
        """Load the deliveries of earlier processes; idempotent."""
        if self._started:
            return
        if self._closed:
            raise RuntimeError("this Outbox was closed; create a new one")
        for key in await self._store.list(RECORD_PREFIX):
            if not key.endswith(".json"):
                continue
            try:
                delivery = Delivery.from_record(await self._store.get(key))
            except (ValueError, TypeError, KeyError) as exc:
                logger.error("webhook delivery record %s is unreadable (%s); skipped", key, exc)
                continue
            self._index(delivery)
            self._next_seq = max(self._next_seq, delivery.seq + 1)
        self._started = True
        logger.info(
            "webhook outbox loaded %d deliveries (%d pending)",
            len(self._deliveries),
            len(self._pending),
        )
        self._notify()

    async def close(self) -> None:
        """Stop accepting deliveries; idempotent. Everything enqueued is already stored."""
        if self._closed:
            return
        async with self._lock:  # lets a write in progress finish
            self._closed = True
            self._started = False
        self._listeners.clear()

    @property
    def started(self) -> bool:
        """Whether start() ran and close() did not."""
        return self._started

    def _check_open(self) -> None:
        if not self._started:
            raise RuntimeError("the Outbox is not started: await outbox.start() first")

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (synchronously) whenever a delivery becomes pending."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self) -> None:
        for listener in builtins.list(self._listeners):
            listener()

    def _index(self, delivery: Delivery) -> None:
        self._deliveries[delivery.delivery_id] = delivery
        if delivery.state == "pending":
            self._pending[delivery.delivery_id] = delivery
        else:
            self._pending.pop(delivery.delivery_id, None)

    # ---- producing ------------------------------------------------------------------------

    async def enqueue(
        self,
        event: str,
        inspection: dict[str, Any],
        callback_url: str,
        secret: Optional[str],
        api_key_id: str,
    ) -> Delivery:
        """Store a new pending delivery of ``event`` about ``inspection`` and return it.

        ``inspection`` is the ``inspection`` object of the body (CONTRACT.md, Webhooks). The
        body bytes are fixed here. ``secret`` is accepted for the caller's convenience but
        never stored: the sender signs with ``secret_for(api_key_id)`` at each attempt, so a
        restart, a rotated secret or a revoked key behave the same in every process.
        """
        del secret  # see the docstring: the API keys are the one place that holds secrets
        self._check_open()
        if event not in EVENTS:
            raise ValueError(f"unknown webhook event {event!r}; expected one of {', '.join(EVENTS)}")
        check_callback_url(callback_url)
        if not api_key_id:
            raise ValueError("api_key_id is required: it names the secret that signs the webhook")
        delivery_id = "dlv_" + secrets.token_hex(16)
        occurred = now_utc()
        occurred_at = rfc3339(occurred) or ""
        body = json.dumps(
            {
                "event": event,
                "delivery_id": delivery_id,
                "occurred_at": occurred_at,
                "inspection": inspection,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        async with self._lock:
            delivery = Delivery(
                delivery_id=delivery_id,
                seq=self._next_seq,
                event=event,
                callback_url=callback_url,
                api_key_id=api_key_id,
                occurred_at=occurred_at,
                body=body,
                next_attempt_at=occurred_at,
            )
            # Stored before anyone hears of it: a crash after enqueue() returns loses nothing.
            await self._store.put(delivery.key, delivery.to_record(), "application/json")
            self._next_seq += 1
            self._index(delivery)
        logger.info(
            "webhook %s (%s) for inspection %s queued for %s",
            delivery_id,
            event,
            inspection.get("id"),
            callback_url,
        )
        self._notify()
        return delivery

    # ---- the sender's side ----------------------------------------------------------------

    def heads(self) -> builtins.list[Delivery]:
        """The oldest pending delivery of each callback URL, oldest first.

        Deliveries to one URL go out one at a time in enqueue order: a later one waits
        until the one before it is delivered or has failed for good.
        """
        heads: dict[str, Delivery] = {}
        for delivery in self._pending.values():
            head = heads.get(delivery.callback_url)
            if head is None or delivery.seq < head.seq:
                heads[delivery.callback_url] = delivery
        return sorted(heads.values(), key=lambda d: d.seq)

    async def record_attempt(
        self, delivery_id: str, attempt: Attempt, retry_at: Optional[float]
    ) -> Delivery:
        """Record ``attempt``: delivered if it succeeded, else pending until ``retry_at``
        (unix time) or, if that is None, failed for good.

        A store failure is logged and the change kept in memory: at worst a restart sends
        the delivery again, which the receiver deduplicates.
        """
        async with self._lock:
            delivery = self._deliveries.get(delivery_id)
            if delivery is None:
                raise NotFound(f"no webhook delivery {delivery_id!r}")
            changes: dict[str, Any] = {
                "attempts": delivery.attempts + (attempt,),
                "round_started_at": delivery.round_started_at or attempt.at,
                "round_attempts": delivery.round_attempts + 1,
            }
            if attempt.ok:
                changes.update(state="delivered", delivered_at=attempt.at, next_attempt_at=None)
            elif retry_at is None:
                changes.update(state="failed", failed_at=attempt.at, next_attempt_at=None)
            else:
                changes.update(next_attempt_at=rfc3339_at(retry_at))
            delivery = dataclasses.replace(delivery, **changes)
            self._index(delivery)
            try:
                await self._store.put(delivery.key, delivery.to_record(), "application/json")
            except (StorageError, OSError) as exc:
                logger.error(
                    "webhook %s: could not store attempt %d (%s); kept in memory",
                    delivery_id,
                    len(delivery.attempts),
                    exc,
                )
        return delivery

    # ---- the admin's view -----------------------------------------------------------------

    def list(self, state: Optional[DeliveryState] = None) -> builtins.list[Delivery]:
        """Deliveries in enqueue order, all of them or those in ``state``."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown delivery state {state!r}; expected one of {', '.join(STATES)}")
        chosen = (d for d in self._deliveries.values() if state is None or d.state == state)
        return sorted(chosen, key=lambda d: d.seq)

    def get(self, delivery_id: str) -> Delivery:
        """The delivery; :class:`errors.NotFound` if there is none."""
        delivery = self._deliveries.get(delivery_id)
        if delivery is None:
            raise NotFound(f"no webhook delivery {delivery_id!r}")
        return delivery

    async def resend(self, delivery_id: str) -> Delivery:
        """Send a delivered or failed delivery again: the same delivery_id and body, a new
        retry round, the earlier attempts kept. A pending one is a :class:`Conflict`.
        """
        self._check_open()
        async with self._lock:
            delivery = self.get(delivery_id)
            if delivery.state == "pending":
                raise Conflict(f"webhook delivery {delivery_id} is still pending; it will be sent")
            delivery = dataclasses.replace(
                delivery,
                state="pending",
                next_attempt_at=rfc3339(now_utc()),
                round_started_at=None,
                round_attempts=0,
                delivered_at=None,
                failed_at=None,
                resends=delivery.resends + 1,
            )
            await self._store.put(delivery.key, delivery.to_record(), "application/json")
            self._index(delivery)
        logger.info("webhook %s queued again by an admin", delivery_id)
        self._notify()
        return delivery

    def stats(self) -> dict[str, Any]:
        """Counts per state and the age in seconds of the oldest pending delivery (or None)."""
        counts: dict[str, int] = {state: 0 for state in STATES}
        for delivery in self._deliveries.values():
            counts[delivery.state] += 1
        oldest = min((unix_time(d.occurred_at) for d in self._pending.values()), default=None)
        return {
            **counts,
            "oldest_pending_age_s": None if oldest is None else round(max(0.0, time.time() - oldest), 3),
        }
