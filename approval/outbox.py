"""The webhook outbox: every delivery the approval core is owed, persisted before it is sent.

A delivery is one JSON object in the object store (the system of record) at
``records/webhooks/<delivery_id>.json``. :class:`Outbox` holds the pending ones whole, the
CACHED most recently finished ones, and a summary (id, number, state) of every other, rebuilt
at start (from the index's stored copy, :mod:`approval.index_copy`, where a delivery is
unchanged since), so deliveries enqueued by an earlier process are picked up again and memory
does not grow by a whole delivery (its body, a few kB) per webhook ever sent.

The body is fixed when the delivery is enqueued and every attempt sends the same bytes; only
the ``Takan-Signature`` header (its timestamp) changes per attempt. The webhook secret is not
stored: a delivery names the API key that created the inspection and the sender asks for that
key's secret at each attempt (see :class:`approval.webhooks.WebhookSender`).

With several nodes (``Outbox.shared``, session/deliveries.py) each node sends the deliveries it
enqueued; a pending one also has a marker, ``records/webhook-queue/<node>/<delivery_id>``, so
that when its node dies another node finds it (one short listing, not every delivery ever
made) and sends it instead (:meth:`Outbox.adopt`). On one node the outbox sends everything.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import datetime
import json
import logging
import secrets
import sys
import time
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, AsyncContextManager, Literal, Optional, Protocol, cast, get_args

from storage.objects import ObjectNotFound, ObjectStore, StorageError

from errors import Conflict, NotFound
from .index_copy import IndexCopy
from .requests import callback_url_problem
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
#: Markers of the pending deliveries with several nodes, by the node that sends each.
QUEUE_PREFIX = "records/webhook-queue/"
#: Where the index's stored copy is kept (outside RECORD_PREFIX, which holds deliveries only).
INDEX_COPY_KEY = "indexes/webhooks.json.gz"
#: Finished deliveries kept whole after their last change or read (the admin's view, the tests).
CACHED = 64
#: Store reads in flight at once (the start, a page of the admin's view).
READS = 32
#: The admin's view returns at most this many deliveries per page.
PAGE_MAX = 1000
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
    """Return ``url`` if the notifier can POST to it, else raise ValueError (the same check
    a create makes: approval/requests.py)."""
    problem = callback_url_problem(url)
    if problem is not None:
        raise ValueError(f"callback URL {problem}")
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
    #: the node that sends it, with several nodes (None: any node; one node sends everything)
    node: Optional[str] = None

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
            "node": self.node,
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


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    """What the outbox holds of a delivery it does not hold whole: enough to count, order and
    page them."""

    id: str
    seq: int
    state: DeliveryState

    @classmethod
    def of(cls, delivery: Delivery) -> DeliverySummary:
        return cls(delivery.delivery_id, delivery.seq, cast(DeliveryState, sys.intern(delivery.state)))

    def row(self) -> list[Any]:
        """The fields, as the index's stored copy keeps them."""
        return [self.id, self.seq, self.state]

    @classmethod
    def from_row(cls, row: Any) -> DeliverySummary:
        """The summary of a copy's row ``[id, seq, state]``; ValueError if it is not one."""
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and type(row[1]) is int
                and row[2] in STATES):
            raise ValueError("a delivery summary row is [id, seq, state]")
        return cls(row[0], row[1], cast(DeliveryState, sys.intern(row[2])))


#: The order of the summaries: by number, then id (two nodes sharing a bucket may give one
#: number twice; each node numbers its own deliveries).
_ORDER = attrgetter("seq", "id")


class SharedOutbox(Protocol):
    """What the outbox needs when several nodes share it (session/deliveries.py)."""

    @property
    def node_id(self) -> str: ...

    def exclusive(self, name: str) -> AsyncContextManager[None]:
        """Hold the cross-node lock ``name`` for the block."""
        ...

    async def alive(self, node_id: str) -> bool:
        """Whether the node's heartbeat is current."""
        ...

    def may_send(self) -> bool:
        """Whether this node may send now: not while it is cut off from the others (its
        lease has lapsed), for they may be taking its deliveries over."""
        ...


