"""Live room state: who is present, who holds a role, which node hosts a room, rate counters.

Everything here is rebuildable (clients reconnect and re-announce themselves), so losing it
costs a reconnect, never evidence. :class:`MemoryLiveState` serves a single process;
:class:`storage.redis_state.RedisLiveState` shares the same state between nodes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol, Sequence

__all__ = [
    "DEFAULT_PRESENCE_TTL_S",
    "MAX_NAME_LENGTH",
    "LiveState",
    "MemoryLiveState",
    "check_name",
    "encode_info",
    "window_index",
]

DEFAULT_PRESENCE_TTL_S = 60.0
MAX_NAME_LENGTH = 256


class LiveState(Protocol):
    """Live, rebuildable state of rooms, shared by every node that serves them.

    Room, participant, role, holder and node names are non-empty strings of at most
    :data:`MAX_NAME_LENGTH` characters without control characters (``ValueError``
    otherwise). A presence entry expires ``presence_ttl_s`` after its last
    ``set_presence``, so that participants of a node that died disappear: refresh it
    (call ``set_presence`` again) well within the TTL. ``start()`` must be awaited before
    use; ``start()`` and ``close()`` are idempotent.
    """

    async def start(self) -> None:
        """Connect to the backend."""
        ...

    async def close(self) -> None:
        """Disconnect; safe to call twice."""
        ...

    async def set_presence(self, room: str, participant_id: str, info: dict[str, Any]) -> None:
        """Record (or refresh) a participant's presence; ``info`` must be JSON-serialisable."""
        ...

    async def remove_presence(self, room: str, participant_id: str) -> None:
        """Forget a participant's presence; a missing one is not an error."""
        ...

    async def presence(self, room: str) -> dict[str, dict[str, Any]]:
        """Return the unexpired presence entries of a room, by participant id."""
        ...

    async def claim_role(self, room: str, role: str, holder: str) -> str | None:
        """Make ``holder`` the holder of ``role`` in ``room``, atomically.

        Returns the previous holder so that the caller can disconnect it, or None if there
        was none or it was ``holder`` itself.
        """
        ...

    async def release_role(self, room: str, role: str, holder: str) -> bool:
        """Release ``role`` only if ``holder`` still holds it; True if it did."""
        ...

    async def role_holder(self, room: str, role: str) -> str | None:
        """Return the current holder of ``role`` in ``room``, if any."""
        ...

    async def set_room_node(self, room: str, node_id: str) -> None:
        """Record which node hosts the room's media."""
        ...

    async def room_node(self, room: str) -> str | None:
        """Return the node hosting the room's media, if recorded."""
        ...

    async def take_room_node(self, room: str, node_id: str, expected: str | None) -> bool:
        """Make ``node_id`` the room's node if it still is ``expected`` (or ``node_id``), atomically.

        The compare-and-set that lets one node, and only one, take over the rooms of a node
        that died. When the room changes hands, its presence and role holders go too: they
        were the dead node's connections. True if ``node_id`` hosts the room now.
        """
        ...

    async def take_room(self, room: str, node_id: str, expected: str | None) -> int:
        """:meth:`take_room_node` for a node that does not hold the room (yet): the room's
        presence and role holders go even if the room already names ``node_id`` (they were
        an earlier lease's connections), and the room's epoch goes up by one.

        Returns the new epoch (the room's fencing token: every take-over changes it), or 0
        if the room names another node than ``expected``.
        """
        ...

    async def room_lease(self, room: str) -> tuple[str | None, int]:
        """The node hosting the room (None if none) and the room's epoch (0 if never taken)."""
        ...

    async def acquire(self, key: str, holder: str, ttl_s: float) -> bool:
        """Take the lock ``key`` for ``holder`` unless it is held (by anyone: it is not
        re-entrant); it lapses after ``ttl_s`` (a holder that died does not keep it).
        True if taken."""
        ...

    async def release(self, key: str, holder: str) -> None:
        """Let go of the lock ``key`` if ``holder`` still holds it."""
        ...

    async def publish(self, channel: str, message: str) -> None:
        """Tell every subscriber of ``channel`` (on every node, this one included)."""
        ...

    async def subscribe(self, channel: str) -> AsyncIterator[str]:
        """Subscribe now; the iterator yields what is published on ``channel`` from now on,
        until it is closed (``aclose()``)."""
        ...

    async def clear_room(self, room: str) -> None:
        """Forget everything about a room (presence, roles, node)."""
        ...

    async def put_value(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        """Keep a small JSON object under ``key`` for ``ttl_s`` seconds (replacing any)."""
        ...

    async def swap_value(self, key: str, value: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        """:meth:`put_value`, atomically returning the object it replaced (None if none or
        expired): a heartbeat learns whether its key lapsed or was overwritten."""
        ...

    async def get_value(self, key: str) -> dict[str, Any] | None:
        """The object under ``key``, or None if there is none or it expired."""
        ...

    async def delete_value(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is not there)."""
        ...

    async def push_lines(self, key: str, lines: Sequence[str], ttl_s: float) -> None:
        """Append ``lines`` to the list under ``key`` (created if absent), which then lives
        ``ttl_s`` seconds from now."""
        ...

    async def set_lines(self, key: str, lines: Sequence[str], ttl_s: float) -> None:
        """Replace the list under ``key`` with ``lines`` at once (no list if empty)."""
        ...

    async def lines(self, key: str) -> list[str]:
        """The list under ``key``, in order (empty if there is none or it expired)."""
        ...

    async def drop_lines(self, key: str, count: int) -> None:
        """Remove the first ``count`` entries of the list under ``key``."""
        ...

    async def hit(self, key: str, window_s: float) -> int:
        """Count one event for ``key`` in the current fixed window of ``window_s`` seconds.

        Returns the count so far in this window (1 for the first event). Windows are
        aligned to the Unix epoch, so all nodes (with synchronised clocks) share them.
        """
        ...


def check_name(what: str, value: str) -> str:
    """Return ``value`` if it is a usable room/participant/role/node name, else ValueError."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} {value[:40]!r}... is longer than {MAX_NAME_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"{what} {value!r} contains a control character")
    return value


def encode_info(info: dict[str, Any]) -> str:
    """Serialise presence info to JSON, or raise ValueError saying why it cannot be."""
    if not isinstance(info, dict):
        raise ValueError(f"presence info must be a dict, got {type(info).__name__}")
    try:
        return json.dumps(info, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"presence info is not JSON-serialisable: {exc}") from None


def window_index(window_s: float, now: float | None = None) -> tuple[int, int]:
    """Return ``(window_ms, index)`` of the fixed window containing ``now`` (Unix seconds)."""
    if not window_s > 0:
        raise ValueError(f"window_s must be positive, got {window_s!r}")
    window_ms = max(1, round(window_s * 1000))
    now_ms = int((time.time() if now is None else now) * 1000)
    return window_ms, now_ms // window_ms


class MemoryLiveState:
    """:class:`LiveState` in this process's memory: the single-node default.

    Values go through JSON like on Redis, so callers see the same copies and the same
    errors on both backends. ``close()`` forgets everything.
    """

    def __init__(self, presence_ttl_s: float = DEFAULT_PRESENCE_TTL_S) -> None:
        if not presence_ttl_s > 0:
            raise ValueError(f"presence_ttl_s must be positive, got {presence_ttl_s!r}")
        self._presence_ttl_s = presence_ttl_s
        self._started = False
        # room -> participant -> (monotonic deadline, info JSON)
        self._presence: dict[str, dict[str, tuple[float, str]]] = {}
        self._roles: dict[str, dict[str, str]] = {}
        self._nodes: dict[str, str] = {}
        self._epochs: dict[str, int] = {}  # kept by clear_room: an epoch never repeats
        # (key, window_ms) -> (window index, count)
        self._hits: dict[tuple[str, int], tuple[int, int]] = {}
        self._prune_hits_at = 1024
        # key -> (monotonic deadline, value JSON)
        self._values: dict[str, tuple[float, str]] = {}
        # lock key -> (monotonic deadline, holder)
        self._locks: dict[str, tuple[float, str]] = {}
        self._channels: dict[str, set[asyncio.Queue[str]]] = {}
        # key -> (monotonic deadline, entries)
        self._lists: dict[str, tuple[float, list[str]]] = {}

    async def start(self) -> None:
        """Nothing to connect to; present for the LiveState lifecycle."""
        self._started = True

    async def close(self) -> None:
        """Forget all state."""
        self._started = False
        self._presence.clear()
        self._roles.clear()
        self._nodes.clear()
        self._hits.clear()
        self._values.clear()
        self._locks.clear()
        self._lists.clear()

    def _check(self, room: str) -> str:
        if not self._started:
            raise RuntimeError("MemoryLiveState is not started: await state.start() first")
        return check_name("room", room)

    async def set_presence(self, room: str, participant_id: str, info: dict[str, Any]) -> None:
        """Record a participant's presence for ``presence_ttl_s`` seconds."""
        self._check(room)
        check_name("participant id", participant_id)
        encoded = encode_info(info)
        now = time.monotonic()
        entries = self._presence.setdefault(room, {})
        for pid in [pid for pid, (deadline, _) in entries.items() if deadline <= now]:
            del entries[pid]
        entries[participant_id] = (now + self._presence_ttl_s, encoded)

    async def remove_presence(self, room: str, participant_id: str) -> None:
        """Forget a participant's presence."""
        self._check(room)
        check_name("participant id", participant_id)
        entries = self._presence.get(room)
        if entries is not None:
            entries.pop(participant_id, None)
            if not entries:
                del self._presence[room]

    async def presence(self, room: str) -> dict[str, dict[str, Any]]:
        """Return copies of the room's unexpired presence entries."""
        self._check(room)
        now = time.monotonic()
        return {
            pid: json.loads(encoded)
            for pid, (deadline, encoded) in self._presence.get(room, {}).items()
            if deadline > now
        }

    async def claim_role(self, room: str, role: str, holder: str) -> str | None:
        """Make ``holder`` hold ``role``; return the previous other holder, if any."""
        self._check(room)
        check_name("role", role)
        check_name("holder", holder)
        roles = self._roles.setdefault(room, {})
        previous = roles.get(role)
        roles[role] = holder
        return None if previous == holder else previous

    async def release_role(self, room: str, role: str, holder: str) -> bool:
        """Release ``role`` if ``holder`` still holds it."""
        self._check(room)
        check_name("role", role)
        check_name("holder", holder)
        roles = self._roles.get(room, {})
        if roles.get(role) != holder:
            return False
        del roles[role]
        return True

    async def role_holder(self, room: str, role: str) -> str | None:
        """Return the holder of ``role``, if any."""
        self._check(room)
        check_name("role", role)
        return self._roles.get(room, {}).get(role)

    async def set_room_node(self, room: str, node_id: str) -> None:
        """Record the node hosting the room."""
        self._check(room)
        self._nodes[room] = check_name("node id", node_id)

    async def room_node(self, room: str) -> str | None:
        """Return the node hosting the room, if recorded."""
        self._check(room)
        return self._nodes.get(room)

    async def take_room_node(self, room: str, node_id: str, expected: str | None) -> bool:
        """Host the room on ``node_id`` if its node is still ``expected``; see LiveState."""
        self._check(room)
        check_name("node id", node_id)
        current = self._nodes.get(room)
        if current not in (None, expected, node_id):
            return False
        if current is not None and current != node_id:
            self._presence.pop(room, None)
            self._roles.pop(room, None)
        self._nodes[room] = node_id
        self._epochs[room] = self._epochs.get(room, 0) + 1
        return True

    async def take_room(self, room: str, node_id: str, expected: str | None) -> int:
        """Take the room afresh if its node is still ``expected``; see LiveState."""
        self._check(room)
        check_name("node id", node_id)
        current = self._nodes.get(room)
        if current not in (None, expected, node_id):
            return 0
        self._presence.pop(room, None)
        self._roles.pop(room, None)
        self._nodes[room] = node_id
        self._epochs[room] = epoch = self._epochs.get(room, 0) + 1
        return epoch

    async def room_lease(self, room: str) -> tuple[str | None, int]:
        """The room's node and epoch."""
        self._check(room)
        return self._nodes.get(room), self._epochs.get(room, 0)

    async def clear_room(self, room: str) -> None:
        """Forget the room's presence, roles and node."""
        self._check(room)
        self._presence.pop(room, None)
        self._roles.pop(room, None)
        self._nodes.pop(room, None)

    async def acquire(self, key: str, holder: str, ttl_s: float) -> bool:
        """Take the lock ``key`` for ``holder`` for ``ttl_s`` seconds unless it is held."""
        self._check(key)
        check_name("holder", holder)
        now = time.monotonic()
        current = self._locks.get(key)
        if current is not None and current[0] > now:
            return False
        self._locks[key] = (now + ttl_s, holder)
        return True

    async def release(self, key: str, holder: str) -> None:
        """Let go of ``key`` if ``holder`` holds it."""
        self._check(key)
        if self._locks.get(key, (0.0, ""))[1] == holder:
            del self._locks[key]

    async def publish(self, channel: str, message: str) -> None:
        """Hand ``message`` to this process's subscribers of ``channel`` (the only node)."""
        self._check(channel)
        for queue in list(self._channels.get(channel, ())):
            queue.put_nowait(message)

    async def subscribe(self, channel: str) -> AsyncIterator[str]:
        """Subscribe now; the iterator yields what is published on ``channel`` until closed."""
        self._check(channel)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._channels.setdefault(channel, set()).add(queue)
        return self._messages(channel, queue)

    async def _messages(self, channel: str, queue: "asyncio.Queue[str]") -> AsyncIterator[str]:
        try:
            while True:
                yield await queue.get()
        finally:
            self._channels.get(channel, set()).discard(queue)

    async def put_value(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        """Keep ``value`` (as JSON) under ``key`` for ``ttl_s`` seconds."""
        self._check(key)
        check_name("value key", key)
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")
        now = time.monotonic()
        self._values[key] = (now + ttl_s, encode_info(value))
        if len(self._values) > 1024:
            # expired values are swept when the map grows, so it stays bounded
            self._values = {k: v for k, v in self._values.items() if v[0] > now}

    async def swap_value(self, key: str, value: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        """Keep ``value`` under ``key``; return what it replaced."""
        previous = await self.get_value(key)
        await self.put_value(key, value, ttl_s)
        return previous

    async def get_value(self, key: str) -> dict[str, Any] | None:
        """The object under ``key``, or None."""
        self._check(key)
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._values[key]
            return None
        return dict(json.loads(entry[1]))

    async def delete_value(self, key: str) -> None:
        """Forget ``key``."""
        self._check(key)
        self._values.pop(key, None)

    def _list(self, key: str) -> list[str]:
        self._check(key)
        entry = self._lists.get(key)
        if entry is None or entry[0] <= time.monotonic():
            self._lists.pop(key, None)
            return []
        return entry[1]

    async def push_lines(self, key: str, lines: Sequence[str], ttl_s: float) -> None:
        """Append ``lines`` to the list under ``key``; it lives ``ttl_s`` seconds from now."""
        check_name("list key", key)
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")
        entries = self._list(key) + [str(line) for line in lines]
        if entries:
            self._lists[key] = (time.monotonic() + ttl_s, entries)

    async def set_lines(self, key: str, lines: Sequence[str], ttl_s: float) -> None:
        """Replace the list under ``key`` with ``lines`` (no list if empty)."""
        check_name("list key", key)
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")
        self._check(key)
        if lines:
            self._lists[key] = (time.monotonic() + ttl_s, [str(line) for line in lines])
        else:
            self._lists.pop(key, None)

    async def lines(self, key: str) -> list[str]:
        """The list under ``key`` (a copy), in order."""
        return list(self._list(key))

    async def drop_lines(self, key: str, count: int) -> None:
        """Remove the first ``count`` entries of the list under ``key``."""
        entries = self._list(key)
        if count <= 0 or not entries:
            return
        del entries[:count]
        if not entries:
            self._lists.pop(key, None)

    async def hit(self, key: str, window_s: float) -> int:
        """Count an event for ``key`` in the current ``window_s`` window."""
        if not self._started:
            raise RuntimeError("MemoryLiveState is not started: await state.start() first")
        check_name("rate key", key)
        window_ms, index = window_index(window_s)
        slot = (key, window_ms)
        current_index, count = self._hits.get(slot, (index, 0))
        count = count + 1 if current_index == index else 1
        self._hits[slot] = (index, count)
        if len(self._hits) > self._prune_hits_at:
            self._prune_hits()
        return count

    def _prune_hits(self) -> None:
        # Counters of past windows are dead weight; drop them in one sweep whose cost is
        # amortised by doubling the threshold.
        now = time.time()
        self._hits = {
            slot: value
            for slot, value in self._hits.items()
            if value[0] >= window_index(slot[1] / 1000, now)[1]
        }
        self._prune_hits_at = max(1024, 2 * len(self._hits))
