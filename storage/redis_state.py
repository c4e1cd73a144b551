"""Live room state in Redis, shared by every Takan node (see :class:`storage.livestate.LiveState`).

Layout, under ``prefix`` (default ``takan:``)::

    room:<room>:presence            hash    participant id -> info JSON
    room:<room>:presence_deadlines  zset    participant id -> expiry (Redis time, ms)
    room:<room>:roles               hash    role -> holder
    room:<room>:node                string  node id (taken over by compare-and-set)
    room:<room>:epoch               string  counter, up by one at every take (the room's fencing token)
    value:<key>                     string  small JSON values with a TTL (node heartbeats: value:node:<id>)
    lines:<key>                     list    lines with a TTL (a log's acknowledged, unshipped tail: evidence/tail.py)
    lock:<key>                      string  holder of a short cross-node lock (SET NX PX)
    channel:<name>                  pub/sub channel (records: ids of inspection records just saved)
    rate:<window_ms>:<key>:<index>  string  counter of one fixed window

Presence entries expire ``presence_ttl_s`` (default 60 s) after their last ``set_presence``
using Redis's clock, so a dead node's participants vanish without anyone cleaning up. The
roles hash and the node key expire ``room_ttl_s`` (default 24 h) after their last write, so
abandoned rooms do not accumulate. Rate counters expire at the end of their window.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Sequence

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript

from .livestate import DEFAULT_PRESENCE_TTL_S, check_name, encode_info, window_index
from .objects import StorageUnavailable

__all__ = ["RedisLiveState"]

logger = logging.getLogger(__name__)

# Scripts read Redis's clock so that every node agrees on when a presence entry expires.
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: presence hash, deadlines zset; ARGV: participant id, info JSON, ttl ms
_SET_PRESENCE = _NOW_MS + """
local ttl = tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, pid in ipairs(expired) do
  redis.call('HDEL', KEYS[1], pid)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""

# KEYS: presence hash, deadlines zset; returns [pid, info, pid, info, ...] of live entries
_PRESENCE = _NOW_MS + """
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
local out = {}
for _, pid in ipairs(live) do
  local info = redis.call('HGET', KEYS[1], pid)
  if info then
    out[#out + 1] = pid
    out[#out + 1] = info
  end
end
return out
"""

# KEYS: roles hash; ARGV: role, holder, room ttl ms; returns the previous other holder or nil
_CLAIM_ROLE = """
local previous = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if previous == ARGV[2] then
  return false
end
return previous
"""

# KEYS: roles hash; ARGV: role, holder; returns 1 if released
_RELEASE_ROLE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


# KEYS: node, presence, presence deadlines, roles, epoch; ARGV: node id, expected node ('' for
# none), room ttl ms. A change of hands drops the old node's presence and role holders.
_TAKE_ROOM_NODE = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] and current ~= ARGV[2] then
  return 0
end
if current and current ~= ARGV[1] then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('INCR', KEYS[5])
redis.call('PEXPIRE', KEYS[5], ARGV[3])
return 1
"""

# KEYS: node, presence, presence deadlines, roles, epoch; ARGV: node id, expected node
# ('' for none), room ttl ms. A fresh take by a node that does not hold the room: whoever's
# presence and role holders were there go (even this node's own, from an earlier lease) and
# the epoch goes up; returns the new epoch, or 0 if the room names another node.
_TAKE_ROOM = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] and current ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
local epoch = redis.call('INCR', KEYS[5])
redis.call('PEXPIRE', KEYS[5], ARGV[3])
return epoch
"""