class Outbox:
    """Persistent queue of webhook deliveries, with the admin's view of them.

    ``start()`` loads the deliveries persisted in the store; ``enqueue()`` returns only once
    the new delivery is stored. :class:`approval.webhooks.WebhookSender` sends them and reports
    each attempt back through :meth:`record_attempt`.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        #: every delivery's summary, by id; and in enqueue order, all and by state
        self._summaries: dict[str, DeliverySummary] = {}
        self._ordered: list[DeliverySummary] = []
        self._by_state: dict[str, list[DeliverySummary]] = {state: [] for state in STATES}
        self._pending: dict[str, Delivery] = {}
        #: finished deliveries kept whole, least recently used first, at most CACHED
        self._finished: OrderedDict[str, Delivery] = OrderedDict()
        #: the index's stored copy, and the version of each delivery its summary came with
        self.index_copy = IndexCopy(store, INDEX_COPY_KEY, RECORD_PREFIX)
        #: Set when several nodes share the outbox (takan/app.py); None on one node.
        self.shared: Optional[SharedOutbox] = None
        self._next_seq = 0
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._started = False
        self._closed = False

    async def start(self) -> None:
        """Load the deliveries of earlier processes: the pending ones whole, the others'
        summaries (from the index's stored copy where a delivery is unchanged since, else
        read, READS at a time); idempotent."""
        if self._started:
            return
        if self._closed:
            raise RuntimeError("this Outbox was closed; create a new one")
        copy = self.index_copy
        # pending: held whole, so read
        listed, summaries, unread = await copy.reuse(DeliverySummary.from_row, lambda s: s.state == "pending")
        for start in range(0, len(unread), READS):
            batch = unread[start : start + READS]
            for delivery_id, delivery in zip(batch, await asyncio.gather(*(self._read(i) for i in batch))):
                if delivery is None:
                    continue
                summaries.append(summary := DeliverySummary.of(delivery))
                copy.note(summary.id, listed[delivery_id])  # the summary's own id: one string per delivery
                if delivery.state == "pending":
                    self._pending[delivery.delivery_id] = delivery
        # ordered once (the listing is not in enqueue order): each insort would move the list
        summaries.sort(key=_ORDER)
        for summary in summaries:
            self._summaries[summary.id] = summary
            self._ordered.append(summary)
            self._by_state[summary.state].append(summary)
        self._next_seq = summaries[-1].seq + 1 if summaries else 0
        self._started = True
        logger.info(
            "webhook outbox loaded %d deliveries (%d pending; %d read, the others from the index copy)",
            len(self._summaries),
            len(self._pending),
            len(unread),
        )
        await copy.write_if_due(self._rows)
        copy.keep(self._rows)
        self._notify()

    async def _read(self, delivery_id: str) -> Optional[Delivery]:
        """The stored delivery; None if it is gone or unreadable (said in the log)."""
        key = f"{RECORD_PREFIX}{delivery_id}.json"
        try:
            return Delivery.from_record(await self._store.get(key))
        except ObjectNotFound:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            logger.error("webhook delivery record %s is unreadable (%s); skipped", key, exc)
            return None

    def _rows(self) -> Iterator[tuple[str, list[Any]]]:
        return ((summary.id, summary.row()) for summary in list(self._ordered))

    async def close(self) -> None:
        """Stop accepting deliveries; store the index's copy if it changed; idempotent.
        Everything enqueued is already stored."""
        if self._closed:
            return
        async with self._lock:  # lets a write in progress finish
            self._closed = True
            if self._started:
                await self.index_copy.close(self._rows)
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
        """Hold ``delivery`` as it now is: whole while pending, else among the recently
        finished ones; its summary in enqueue order."""
        summary = DeliverySummary.of(delivery)
        old = self._summaries.get(delivery.delivery_id)
        if old is not None:
            self._ordered[self._position(self._ordered, old)] = summary
            if old.state != summary.state:
                del self._by_state[old.state][self._position(self._by_state[old.state], old)]
                insort(self._by_state[summary.state], summary, key=_ORDER)
            else:
                same = self._by_state[old.state]
                same[self._position(same, old)] = summary
        else:
            insort(self._ordered, summary, key=_ORDER)
            insort(self._by_state[summary.state], summary, key=_ORDER)
        self._summaries[delivery.delivery_id] = summary
        if delivery.state == "pending":
            self._finished.pop(delivery.delivery_id, None)
            self._pending[delivery.delivery_id] = delivery
        else:
            self._pending.pop(delivery.delivery_id, None)
            self._keep(delivery)

    def _keep(self, delivery: Delivery) -> Delivery:
        """Keep a finished delivery whole a while (dropping the least recently used beyond CACHED)."""
        self._finished[delivery.delivery_id] = delivery
        self._finished.move_to_end(delivery.delivery_id)
        while len(self._finished) > CACHED:
            self._finished.popitem(last=False)
        return delivery

    @staticmethod
    def _position(ordered: builtins.list[DeliverySummary], summary: DeliverySummary) -> int:
        at = bisect_left(ordered, (summary.seq, summary.id), key=_ORDER)
        assert at < len(ordered) and ordered[at].id == summary.id, f"webhook outbox out of order at {summary.id}"
        return at

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
                node=None if self.shared is None else self.shared.node_id,
            )
            # Stored before anyone hears of it: a crash after enqueue() returns loses nothing.
            await self._mark(delivery)
            info = await self._store.put(delivery.key, delivery.to_record(), "application/json")
            self.index_copy.saved(delivery_id, info.version)
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

    @property
    def held(self) -> bool:
        """Nothing may be sent now: this node is cut off from the others (SharedOutbox.may_send)."""
        return self.shared is not None and not self.shared.may_send()

    async def still_ours(self, delivery: Delivery) -> bool:
        """Whether ``delivery`` may be sent from this node now, read afresh from the store
        with several nodes: a node cut off from the others while another took its delivery
        over (adopt) still holds it as its own, and would send it again once back. A
        delivery found taken over or finished is held as stored, so heads() skips it. If
        the store cannot say, True: at least once, as ever."""
        mine = None if self.shared is None else self.shared.node_id
        if mine is None or delivery.node is None:
            return True
        if self.held:
            return False
        try:
            stored = Delivery.from_record(await self._store.get(delivery.key))
        except ObjectNotFound:
            return True
        except (StorageError, OSError, ValueError, TypeError, KeyError) as exc:
            logger.warning("webhook %s: cannot read it back before sending (%s); sending", delivery.delivery_id, exc)
            return True
        if stored.node == mine and stored.state == "pending":
            return True
        async with self._lock:
            if delivery.delivery_id in self._pending:
                self._index(stored)
        logger.warning(
            "webhook %s: not sent from node %s, it is %s on node %s now (taken over while this node was cut off)",
            delivery.delivery_id, mine, stored.state, stored.node,
        )
        return False

    def heads(self) -> builtins.list[Delivery]:
        """The oldest pending delivery of each callback URL, oldest first.

        Deliveries to one URL go out one at a time in enqueue order: a later one waits
        until the one before it is delivered or has failed for good.
        """
        heads: dict[str, Delivery] = {}
        mine = None if self.shared is None else self.shared.node_id
        for delivery in self._pending.values():
            if mine is not None and delivery.node not in (None, mine):
                continue  # another node's, until that node dies (adopt)
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
            delivery = self._pending.get(delivery_id)
            if delivery is None:
                raise NotFound(f"no pending webhook delivery {delivery_id!r}")
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
                info = await self._store.put(delivery.key, delivery.to_record(), "application/json")
                self.index_copy.saved(delivery_id, info.version)
                if delivery.state != "pending":
                    await self._unmark(delivery)
            except (StorageError, OSError) as exc:
                self.index_copy.saved(delivery_id, None)  # the store has an older one: read it at the next start
                logger.error(
                    "webhook %s: could not store attempt %d (%s); kept in memory",
                    delivery_id,
                    len(delivery.attempts),
                    exc,
                )
        return delivery

    # ---- the admin's view -----------------------------------------------------------------

    def pending(self) -> builtins.list[Delivery]:
        """The pending deliveries, in enqueue order."""
        return sorted(self._pending.values(), key=lambda d: (d.seq, d.delivery_id))

    async def page(
        self, state: Optional[DeliveryState] = None, limit: int = 100, before: Optional[int] = None
    ) -> tuple[builtins.list[Delivery], Optional[int]]:
        """The newest ``limit`` deliveries (all, or those in ``state``) enqueued before number
        ``before`` (the newest of all if None), in enqueue order; and the ``before`` of the
        page of older ones (None when there are none). Reads from the store those it does not
        hold, READS at a time."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown delivery state {state!r}; expected one of {', '.join(STATES)}")
        if not 1 <= limit <= PAGE_MAX:
            raise ValueError(f"limit must be between 1 and {PAGE_MAX}")
        ordered = self._ordered if state is None else self._by_state[state]
        end = len(ordered) if before is None else bisect_left(ordered, (before, ""), key=_ORDER)
        wanted = ordered[max(0, end - limit) : end]
        found: builtins.list[Delivery] = []
        for start in range(0, len(wanted), READS):
            batch = wanted[start : start + READS]
            found.extend(d for d in await asyncio.gather(*(self._found(s.id) for s in batch)) if d is not None)
        older = end - limit > 0 and bool(wanted)
        return found, wanted[0].seq if older else None

    async def _found(self, delivery_id: str) -> Optional[Delivery]:
        """The delivery, or None if its record is gone from the store (a page shows the rest)."""
        try:
            return await self.load(delivery_id)
        except NotFound:
            return None

    def count(self, state: Optional[DeliveryState] = None) -> int:
        """How many deliveries there are (in ``state``)."""
        return len(self._ordered if state is None else self._by_state[state])

    def get(self, delivery_id: str) -> Delivery:
        """A delivery the outbox holds whole: every pending one and the CACHED most recently
        finished (:class:`errors.NotFound` otherwise); anything else awaits :meth:`load`."""
        delivery = self._pending.get(delivery_id) or self._finished.get(delivery_id)
        if delivery is None:
            raise NotFound(f"no webhook delivery {delivery_id!r} held; it may be in the store (load)")
        return delivery

    async def load(self, delivery_id: str) -> Delivery:
        """The delivery, read from the store if the outbox does not hold it whole
        (:class:`errors.NotFound` if there is none)."""
        delivery = self._pending.get(delivery_id) or self._finished.get(delivery_id)
        if delivery is not None:
            if delivery_id in self._finished:
                self._finished.move_to_end(delivery_id)
            return delivery
        summary = self._summaries.get(delivery_id)
        stored = None if summary is None else await self._read(delivery_id)
        if stored is None:
            raise NotFound(f"no webhook delivery {delivery_id!r}")
        current = self._summaries.get(delivery_id)
        held = self._pending.get(delivery_id) or self._finished.get(delivery_id)
        if held is not None:  # changed while it was read: that one is newer
            return held
        if current is None or current.state != stored.state or stored.state == "pending":
            return stored  # a read a change overtook is shown, not kept
        return self._keep(stored)

    async def resend(self, delivery_id: str) -> Delivery:
        """Send a delivered or failed delivery again: the same delivery_id and body, a new
        retry round, the earlier attempts kept. A pending one is a :class:`Conflict`.
        """
        self._check_open()
        async with self._lock:
            delivery = await self.load(delivery_id)
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
                node=None if self.shared is None else self.shared.node_id,
            )
            await self._mark(delivery)
            info = await self._store.put(delivery.key, delivery.to_record(), "application/json")
            self.index_copy.saved(delivery_id, info.version)
            self._index(delivery)
        logger.info("webhook %s queued again by an admin", delivery_id)
        self._notify()
        return delivery

    # ---- several nodes ------------------------------------------------------------------

    def _marker(self, node: str, delivery_id: str) -> str:
        return f"{QUEUE_PREFIX}{node}/{delivery_id}"

    async def _mark(self, delivery: Delivery) -> None:
        """With several nodes, say in the store that the delivery is pending on its node.
        Written before the delivery: a marker whose delivery is not pending is dropped by
        :meth:`adopt`, a pending delivery without one would be found by no other node."""
        if delivery.node is not None:
            await self._store.put(self._marker(delivery.node, delivery.delivery_id), b"", "application/octet-stream")

    async def _unmark(self, delivery: Delivery) -> None:
        if delivery.node is None:
            return
        try:
            await self._store.delete(self._marker(delivery.node, delivery.delivery_id))
        except (StorageError, OSError) as exc:  # a stale marker costs adopt() a read, nothing else
            logger.warning("webhook %s: its queue marker was not removed (%s)", delivery.delivery_id, exc)

    async def adopt(self) -> int:
        """Take over the pending deliveries of nodes that died: each is read afresh under a
        cross-node lock and, if still pending on the dead node, marked and stored as this
        node's, and sent from here. Returns how many. Run every few seconds
        (session/deliveries.py)."""
        shared = self.shared
        if shared is None or not self._started:
            return 0
        by_node: dict[str, builtins.list[str]] = {}
        for key in await self._store.list(QUEUE_PREFIX):
            node, _, delivery_id = key[len(QUEUE_PREFIX) :].partition("/")
            if node and delivery_id and node != shared.node_id:
                by_node.setdefault(node, []).append(delivery_id)
        adopted = 0
        for node, ids in by_node.items():
            if await shared.alive(node):
                continue
            for delivery_id in ids:
                async with shared.exclusive(f"webhook-{delivery_id}"), self._lock:
                    stored = await self._read(delivery_id)
                    if stored is not None and stored.state == "pending" and stored.node == node:
                        delivery = dataclasses.replace(stored, node=shared.node_id)
                        await self._mark(delivery)
                        info = await self._store.put(delivery.key, delivery.to_record(), "application/json")
                        self.index_copy.saved(delivery_id, info.version)
                        self._next_seq = max(self._next_seq, delivery.seq + 1)
                        self._index(delivery)
                        adopted += 1
                    await self._store.delete(self._marker(node, delivery_id))
        if adopted:
            logger.warning("node %s: sending %d webhook deliveries of nodes that died", shared.node_id, adopted)
            self._notify()
        return adopted

    def stats(self) -> dict[str, Any]:
        """Counts per state and the age in seconds of the oldest pending delivery (or None)."""
        counts: dict[str, Any] = {state: len(self._by_state[state]) for state in STATES}
        oldest = min((unix_time(d.occurred_at) for d in self._pending.values()), default=None)
        return {
            **counts,
            "oldest_pending_age_s": None if oldest is None else round(max(0.0, time.time() - oldest), 3),
        }
