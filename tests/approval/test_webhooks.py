"""Webhook delivery over real HTTP on loopback: an approval-core stand-in receives them.

The receiver is an aiohttp app on 127.0.0.1 that records every request and answers as each
test scripts it (a status, a delay, a redirect), and can be stopped and started again on the
same port. It deduplicates by ``delivery_id`` as CONTRACT.md asks of the approval core.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest
from aiohttp import web

from errors import Conflict, NotFound
from approval import outbox as outbox_module
from approval.outbox import QUEUE_PREFIX, RECORD_PREFIX, Attempt, Delivery, Outbox, unix_time
from approval.webhooks import WebhookSender, backoff_step
from storage.local import LocalObjectStore
from testkit.counting import CountingStore

SECRETS = {"key-1": "whsec-test-秘密"}
INSPECTION = {
    "id": "20261127093000-0123456789abcdef",
    "case_no": "DZ-2026-000123",
    "status": "judged",
    "verdict": {"outcome": "fail", "reasons": ["门头招牌缺失"]},
    "manifest_sha256": "ab" * 32,
}
#: Tiny timings: the production schedule is 5 s, 10 s, ... for 24 h.
FAST: dict[str, float] = {"base_delay_s": 0.05, "max_delay_s": 0.2, "timeout_s": 2.0}


# ---- the approval-core stand-in -------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int = 200
    sleep: float = 0.0
    location: Optional[str] = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def delivery_id(self) -> str:
        return self.headers["Takan-Delivery"]


@dataclass
class Receiver:
    """Records requests; answers each path from its script, then 200."""

    requests: list[Received] = field(default_factory=list)
    #: delivery_ids processed, once each (the receiver's deduplication)
    processed: list[str] = field(default_factory=list)
    duplicates: int = 0
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    always: dict[str, Answer] = field(default_factory=dict)
    port: int = 0
    _runner: Optional[web.AppRunner] = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *answers: Answer) -> None:
        self.scripts.setdefault(path, []).extend(answers)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(request.path, dict(request.headers), body, time.time()))
        queue = self.scripts.get(request.path)
        answer = queue.pop(0) if queue else self.always.get(request.path, Answer())
        if 200 <= answer.status < 300:
            delivery_id = request.headers["Takan-Delivery"]
            if delivery_id in self.processed:
                self.duplicates += 1
            else:
                self.processed.append(delivery_id)
        if answer.sleep:
            await asyncio.sleep(answer.sleep)
        headers = {"Location": answer.location} if answer.location else None
        return web.Response(status=answer.status, text="answer", headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


Takan = Callable[..., Awaitable[tuple[Outbox, WebhookSender]]]


@pytest.fixture
async def takan(store: LocalObjectStore) -> AsyncIterator[Takan]:
    """Starts an Outbox and a WebhookSender on the test's store (a Takan process)."""
    started: list[tuple[Outbox, WebhookSender]] = []

    async def start(send: bool = True, **options: Any) -> tuple[Outbox, WebhookSender]:
        outbox = Outbox(store)
        await outbox.start()
        sender = WebhookSender(outbox, SECRETS.get, **{**FAST, **options})
        if send:
            await sender.start()
        started.append((outbox, sender))
        return outbox, sender

    yield start
    for outbox, sender in reversed(started):
        await sender.close()
        await outbox.close()


async def enqueue(outbox: Outbox, url: str, event: str = "inspection.judged", key: str = "key-1") -> Delivery:
    return await outbox.enqueue(event, INSPECTION, url, SECRETS.get(key), key)


def state_of(outbox: Outbox, delivery: Delivery) -> str:
    return outbox.get(delivery.delivery_id).state


# ---- the outbox -------------------------------------------------------------------------


