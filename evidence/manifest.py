"""Sealing an inspection's evidence: manifest.json and its Ed25519 signature.

Format (docs/evidence.md): RFC 8785 canonical JSON listing every object under the
inspection's prefix (key relative to the prefix, kind, size, sha256, time span), the
event log's head, an RFC 9162 Merkle root whose leaves are the canonical JSON of the
object entries in listed order, the verdict and the rules version.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Optional

from storage.objects import ObjectStore

from .canonical import canonical_json
from .chainlog import rfc3339_ms, utc_now
from .merkle import tree_hash
from .signing import SigningKeys
from .sm2 import DEFAULT_ID, sm3_hex

logger = logging.getLogger(__name__)

FORMAT = "takan-evidence/2"
FORMATS = ("takan-evidence/1", FORMAT)  #: what ``verify`` reads
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
SM2_SIGNATURE = "manifest.sm2.sig"
TIMESTAMP = "manifest.tsr"
EVENTS = "events.jsonl"
EVENT_CHUNKS = "events/"
SEALS = (MANIFEST, SIGNATURE, SM2_SIGNATURE, TIMESTAMP)


def prefix_of(inspection_id: str) -> str:
    return f"inspections/{inspection_id}/"


def kind_of(relative_key: str) -> str:
    if relative_key == EVENTS or relative_key.startswith(EVENT_CHUNKS):
        return "events"
    top = relative_key.split("/", 1)[0]
    return {"media": "media", "stills": "still", "photos": "photo", "signatures": "signature", "timestamps": "timestamp"}.get(top, "other")


def objects_from_events(events: bytes) -> list[dict[str, Any]]:
    """The object entries of a single-object log (format 1): its blobs plus ``events.jsonl``."""
    return objects_from_log([(EVENTS, events)])


def objects_from_log(segments: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """The manifest's object entries: every blob an event recorded, plus the log's pieces.

    ``segments`` are the log's stored pieces (relative key, bytes) in order. Built from the
    log rather than a listing of the store, so sealing reads nothing back and works while a
    storage outage is being spooled; ``verify`` recomputes every hash.
    """
    latest: dict[str, dict[str, Any]] = {}
    for _, piece in segments:
        for line in piece.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            data = entry.get("data") or {}
            key = data.get("key")
            if isinstance(key, str):
                latest[key] = {
                    "key": key,
                    "kind": kind_of(key),
                    "size": int(data["size"]),
                    "sha256": str(data["sha256"]),
                    "start": str(data.get("wall_start", entry["at"])),
                    "end": str(data.get("wall_end", entry["at"])),
                }
                if "sm3" in data:
                    latest[key]["sm3"] = str(data["sm3"])
    for relative, piece in segments:
        latest[relative] = {
            "key": relative, "kind": "events", "size": len(piece), "sha256": hashlib.sha256(piece).hexdigest(), "sm3": sm3_hex(piece),
        }
    return [latest[k] for k in sorted(latest)]


def merkle_root(objects: list[dict[str, Any]]) -> str:
    return tree_hash([canonical_json(entry) for entry in objects]).hex()


async def seal(
    store: ObjectStore,
    keys: SigningKeys,
    inspection_id: str,
    inspection: dict[str, Any],
    events: bytes,
    log_head: str,
    log_count: int,
    verdict: Optional[dict[str, Any]] = None,
    rules_version: Optional[str] = None,
    segments: Optional[list[tuple[str, bytes]]] = None,
    extra: Optional[list[tuple[str, bytes]]] = None,
) -> tuple[bytes, bytes]:
    """Write manifest.json and manifest.json.sig over the log and the blobs it records.

    ``segments`` are the log's pieces (relative keys, in order); without them ``events`` is
    taken to be the single object ``events.jsonl``.
    """
    prefix = prefix_of(inspection_id)
    pieces = segments if segments is not None else [(EVENTS, events)]
    objects = objects_from_log(pieces)
    if extra:
        # objects no event records (the timestamp tokens of earlier seals and log heads)
        for key, data in extra:
            objects.append({"key": key, "kind": kind_of(key), "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "sm3": sm3_hex(data)})
        objects.sort(key=lambda o: str(o["key"]))
    manifest = {
        "format": FORMAT,
        "inspection_id": inspection_id,
        "prefix": prefix,
        "inspection": inspection,
        "objects": objects,
        "log": {"key": EVENTS, "chunks": [key for key, _ in pieces], "head": log_head, "count": log_count},
        "merkle": {"alg": "RFC9162-SHA256", "leaves": "canonical JSON of each objects[] entry, in order", "root": merkle_root(objects)},
        "verdict": verdict,
        "rules_version": rules_version,
        "sealed_at": rfc3339_ms(utc_now()),
        "signature": {"alg": "Ed25519", "key_id": keys.current_kid, "file": SIGNATURE},
    }
    signatures: list[dict[str, Any]] = [{"alg": "Ed25519", "key_id": keys.current_kid, "file": SIGNATURE}]
    if keys.current_sm2_kid is not None:
        signatures.append({"alg": "SM2", "key_id": keys.current_sm2_kid, "file": SM2_SIGNATURE, "digest": "SM3", "id": DEFAULT_ID})
    manifest["signatures"] = signatures
    body = canonical_json(manifest)
    _, signature = keys.sign(body)
    sm2 = keys.sign_sm2(body)
    await store.put(prefix + MANIFEST, body, "application/json")
    await store.put(prefix + SIGNATURE, signature, "application/octet-stream")
    if sm2 is not None:
        await store.put(prefix + SM2_SIGNATURE, sm2[1], "application/octet-stream")
    else:
        await store.delete(prefix + SM2_SIGNATURE)
    logger.info("inspection %s sealed: %d objects, log head %s", inspection_id, len(objects), log_head[:12])
    return body, signature
