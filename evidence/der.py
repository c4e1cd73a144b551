"""DER, the few ASN.1 shapes RFC 3161 needs: write a request, read a token.

Not a general ASN.1 library: definite lengths only (DER has no others), no schema. A
:class:`Node` is one TLV of a byte string, and keeps the exact bytes it was read from, so a
verifier can hash or check a signature over precisely what was signed (``Node.der``). A
malformed input raises :class:`DerError`, never an ``IndexError`` from deep inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

__all__ = [
    "DerError", "Node", "read", "tlv", "integer", "oid_text", "BOOLEAN", "INTEGER", "BIT_STRING", "OCTET_STRING",
    "NULL", "OID", "SEQUENCE", "SET", "GENERALIZED_TIME",
]

BOOLEAN, INTEGER, BIT_STRING, OCTET_STRING, NULL, OID = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
SEQUENCE, SET, GENERALIZED_TIME = 0x30, 0x31, 0x18


class DerError(ValueError):
    """The bytes are not the DER that was expected; the message says where."""


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, body: bytes) -> bytes:
    """The DER element ``tag`` with content ``body``."""
    return bytes([tag]) + _length(len(body)) + body


def integer(value: int) -> bytes:
    """A DER INTEGER (non-negative ``value``)."""
    return tlv(INTEGER, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


@dataclass(frozen=True)
class Node:
    """One element: its tag and where its header and content lie in ``data``."""

    data: bytes
    tag: int
    start: int  #: the tag byte
    body: int  #: the first content byte
    end: int  #: one past the last content byte

    @property
    def der(self) -> bytes:
        """The whole element, header and content, exactly as read."""
        return self.data[self.start : self.end]

    @property
    def content(self) -> bytes:
        return self.data[self.body : self.end]

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list["Node"]:
        """The elements inside a constructed element, in order."""
        if not self.constructed:
            raise DerError(f"tag 0x{self.tag:02x} at byte {self.start} is primitive; it has no elements inside")
        return list(self._iter())

    def _iter(self) -> Iterator["Node"]:
        at = self.body
        while at < self.end:
            child = _node(self.data, at, self.end)
            yield child
            at = child.end

    def child(self, index: int, tag: int | None = None) -> "Node":
        """The ``index``-th element inside, checked to have ``tag`` if given."""
        children = self.children()
        if index >= len(children):
            raise DerError(f"element at byte {self.start} has {len(children)} elements, not {index + 1}")
        return children[index].expect(tag) if tag is not None else children[index]

    def expect(self, tag: int) -> "Node":
        if self.tag != tag:
            raise DerError(f"expected tag 0x{tag:02x} at byte {self.start}, found 0x{self.tag:02x}")
        return self

    def as_int(self) -> int:
        self.expect(INTEGER)
        return int.from_bytes(self.content, "big", signed=True)

    def as_oid(self) -> str:
        return oid_text(self.expect(OID).content)


def _node(data: bytes, at: int, limit: int) -> Node:
    if at + 2 > limit:
        raise DerError(f"truncated element at byte {at}")
    tag, first = data[at], data[at + 1]
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-byte tag at byte {at} (not used by RFC 3161)")
    if first < 0x80:
        body, length = at + 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise DerError(f"indefinite or oversized length at byte {at}: not DER")
        if at + 2 + count > limit:
            raise DerError(f"truncated length at byte {at}")
        body, length = at + 2 + count, int.from_bytes(data[at + 2 : at + 2 + count], "big")
    if body + length > limit:
        raise DerError(f"element at byte {at} runs past the end ({body + length} > {limit})")
    return Node(data, tag, at, body, body + length)


def read(data: bytes, at: int = 0) -> Node:
    """The element at ``at`` of ``data`` (the whole input, for a top-level structure)."""
    return _node(data, at, len(data))


def oid_text(raw: bytes) -> str:
    """Dotted text of an OBJECT IDENTIFIER's content bytes."""
    if not raw:
        raise DerError("empty OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])
