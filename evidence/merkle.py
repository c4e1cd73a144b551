"""The Merkle tree hash of RFC 9162 (Certificate Transparency 2.0), section 2.1.1."""

from __future__ import annotations

import hashlib
from typing import Sequence


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the leaf inputs (not their hashes); the empty tree is SHA-256('')."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [leaf_hash(leaf) for leaf in leaves]
    return _root(level)


def _root(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    split = 1
    while split * 2 < len(hashes):
        split *= 2
    return node_hash(_root(hashes[:split]), _root(hashes[split:]))
