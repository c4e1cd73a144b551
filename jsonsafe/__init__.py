"""JSON from strangers: parsed with bounded nesting, or refused with a clear reason.

Python's parser recurses: a 2 KB body of 1,000 nested arrays raises RecursionError deep
inside it, and a value nested a few hundred levels deep parses but then breaks whoever
walks it (``json.dumps``, the canonical form of the evidence log). Every JSON that comes
from outside (REST bodies, Socket.IO payloads, identity providers' answers) goes through
here: at most :data:`MAX_DEPTH` levels of arrays and objects.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

__all__ = ["MAX_DEPTH", "JsonRefused", "check_unicode", "depth_of", "loads", "lone_surrogate_at", "shallow"]

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
    except ValueError:
        # int() refuses more than sys.get_int_max_str_digits() digits (4,300 by default)
        raise JsonRefused(f"{what} holds an integer too long to read; send numbers of at most 4,300 digits") from None
    if shallow(text, limit):
        return value
    return check_depth(value, what, limit)


def shallow(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON ``text`` surely nests at most ``limit`` levels: it opens at most
    ``limit`` arrays and objects in all (brackets inside strings only count too many).
    Two C-speed counts instead of walking the parsed value, for the usual small message."""
    return text.count("[") + text.count("{") <= limit


#: A lone surrogate can only come from a ``\uD800``-``\uDFFF`` escape (UTF-8 has none), so a
#: text without one needs no walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def lone_surrogate_at(value: Any, text: str | bytes | None = None) -> Optional[str]:
    """The JSON path (``applicant.name``, ``checkpoints[0].title``, ``$`` for the value
    itself) of the first key or string in ``value`` that holds an unpaired UTF-16 surrogate,
    or None. ``text``, the JSON ``value`` was parsed from, skips the walk when it has no
    surrogate escape (the usual case). A surrogate in a key is shown escaped."""
    if isinstance(text, str) and not _SURROGATE_ESCAPE.search(text):
        return None
    if isinstance(text, bytes) and not _SURROGATE_ESCAPE_BYTES.search(text):
        return None
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return path
            continue
        if isinstance(item, dict):
            children = []
            for key, child in item.items():
                shown = key.encode("utf-8", "backslashreplace").decode("utf-8")
                child_path = shown if path == "$" else f"{path}.{shown}"
                if _SURROGATE.search(key):
                    return child_path
                children.append((child, child_path))
        elif isinstance(item, (list, tuple)):
            children = [(child, f"{path}[{i}]") for i, child in enumerate(item)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def check_unicode(value: Any, what: str = "the body", text: str | bytes | None = None) -> Any:
    """``value`` if every key and string in it is valid Unicode, else :class:`JsonRefused`.

    JSON lets a ``\\u`` escape name half of a surrogate pair alone; Python parses it into a
    ``str`` that cannot be encoded to UTF-8, so it breaks whoever stores or signs it later,
    after the request may already have changed something. Refused at the door instead."""
    path = lone_surrogate_at(value, text)
    if path is not None:
        raise JsonRefused(
            f"{what} is not valid Unicode: {path} holds an unpaired UTF-16 surrogate (a \\uD800-\\uDFFF "
            "escape without its other half); send whole characters, as UTF-8 or as a surrogate pair"
        )
    return value