async def test_enqueue_stores_the_delivery_before_returning(store: LocalObjectStore, takan: Takan) -> None:
    outbox, _ = await takan(send=False)
    delivery = await enqueue(outbox, "https://approval.example/hooks/takan")
    assert re.fullmatch(r"dlv_[0-9a-f]{32}", delivery.delivery_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", delivery.occurred_at)
    assert delivery.state == "pending" and delivery.attempts == ()
    assert json.loads(delivery.body) == {
        "event": "inspection.judged",
        "delivery_id": delivery.delivery_id,
        "occurred_at": delivery.occurred_at,
        "inspection": INSPECTION,
    }
    # The record is in the store (the system of record) and holds no secret.
    record = await store.get(f"{RECORD_PREFIX}{delivery.delivery_id}.json")
    assert SECRETS["key-1"].encode() not in record and b"key-1" in record
    assert "secret" not in json.dumps(delivery.as_json())
    # Another process sees it pending, with the same body bytes.
    other = Outbox(store)
    await other.start()
    assert other.get(delivery.delivery_id).body == delivery.body
    assert other.stats()["pending"] == 1
    await other.close()


async def test_enqueue_rejects_what_cannot_be_sent(takan: Takan) -> None:
    outbox, _ = await takan(send=False)
    for url in ["ftp://approval.example/x", "/hooks/takan", "http://", "approval.example/x", "http://h:99999/"]:
        with pytest.raises(ValueError, match="callback URL"):
            await enqueue(outbox, url)
    with pytest.raises(ValueError, match="unknown webhook event"):
        await enqueue(outbox, "https://approval.example/x", event="inspection.created")
    assert outbox.pending() == [] and await outbox.page() == ([], None)
    with pytest.raises(NotFound):
        outbox.get("dlv_nope")
    with pytest.raises(NotFound):
        await outbox.load("dlv_nope")


async def test_finished_deliveries_are_summaries_paged_and_restarted_from_the_copy(
    store: LocalObjectStore, takan: Takan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "CACHED", 5)
    outbox, _ = await takan(send=False)
    made = [await enqueue(outbox, f"https://approval.example/{n % 3}") for n in range(40)]
    ok = Attempt(at="2026-12-04T01:00:00.000Z", duration_ms=3, status=204)
    for delivery in made[:30]:
        await outbox.record_attempt(delivery.delivery_id, ok, None)
    # held whole: the pending ones and the CACHED last finished; the others are summaries
    assert len(outbox._pending) == 10 and len(outbox._finished) == 5
    assert outbox.stats() | {"oldest_pending_age_s": None} == {"pending": 10, "delivered": 30, "failed": 0,
                                                              "oldest_pending_age_s": None}
    # the admin's pages: the newest first, in enqueue order, down to the oldest
    page, before = await outbox.page("delivered", 12)
    assert [d.delivery_id for d in page] == [d.delivery_id for d in made[18:30]] and before == made[18].seq
    page, before = await outbox.page("delivered", 12, before)
    assert [d.delivery_id for d in page] == [d.delivery_id for d in made[6:18]]
    page, before = await outbox.page("delivered", 12, before)
    assert [d.delivery_id for d in page] == [d.delivery_id for d in made[:6]] and before is None
    assert all(d.state == "delivered" and d.attempts == (ok,) for d in page)
    assert [d.delivery_id for d in (await outbox.page(None, 3))[0]] == [d.delivery_id for d in made[37:]]
    assert len(outbox._finished) == 5  # what a page read is kept within bounds
    with pytest.raises(ValueError, match="limit"):
        await outbox.page("delivered", 0)
    # one the outbox let go is read back, and can be sent again
    assert (await outbox.load(made[0].delivery_id)).attempts == (ok,)
    assert (await outbox.resend(made[1].delivery_id)).state == "pending" and outbox.count("pending") == 11
    await outbox.close()  # stores the index's copy
    # a restart reads the copy and the pending deliveries only, and numbers on from the last
    counting = CountingStore(store)
    again = Outbox(counting)  # type: ignore[arg-type]
    await again.start()
    assert counting.gets == 1 + 11
    assert again.stats() | {"oldest_pending_age_s": None} == {"pending": 11, "delivered": 29, "failed": 0,
                                                            "oldest_pending_age_s": None}
    assert (await enqueue(again, "https://approval.example/new")).seq == made[-1].seq + 1
    await again.close()


async def test_two_nodes_numbering_alike_are_both_listed(store: LocalObjectStore, takan: Takan) -> None:
    (one, _), (two, _) = await takan(send=False), await takan(send=False)
    first, second = await enqueue(one, "https://approval.example/a"), await enqueue(two, "https://approval.example/b")
    assert first.seq == second.seq  # each node numbers its own
    ok = Attempt(at="2026-12-04T01:00:00.000Z", duration_ms=3, status=204)
    await two.record_attempt(second.delivery_id, ok, None)
    both, _ = await takan(send=False)
    assert {d.delivery_id for d in (await both.page())[0]} == {first.delivery_id, second.delivery_id}
    await both.record_attempt(first.delivery_id, ok, None)  # its number is shared: still found in order
    assert both.count("delivered") == 2 and both.count("pending") == 0


@dataclass
class Nodes:
    """Two nodes' view of each other for the outbox (session/deliveries.py in a real server)."""

    node_id: str
    dead: set[str]
    cut_off: bool = False  # its lease lapsed (session/placement.py): it must not send

    def exclusive(self, name: str) -> Any:
        return contextlib.nullcontext()

    async def alive(self, node_id: str) -> bool:
        return node_id not in self.dead

    def may_send(self) -> bool:
        return not self.cut_off


async def test_a_dead_nodes_pending_delivery_is_sent_by_another(store: LocalObjectStore, receiver: Receiver) -> None:
    dead: set[str] = set()
    a, b = Outbox(store), Outbox(store)
    a.shared, b.shared = Nodes("node-a", dead), Nodes("node-b", dead)
    await a.start()
    await b.start()
    owed = await enqueue(a, receiver.url("/hooks"))  # node a's, pending (its sender is not running)
    assert owed.node == "node-a" and await store.list(QUEUE_PREFIX) == [f"{QUEUE_PREFIX}node-a/{owed.delivery_id}"]
    assert await b.adopt() == 0  # node a is alive: it sends its own
    dead.add("node-a")
    assert await b.adopt() == 1 and await b.adopt() == 0
    assert b.get(owed.delivery_id).node == "node-b" and [d.delivery_id for d in b.heads()] == [owed.delivery_id]
    assert await store.list(QUEUE_PREFIX) == [f"{QUEUE_PREFIX}node-b/{owed.delivery_id}"]
    sender = WebhookSender(b, SECRETS.get, **FAST)
    await sender.start()
    await eventually(lambda: b.get(owed.delivery_id).state == "delivered")
    assert receiver.processed == [owed.delivery_id]
    for _ in range(100):  # sent: no longer marked (the marker goes after the record is stored)
        if not await store.list(QUEUE_PREFIX):
            break
        await asyncio.sleep(0.02)
    assert await store.list(QUEUE_PREFIX) == []
    await sender.close()
    for outbox in (a, b):
        await outbox.close()


async def test_a_node_cut_off_sends_nothing_and_not_what_was_taken_over(store: LocalObjectStore, receiver: Receiver) -> None:
    """A partition: node a loses the others (its lease lapses) but still reaches the store and
    the approval core; node b, seeing a dead, takes a's delivery over. Neither the cut-off
    node nor the same node once back sends it again: the approval core gets it once."""
    receiver.script("/hooks", Answer(status=500))  # the first attempt fails: the delivery waits out a back-off
    dead: set[str] = set()
    a, b = Outbox(store), Outbox(store)
    node_a = Nodes("node-a", dead)
    a.shared, b.shared = node_a, Nodes("node-b", dead)
    await a.start()
    await b.start()
    sender_a = WebhookSender(a, SECRETS.get, base_delay_s=1.0, max_delay_s=1.0, timeout_s=2.0)
    await sender_a.start()
    owed = await enqueue(a, receiver.url("/hooks"))
    await eventually(lambda: len(receiver.requests) == 1)  # failed once, from a
    node_a.cut_off = True
    dead.add("node-a")
    assert a.held and await a.still_ours(a.get(owed.delivery_id)) is False
    assert await b.adopt() == 1
    sender_b = WebhookSender(b, SECRETS.get, **FAST)
    await sender_b.start()
    await eventually(lambda: b.get(owed.delivery_id).state == "delivered")
    node_a.cut_off = False  # back: a still holds the delivery as its own, pending
    dead.discard("node-a")
    await eventually(lambda: a.get(owed.delivery_id).node == "node-b")  # read back before sending: not a's any more
    await asyncio.sleep(0.5)
    assert receiver.processed == [owed.delivery_id] and len(receiver.requests) == 2
    assert a.heads() == [] and b.get(owed.delivery_id).state == "delivered"
    for closing in (sender_a, sender_b, a, b):
        await closing.close()


async def test_an_unreadable_record_is_reported_not_fatal(
    store: LocalObjectStore, takan: Takan, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, _ = await takan(send=False)
    good = await enqueue(outbox, "https://approval.example/x")
    await store.put(f"{RECORD_PREFIX}dlv_broken.json", b'{"delivery_id": "dlv_broken"')
    other = Outbox(store)
    await other.start()
    assert [d.delivery_id for d in other.pending()] == [good.delivery_id] and other.count() == 1
    assert "dlv_broken.json is unreadable" in caplog.text
    await other.close()


def test_backoff_schedule() -> None:
    steps = [backoff_step(n, 5, 3600) for n in range(1, 14)]
    assert steps[:6] == [5, 10, 20, 40, 80, 160]
    assert steps[9] == 2560 and steps[10:] == [3600, 3600, 3600]
    assert backoff_step(10_000, 5, 3600) == 3600


# ---- sending ----------------------------------------------------------------------------


async def test_signature_and_body_follow_the_contract(receiver: Receiver, takan: Takan) -> None:
    outbox, _ = await takan()
    delivery = await enqueue(outbox, receiver.url("/hooks/takan"), event="inspection.reviewed")
    await eventually(lambda: state_of(outbox, delivery) == "delivered")
    [request] = receiver.requests
    assert request.body == delivery.body
    assert json.loads(request.body)["event"] == "inspection.reviewed"
    assert json.loads(request.body)["inspection"]["verdict"]["reasons"] == ["门头招牌缺失"]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "Takan-Webhooks/1"
    assert request.headers["Takan-Delivery"] == delivery.delivery_id
    assert request.headers["Takan-Event"] == "inspection.reviewed"
    # What the approval core does: recompute the HMAC from t and the raw body.
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", request.headers["Takan-Signature"])
    assert match, request.headers["Takan-Signature"]
    t, v1 = match.groups()
    expected = hmac.new(SECRETS["key-1"].encode(), t.encode() + b"." + request.body, hashlib.sha256)
    assert hmac.compare_digest(v1, expected.hexdigest())
    assert abs(int(t) - request.at) < 5
    [attempt] = outbox.get(delivery.delivery_id).attempts
    assert attempt.status == 200 and attempt.error is None and attempt.duration_ms >= 0


async def test_a_500_is_retried_with_the_same_delivery_id(receiver: Receiver, takan: Takan) -> None:
    receiver.script("/hooks", Answer(500))
    outbox, _ = await takan(base_delay_s=0.2, max_delay_s=1.0)
    delivery = await enqueue(outbox, receiver.url("/hooks"))
    await eventually(lambda: state_of(outbox, delivery) == "delivered")
    assert [r.delivery_id for r in receiver.requests] == [delivery.delivery_id] * 2
    assert receiver.requests[0].body == receiver.requests[1].body
    first, second = outbox.get(delivery.delivery_id).attempts
    assert (first.status, second.status) == (500, 200)
    assert first.error == "HTTP 500: answer"  # what the receiver said, for the admin
    # The retry was scheduled 80-100 % of base_delay_s after the first attempt started.
    gap = unix_time(second.at) - unix_time(first.at)
    assert 0.16 - 0.002 <= gap < 1.0


async def test_a_timeout_is_a_failed_attempt(receiver: Receiver, takan: Takan) -> None:
    receiver.script("/slow", Answer(200, sleep=1.0))
    outbox, _ = await takan(timeout_s=0.3)
    delivery = await enqueue(outbox, receiver.url("/slow"))
    await eventually(lambda: state_of(outbox, delivery) == "delivered")
    first, second = outbox.get(delivery.delivery_id).attempts
    assert first.status is None and first.error and "timed out" in first.error
    assert first.duration_ms >= 250
    assert second.status == 200


async def test_delivered_once_the_receiver_is_back(receiver: Receiver, takan: Takan) -> None:
    await receiver.stop()
    outbox, _ = await takan()
    delivery = await enqueue(outbox, receiver.url("/hooks"))
    await eventually(lambda: len(outbox.get(delivery.delivery_id).attempts) >= 2)
    attempt = outbox.get(delivery.delivery_id).attempts[0]
    assert attempt.status is None and attempt.error and "cannot connect" in attempt.error
    assert state_of(outbox, delivery) == "pending"
    await receiver.start()  # the same port
    await eventually(lambda: state_of(outbox, delivery) == "delivered")
    assert receiver.processed == [delivery.delivery_id]


async def test_a_redirect_is_a_failure_and_is_not_followed(receiver: Receiver, takan: Takan) -> None:
    receiver.script("/hooks", Answer(302, location="http://169.254.169.254/latest/meta-data"))
    outbox, _ = await takan()
    delivery = await enqueue(outbox, receiver.url("/hooks"))
    await eventually(lambda: state_of(outbox, delivery) == "delivered")
    first = outbox.get(delivery.delivery_id).attempts[0]
    assert first.status == 302 and first.location == "http://169.254.169.254/latest/meta-data"
    assert first.error and "redirect" in first.error
    assert {r.path for r in receiver.requests} == {"/hooks"}


async def test_an_unknown_api_key_is_a_failed_attempt(receiver: Receiver, takan: Takan) -> None:
    outbox, _ = await takan()
    delivery = await enqueue(outbox, receiver.url("/hooks"), key="revoked-key")
    await eventually(lambda: len(outbox.get(delivery.delivery_id).attempts) >= 2)
    assert "no webhook secret for API key 'revoked-key'" in (outbox.get(delivery.delivery_id).attempts[0].error or "")
    assert state_of(outbox, delivery) == "pending" and receiver.requests == []


async def test_the_sender_wakes_on_enqueue(receiver: Receiver, takan: Takan) -> None:
    outbox, _ = await takan(base_delay_s=30, max_delay_s=60)
    await asyncio.sleep(0.1)  # idle: nothing pending, so nothing to wake up for
    started = time.monotonic()
    delivery = await enqueue(outbox, receiver.url("/hooks"))
    await eventually(lambda: state_of(outbox, delivery) == "delivered", timeout=1.0)
    assert time.monotonic() - started < 1.0


async def test_deliveries_to_one_url_go_out_in_enqueue_order(receiver: Receiver, takan: Takan) -> None:
    receiver.always["/a"] = Answer(500)
    outbox, _ = await takan()
    a1 = await enqueue(outbox, receiver.url("/a"), event="inspection.judged")
    a2 = await enqueue(outbox, receiver.url("/a"), event="inspection.reviewed")
    b1 = await enqueue(outbox, receiver.url("/b"))
    a3 = await enqueue(outbox, receiver.url("/a"), event="inspection.cancelled")
    # Another URL is not held back by /a's failures ...
    await eventually(lambda: state_of(outbox, b1) == "delivered")
    await eventually(lambda: len(outbox.get(a1.delivery_id).attempts) >= 3)
    # ... while /a's later deliveries wait for the first one.
    assert {r.delivery_id for r in receiver.on("/a")} == {a1.delivery_id}
    del receiver.always["/a"]
    await eventually(lambda: all(state_of(outbox, d) == "delivered" for d in (a1, a2, a3)))
    sent = [r.delivery_id for r in receiver.on("/a")]
    tries = len(outbox.get(a1.delivery_id).attempts)
    assert sent == [a1.delivery_id] * tries + [a2.delivery_id, a3.delivery_id]
    assert [r.headers["Takan-Event"] for r in receiver.on("/a")][tries - 1 :] == [
        "inspection.judged",
        "inspection.reviewed",
        "inspection.cancelled",
    ]


async def test_gives_up_after_the_window_then_an_admin_resends(receiver: Receiver, takan: Takan) -> None:
    receiver.always["/down"] = Answer(503)
    outbox, _ = await takan(give_up_after_s=0.4, base_delay_s=0.05, max_delay_s=0.1)
    delivery = await enqueue(outbox, receiver.url("/down"))
    await eventually(lambda: state_of(outbox, delivery) == "failed")
    failed = outbox.get(delivery.delivery_id)
    assert [d.delivery_id for d in (await outbox.page("failed"))[0]] == [delivery.delivery_id]
    assert outbox.pending() == [] and await outbox.page("pending") == ([], None) and outbox.count("delivered") == 0
    assert outbox.stats() == {"pending": 0, "delivered": 0, "failed": 1, "oldest_pending_age_s": None}
    assert len(failed.attempts) >= 2 and all(a.status == 503 for a in failed.attempts)
    # The last attempt came at least give_up_after_s after the first.
    assert unix_time(failed.attempts[-1].at) - unix_time(failed.attempts[0].at) >= 0.4
    view = failed.as_json()
    assert view["state"] == "failed" and view["failed_at"] and len(view["attempts"]) == len(failed.attempts)
    assert SECRETS["key-1"] not in json.dumps(view, ensure_ascii=False)

    del receiver.always["/down"]
    resent = await outbox.resend(delivery.delivery_id)
    assert resent.state == "pending" and resent.resends == 1
    with pytest.raises(Conflict):
        await outbox.resend(delivery.delivery_id)
    await eventually(lambda: state_of(outbox, delivery) == "delivered")
    done = outbox.get(delivery.delivery_id)
    assert done.body == delivery.body and len(done.attempts) == len(failed.attempts) + 1
    assert receiver.processed == [delivery.delivery_id]
    assert outbox.stats()["delivered"] == 1
    with pytest.raises(NotFound):
        await outbox.resend("dlv_unknown")


async def test_pending_age_is_reported(receiver: Receiver, takan: Takan) -> None:
    receiver.always["/down"] = Answer(500)
    outbox, _ = await takan()
    await enqueue(outbox, receiver.url("/down"))
    await asyncio.sleep(0.2)
    stats = outbox.stats()
    assert stats["pending"] == 1 and stats["oldest_pending_age_s"] >= 0.2


# ---- restarts ---------------------------------------------------------------------------


async def test_a_restart_mid_backoff_loses_nothing(receiver: Receiver, takan: Takan) -> None:
    receiver.script("/hooks", Answer(500))
    outbox, sender = await takan(base_delay_s=0.5, max_delay_s=0.5)
    delivery = await enqueue(outbox, receiver.url("/hooks"))
    await eventually(lambda: len(outbox.get(delivery.delivery_id).attempts) == 1)
    await sender.close()  # Takan stops while the delivery waits for its retry
    await outbox.close()

    outbox, _ = await takan(base_delay_s=0.5, max_delay_s=0.5)
    assert outbox.get(delivery.delivery_id).attempts[0].status == 500  # the attempt was stored
    await eventually(lambda: state_of(outbox, delivery) == "delivered")
    assert [r.delivery_id for r in receiver.requests] == [delivery.delivery_id] * 2
    assert receiver.processed == [delivery.delivery_id]


async def test_a_restart_during_a_post_sends_again_and_the_receiver_dedups(
    receiver: Receiver, takan: Takan
) -> None:
    # The receiver processes the delivery but Takan stops before it hears the 200.
    receiver.script("/hooks", Answer(200, sleep=1.0))
    outbox, sender = await takan()
    delivery = await enqueue(outbox, receiver.url("/hooks"))
    await eventually(lambda: len(receiver.requests) == 1)
    await sender.close()
    await outbox.close()

    outbox, _ = await takan()
    await eventually(lambda: state_of(outbox, delivery) == "delivered")
    assert [r.delivery_id for r in receiver.requests] == [delivery.delivery_id] * 2  # at least once
    assert receiver.processed == [delivery.delivery_id] and receiver.duplicates == 1  # once, deduplicated


# ---- life cycle -------------------------------------------------------------------------


async def test_start_and_close_are_idempotent(store: LocalObjectStore) -> None:
    outbox = Outbox(store)
    sender = WebhookSender(outbox, SECRETS.get)
    with pytest.raises(RuntimeError, match=r"outbox\.start\(\)"):
        await sender.start()
    with pytest.raises(RuntimeError, match=r"outbox\.start\(\)"):
        await enqueue(outbox, "https://approval.example/x")
    await outbox.start()
    await outbox.start()
    await sender.start()
    await sender.start()
    assert sender.running
    await sender.close()
    await sender.close()
    assert not sender.running
    with pytest.raises(RuntimeError, match="closed"):
        await sender.start()
    await outbox.close()
    await outbox.close()
    never_started = WebhookSender(outbox, SECRETS.get)
    await never_started.close()
    await never_started.close()