# KEYS: lock; ARGV: holder
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLiveState:
    """:class:`storage.livestate.LiveState` in Redis at ``url`` (``redis://host:port/db``).

    Every key starts with ``prefix``, so several deployments (or test runs) can share one
    Redis. Claims and releases are atomic (Lua scripts). An unreachable Redis raises
    :class:`storage.objects.StorageUnavailable`, within about ``2 * timeout_s``.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "takan:",
        *,
        presence_ttl_s: float = DEFAULT_PRESENCE_TTL_S,
        room_ttl_s: float = 24 * 3600.0,
        timeout_s: float = 5.0,
    ) -> None:
        if not presence_ttl_s > 0 or not room_ttl_s > 0:
            raise ValueError(
                f"TTLs must be positive, got presence_ttl_s={presence_ttl_s!r}, "
                f"room_ttl_s={room_ttl_s!r}"
            )
        self._url = url
        self._prefix = prefix
        self._presence_ttl_ms = max(1, round(presence_ttl_s * 1000))
        self._room_ttl_ms = max(1, round(room_ttl_s * 1000))
        self._timeout_s = timeout_s
        self._client: redis.asyncio.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    @property
    def prefix(self) -> str:
        """The prefix of every key this state writes."""
        return self._prefix

    async def start(self) -> None:
        """Connect and check that Redis answers; raise StorageUnavailable if it does not."""
        if self._client is not None:
            return
        client = redis.asyncio.Redis.from_url(
            self._url,
            decode_responses=True,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            # One quick retry: a dead Redis must be reported in seconds, not after
            # redis-py's default backoff.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), 1),
        )
        try:
            with self._translate():
                await client.ping()
        except BaseException:
            await client.aclose()
            raise
        self._client = client
        self._scripts = {
            "set_presence": client.register_script(_SET_PRESENCE),
            "presence": client.register_script(_PRESENCE),
            "claim_role": client.register_script(_CLAIM_ROLE),
            "release_role": client.register_script(_RELEASE_ROLE),
            "take_room_node": client.register_script(_TAKE_ROOM_NODE),
            "take_room": client.register_script(_TAKE_ROOM),
            "release": client.register_script(_RELEASE),
        }
        logger.info("live state in Redis %s under prefix %r", self._safe_url(), self._prefix)

    async def close(self) -> None:
        """Close the connection pool; safe to call twice."""
        client, self._client = self._client, None
        self._scripts = {}
        if client is not None:
            await client.aclose()

    def _safe_url(self) -> str:
        # Never log a password embedded in the URL.
        scheme, sep, rest = self._url.partition("://")
        return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else self._url

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StorageUnavailable(f"Redis {self._safe_url()} unreachable: {exc}") from exc

    def _require(self) -> redis.asyncio.Redis:
        if self._client is None:
            raise RuntimeError("RedisLiveState is not started: await state.start() first")
        return self._client

    def _room_key(self, room: str, part: str) -> str:
        return f"{self._prefix}room:{check_name('room', room)}:{part}"

    async def set_presence(self, room: str, participant_id: str, info: dict[str, Any]) -> None:
        """Record a participant's presence for ``presence_ttl_s`` seconds."""
        self._require()
        check_name("participant id", participant_id)
        encoded = encode_info(info)
        keys = [self._room_key(room, "presence"), self._room_key(room, "presence_deadlines")]
        with self._translate():
            await self._scripts["set_presence"](
                keys=keys, args=[participant_id, encoded, self._presence_ttl_ms]
            )

    async def remove_presence(self, room: str, participant_id: str) -> None:
        """Forget a participant's presence."""
        client = self._require()
        check_name("participant id", participant_id)
        async with client.pipeline(transaction=True) as pipe:
            pipe.hdel(self._room_key(room, "presence"), participant_id)
            pipe.zrem(self._room_key(room, "presence_deadlines"), participant_id)
            with self._translate():
                await pipe.execute()

    async def presence(self, room: str) -> dict[str, dict[str, Any]]:
        """Return the room's unexpired presence entries."""
        self._require()
        keys = [self._room_key(room, "presence"), self._room_key(room, "presence_deadlines")]
        with self._translate():
            flat = await self._scripts["presence"](keys=keys)
        return {flat[i]: json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def claim_role(self, room: str, role: str, holder: str) -> str | None:
        """Make ``holder`` hold ``role`` atomically; return the previous other holder."""
        self._require()
        check_name("role", role)
        check_name("holder", holder)
        with self._translate():
            previous = await self._scripts["claim_role"](
                keys=[self._room_key(room, "roles")], args=[role, holder, self._room_ttl_ms]
            )
        return str(previous) if previous is not None else None

    async def release_role(self, room: str, role: str, holder: str) -> bool:
        """Release ``role`` if ``holder`` still holds it (compare-and-delete)."""
        self._require()
        check_name("role", role)
        check_name("holder", holder)
        with self._translate():
            released = await self._scripts["release_role"](
                keys=[self._room_key(room, "roles")], args=[role, holder]
            )
        return bool(released)

    async def role_holder(self, room: str, role: str) -> str | None:
        """Return the holder of ``role``, if any."""
        client = self._require()
        check_name("role", role)
        with self._translate():
            holder = await client.hget(self._room_key(room, "roles"), role)
        return str(holder) if holder is not None else None

    async def set_room_node(self, room: str, node_id: str) -> None:
        """Record the node hosting the room (expires ``room_ttl_s`` after the last set)."""
        client = self._require()
        check_name("node id", node_id)
        with self._translate():
            await client.set(self._room_key(room, "node"), node_id, px=self._room_ttl_ms)

    async def room_node(self, room: str) -> str | None:
        """Return the node hosting the room, if recorded."""
        client = self._require()
        with self._translate():
            node = await client.get(self._room_key(room, "node"))
        return str(node) if node is not None else None

    async def take_room_node(self, room: str, node_id: str, expected: str | None) -> bool:
        """Host the room on ``node_id`` if its node is still ``expected`` (compare-and-set)."""
        self._require()
        check_name("node id", node_id)
        keys = [self._room_key(room, part) for part in ("node", "presence", "presence_deadlines", "roles", "epoch")]
        with self._translate():
            taken = await self._scripts["take_room_node"](keys=keys, args=[node_id, expected or "", self._room_ttl_ms])
        return bool(taken)

    async def take_room(self, room: str, node_id: str, expected: str | None) -> int:
        """Take the room afresh if its node is still ``expected``; the new epoch, or 0."""
        self._require()
        check_name("node id", node_id)
        keys = [self._room_key(room, part) for part in ("node", "presence", "presence_deadlines", "roles", "epoch")]
        with self._translate():
            epoch = await self._scripts["take_room"](keys=keys, args=[node_id, expected or "", self._room_ttl_ms])
        return int(epoch)

    async def room_lease(self, room: str) -> tuple[str | None, int]:
        """The room's node and epoch, in one round trip."""
        client = self._require()
        with self._translate():
            node, epoch = await client.mget(self._room_key(room, "node"), self._room_key(room, "epoch"))
        return (None if node is None else str(node)), int(epoch or 0)

    async def acquire(self, key: str, holder: str, ttl_s: float) -> bool:
        """``SET NX PX``: take the lock ``key`` for ``ttl_s`` seconds unless it is held."""
        client = self._require()
        check_name("lock key", key)
        check_name("holder", holder)
        with self._translate():
            taken = await client.set(f"{self._prefix}lock:{key}", holder, nx=True, px=max(1, round(ttl_s * 1000)))
        return bool(taken)

    async def release(self, key: str, holder: str) -> None:
        """Delete the lock ``key`` if ``holder`` still holds it (compare-and-delete)."""
        self._require()
        with self._translate():
            await self._scripts["release"](keys=[f"{self._prefix}lock:{key}"], args=[holder])

    async def publish(self, channel: str, message: str) -> None:
        """PUBLISH on ``<prefix>channel:<channel>``."""
        client = self._require()
        with self._translate():
            await client.publish(f"{self._prefix}channel:{check_name('channel', channel)}", message)

    async def subscribe(self, channel: str) -> AsyncIterator[str]:
        """SUBSCRIBE now, on a connection of its own; the iterator yields the messages."""
        client = self._require()
        pubsub = client.pubsub()
        try:
            with self._translate():
                await pubsub.subscribe(f"{self._prefix}channel:{check_name('channel', channel)}")
        except BaseException:
            # called through Any: redis-py 8.1 leaves aclose untyped, 8.2 types it
            close: Any = pubsub.aclose
            await close()
            raise
        return self._messages(pubsub)

    async def _messages(self, pubsub: Any) -> AsyncIterator[str]:
        try:
            while True:
                # a bounded wait, not listen(): the pool's socket timeout would end an idle listen
                with self._translate():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    yield str(message["data"])
        finally:
            await pubsub.aclose()

    async def clear_room(self, room: str) -> None:
        """Delete the room's presence, roles and node keys."""
        client = self._require()
        keys = [
            self._room_key(room, part)
            for part in ("presence", "presence_deadlines", "roles", "node")
        ]
        with self._translate():
            await client.delete(*keys)

    async def put_value(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        """Keep ``value`` (as JSON) under ``key`` for ``ttl_s`` seconds; Redis expires it."""
        client = self._require()
        check_name("value key", key)
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")
        with self._translate():
            await client.set(f"{self._prefix}value:{key}", encode_info(value), px=max(1, round(ttl_s * 1000)))

    async def swap_value(self, key: str, value: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        """``SET ... PX ... GET``: keep ``value`` under ``key``, return what it replaced."""
        client = self._require()
        check_name("value key", key)
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")
        with self._translate():
            raw = await client.set(f"{self._prefix}value:{key}", encode_info(value), px=max(1, round(ttl_s * 1000)), get=True)
        return None if raw is None else dict(json.loads(str(raw)))

    async def get_value(self, key: str) -> dict[str, Any] | None:
        """The object under ``key``, or None."""
        client = self._require()
        with self._translate():
            raw = await client.get(f"{self._prefix}value:{key}")
        return None if raw is None else dict(json.loads(raw))

    async def delete_value(self, key: str) -> None:
        """Forget ``key``."""
        client = self._require()
        with self._translate():
            await client.delete(f"{self._prefix}value:{key}")

    async def push_lines(self, key: str, lines: Sequence[str], ttl_s: float) -> None:
        """``RPUSH`` and ``PEXPIRE`` in one transaction."""
        client = self._require()
        check_name("list key", key)
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")
        if not lines:
            return
        name = f"{self._prefix}lines:{key}"
        async with client.pipeline(transaction=True) as pipe:
            pipe.rpush(name, *lines)
            pipe.pexpire(name, max(1, round(ttl_s * 1000)))
            with self._translate():
                await pipe.execute()

    async def set_lines(self, key: str, lines: Sequence[str], ttl_s: float) -> None:
        """``DEL``, ``RPUSH`` and ``PEXPIRE`` in one transaction."""
        client = self._require()
        check_name("list key", key)
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")
        name = f"{self._prefix}lines:{key}"
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(name)
            if lines:
                pipe.rpush(name, *lines)
                pipe.pexpire(name, max(1, round(ttl_s * 1000)))
            with self._translate():
                await pipe.execute()

    async def lines(self, key: str) -> list[str]:
        """``LRANGE 0 -1``."""
        client = self._require()
        with self._translate():
            return [str(line) for line in await client.lrange(f"{self._prefix}lines:{key}", 0, -1)]

    async def drop_lines(self, key: str, count: int) -> None:
        """``LTRIM count -1`` (Redis deletes a list left empty)."""
        client = self._require()
        if count <= 0:
            return
        with self._translate():
            await client.ltrim(f"{self._prefix}lines:{key}", count, -1)

    async def hit(self, key: str, window_s: float) -> int:
        """Count an event for ``key`` in the current ``window_s`` window (epoch-aligned)."""
        client = self._require()
        check_name("rate key", key)
        window_ms, index = window_index(window_s)
        counter = f"{self._prefix}rate:{window_ms}:{key}:{index}"
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr(counter)
            # A second past the window's end absorbs clock skew between this node and Redis
            # (an expiry already in Redis's past would delete the counter at once).
            pipe.pexpireat(counter, (index + 1) * window_ms + 1000)
            with self._translate():
                count, _ = await pipe.execute()
        return int(count)
