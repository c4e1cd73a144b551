"""JSON from strangers: parsed with bounded nesting, or refused with a clear reason.

Python's parser recurses: a 2 KB body of 1,000 nested arrays raises RecursionError deep
inside it, and a value nested a few hundred levels deep parses but then breaks whoever
walks it (``json.dumps``, the canonical form of the evidence log). Every JSON that comes
from outside (REST bodies, Socket.IO payloads, identity providers' answers) goes through
here: at most :data:`MAX_DEPTH` levels of arrays and objects.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_DEPTH", "JsonRefused", "depth_of", "loads", "shallow"]

_CONTAINERS = (dict, list, tuple)

#: Nesting depth accepted: a contract body needs 3-4; signature strokes 4.
MAX_DEPTH = 32


class JsonRefused(ValueError):
    """Not JSON, not UTF-8, or nested too deeply; the message says which, for the caller."""


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests arrays and objects (iteratively; stops past ``limit``)."""
    if not isinstance(value, _CONTAINERS):
        return 0
    # level by level, keeping only each level's containers (most values are shallow)
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return depth
        inner: list[Any] = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, _CONTAINERS):
                    inner.append(child)
        level = inner
    return depth


def check_depth(value: Any, what: str = "the JSON", limit: int = MAX_DEPTH) -> Any:
    """``value`` if it nests at most ``limit`` levels, else :class:`JsonRefused`."""
    if depth_of(value, limit) > limit:
        raise JsonRefused(f"{what} nests arrays or objects more than {limit} levels deep")
    return value


def loads(raw: bytes | str, what: str = "the body", limit: int = MAX_DEPTH) -> Any:
    """Parse ``raw`` (UTF-8) as JSON nested at most ``limit`` levels."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError:
        raise JsonRefused(f"{what} is not UTF-8") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonRefused(f"{what} nests arrays or objects more than {limit} levels deep") from None
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if shallow(text, limit):
        return value
    return check_depth(value, what, limit)


def shallow(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON ``text`` surely nests at most ``limit`` levels: it opens at most
    ``limit`` arrays and objects in all (brackets inside strings only count too many).
    Two C-speed counts instead of walking the parsed value, for the usual small message."""
    return text.count("[") + text.count("{") <= limit
