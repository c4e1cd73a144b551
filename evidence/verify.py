"""An auditor's check of one inspection's evidence.

Recomputes the signature, the manifest's canonical form, every object's size and
SHA-256, the hash chain of the event log (the single ``events.jsonl`` of format 1, or the
chunks ``events/<first seq>.jsonl`` the manifest's ``log.chunks`` lists, in that order),
the blob events against the objects, the Merkle root, and the RFC 3161 token over the
manifest (:func:`evidence.tsa_token.check_token`: its signature always, the TSA's
certificate chain when trust anchors are given); reports every difference, the first one
first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from storage.objects import ObjectNotFound, ObjectStore

from .canonical import canonical_json
from .chainlog import GENESIS, entry_hash, is_chunk_name
from .manifest import EVENT_CHUNKS, EVENTS, FORMATS, MANIFEST, SEALS, SIGNATURE, SM2_SIGNATURE, TIMESTAMP, merkle_root, prefix_of
from .sm2 import sm3_hex
from .tsa_token import TsaTrust, check_token, token_imprint
from .signing import PublicKeys

#: progress(done_bytes, total_bytes, what)
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Problem:
    where: str  # an object key, "events.jsonl line N", "manifest.json", ...
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Report:
    inspection_id: str
    problems: list[Problem] = field(default_factory=list)
    objects_checked: int = 0
    bytes_checked: int = 0
    events_checked: int = 0
    key_id: Optional[str] = None
    sm2_key_id: Optional[str] = None
    manifest_sha256: Optional[str] = None
    timestamp: Optional[str] = None  #: genTime of the token over this manifest, or "pending"
    #: "trusted" (chains to a configured TSA CA), "untrusted" (sound, but no CA configured),
    #: "failed" (a problem names why), or None (no token yet)
    timestamp_trust: Optional[str] = None
    timestamp_tsa: Optional[str] = None  #: the TSA certificate's subject
    timestamp_ca: Optional[str] = None  #: the configured CA certificate it chains to
    timestamp_note: Optional[str] = None  #: why it is untrusted, in words

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Optional[Problem]:
        return self.problems[0] if self.problems else None

    def as_json(self) -> dict[str, Any]:
        return {
            "inspection_id": self.inspection_id,
            "ok": self.ok,
            "first_problem": str(self.first_problem) if self.problems else None,
            "problems": [{"where": p.where, "message": p.message} for p in self.problems],
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "events_checked": self.events_checked,
            "key_id": self.key_id,
            "sm2_key_id": self.sm2_key_id,
            "manifest_sha256": self.manifest_sha256,
            "timestamp": self.timestamp,
            "timestamp_trust": self.timestamp_trust,
            "timestamp_tsa": self.timestamp_tsa,
            "timestamp_ca": self.timestamp_ca,
            "timestamp_note": self.timestamp_note,
        }


async def verify_inspection(
    store: ObjectStore, inspection_id: str, progress: Optional[Progress] = None, *, require_sm2: bool = False,
    tsa_trust: Optional[TsaTrust] = None,
) -> Report:
    """Check everything; ``require_sm2`` makes a manifest without an SM2 signature a problem;
    ``tsa_trust`` (the configured TSA CA certificates) decides whether the timestamp is trusted."""
    report = Report(inspection_id)
    prefix = prefix_of(inspection_id)

    def problem(where: str, message: str) -> None:
        report.problems.append(Problem(where, message))

    try:
        body = await store.get(prefix + MANIFEST)
    except ObjectNotFound:
        problem(MANIFEST, "is missing: the inspection was never sealed (is it still live?)")
        return report
    try:
        signature = await store.get(prefix + SIGNATURE)
    except ObjectNotFound:
        signature = b""
    if signature and not await _signed(store, body, signature):
        # perhaps re-sealed between the two reads (a verdict just arrived): read the pair again
        await asyncio.sleep(0.25)
        body = await store.get(prefix + MANIFEST)
        signature = await store.get(prefix + SIGNATURE)
    report.manifest_sha256 = hashlib.sha256(body).hexdigest()
    if not signature:
        problem(SIGNATURE, "is missing")
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        problem(MANIFEST, f"is not valid JSON ({exc})")
        return report

    kid = str((manifest.get("signature") or {}).get("key_id", ""))
    report.key_id = kid or None
    if signature:
        if len(signature) != 64:
            problem(SIGNATURE, f"is {len(signature)} bytes; an Ed25519 signature is 64")
        elif not await PublicKeys(store).verify(kid, signature, body):
            problem(MANIFEST, f"signature does not verify with key {kid!r}: the manifest or its signature was altered")
    if canonical_json(manifest) != body:
        problem(MANIFEST, "is not in RFC 8785 canonical form: it was edited")
    sm2_entry = next((s for s in manifest.get("signatures") or [] if isinstance(s, dict) and s.get("alg") == "SM2"), None)
    if sm2_entry is not None:
        report.sm2_key_id = str(sm2_entry.get("key_id", ""))
        try:
            sm2_signature = await store.get(prefix + SM2_SIGNATURE)
        except ObjectNotFound:
            problem(SM2_SIGNATURE, "is missing (the manifest says it is SM2-signed)")
        else:
            if not await PublicKeys(store).verify_sm2(report.sm2_key_id, sm2_signature, body):
                problem(MANIFEST, f"SM2 signature does not verify with key {report.sm2_key_id!r}: the manifest or {SM2_SIGNATURE} was altered")
    elif require_sm2:
        problem(MANIFEST, "has no SM2 signature, and this check requires one")
    try:
        token = await store.get(prefix + TIMESTAMP)
    except ObjectNotFound:
        report.timestamp = "pending"
    else:
        checked = check_token(token, hashlib.sha256(body).digest(), tsa_trust)
        report.timestamp_trust, report.timestamp_tsa, report.timestamp_ca = checked.trust, checked.tsa, checked.ca
        if checked.ok:
            report.timestamp = checked.gen_time
            report.timestamp_note = checked.message
        else:
            problem(TIMESTAMP, checked.message or "does not verify")

    if manifest.get("format") not in FORMATS:
        problem(MANIFEST, f"has format {manifest.get('format')!r}; this verifier reads {', '.join(FORMATS)}")
    objects: list[dict[str, Any]] = list(manifest.get("objects") or [])
    listed = {entry.get("key"): entry for entry in objects}
    total = sum(int(entry.get("size", 0)) for entry in objects)
    done = 0
    log_info = manifest.get("log") or {}
    chunk_names = log_info.get("chunks")
    pieces: list[str] = [str(k) for k in chunk_names] if isinstance(chunk_names, list) else [EVENTS]
    log_bytes: dict[str, bytes] = {}
    for entry in objects:
        key = str(entry.get("key"))
        if progress:
            progress(done, total, key)
        try:
            data = await store.get(prefix + key)
        except ObjectNotFound:
            problem(key, "is listed in the manifest but missing from storage")
            continue
        done += int(entry.get("size", 0))
        report.objects_checked += 1
        report.bytes_checked += len(data)
        if len(data) != entry.get("size"):
            problem(key, f"size is {len(data)}, manifest says {entry.get('size')}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.get("sha256"):
            problem(key, f"sha256 is {digest}, manifest says {entry.get('sha256')}")
        elif "sm3" in entry and sm3_hex(data) != entry.get("sm3"):
            problem(key, f"sm3 is {sm3_hex(data)}, manifest says {entry.get('sm3')}")
        if key in pieces:
            log_bytes[key] = data
    if progress:
        progress(total, total, "done")

    stored = [k[len(prefix):] for k in await store.list(prefix)]
    late_heads: dict[str, bytes] = {}
    for key in stored:
        if key not in listed and key not in SEALS:
            if key.startswith("timestamps/head-"):
                late_heads[key] = await store.get(prefix + key)  # a live head stamped after this seal
                continue
            problem(key, "is in storage but not in the manifest (added after sealing)")

    if merkle_root(objects) != (manifest.get("merkle") or {}).get("root"):
        problem(MANIFEST, "Merkle root does not match the listed objects")

    _check_pieces(pieces, listed, report)
    hashes = _check_chain([(key, log_bytes[key]) for key in pieces if key in log_bytes], manifest, listed, report, complete=len(log_bytes) == len(pieces))
    for key, token in late_heads.items():
        info = token_imprint(token)
        if info.imprint is None or info.imprint.hex() not in hashes:
            problem(key, "is in storage but not in the manifest, and is no timestamp of this log's head")
    return report


def _check_pieces(pieces: list[str], listed: dict[Any, dict[str, Any]], report: Report) -> None:
    """The log's pieces are listed, stored, and chunks named by their first line's seq."""
    def problem(where: str, message: str) -> None:
        report.problems.append(Problem(where, message))

    for key in pieces:
        if key not in listed:
            problem(key, "is a piece of the event log but is not listed in the manifest")
        elif listed[key].get("kind") != "events":
            problem(key, f"is a piece of the event log but listed as kind {listed[key].get('kind')!r}")
        if key != EVENTS and not (key.startswith(EVENT_CHUNKS) and is_chunk_name(key[len(EVENT_CHUNKS):])):
            problem(key, "is not a chunk name (events/<8-digit first seq>.jsonl)")
    if pieces != sorted(pieces, key=lambda k: (k != EVENTS, k)):
        problem(MANIFEST, "log.chunks is not in order (events.jsonl first, then chunks by name)")
    for key in listed:
        if listed[key].get("kind") == "events" and key not in pieces:
            problem(str(key), "is listed as part of the event log but log.chunks does not name it")



async def _signed(store: ObjectStore, body: bytes, signature: bytes) -> bool:
    try:
        kid = str((json.loads(body).get("signature") or {}).get("key_id", ""))
    except ValueError:
        return False
    return await PublicKeys(store).verify(kid, signature, body)


def _check_chain(
    pieces: list[tuple[str, bytes]], manifest: dict[str, Any], listed: dict[Any, dict[str, Any]], report: Report, complete: bool = True
) -> set[str]:
    """Check the chain; returns the hashes of the lines read (for head timestamps)."""
    hashes: set[str] = set()
    def problem(where: str, message: str) -> None:
        report.problems.append(Problem(where, message))

    prev = GENESIS
    count = 0
    referenced: set[str] = set()
    last_where = EVENTS
    for key, data in pieces:
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        chunk_first = int(key[len(EVENT_CHUNKS):-len(".jsonl")]) if key != EVENTS else 1
        if key != EVENTS and chunk_first != count + 1:
            problem(key, f"starts the log at event {chunk_first} by its name, but the pieces before it end at event {count} (a chunk was removed, added or renamed)")
            return hashes
        if not lines:
            problem(key, "is empty")
            return hashes
        for number, line in enumerate(lines, start=1):
            expected = count + 1
            where = f"{key} line {number}" if key == EVENTS else f"{key} line {number} (event {expected})"
            last_where = key
            try:
                entry = json.loads(line)
            except ValueError:
                problem(where, "is not valid JSON")
                return hashes
            if not isinstance(entry, dict):
                problem(where, "is not a JSON object")
                return hashes
            if entry.get("seq") != expected:
                problem(where, f"has seq {entry.get('seq')!r}; expected {expected} (a line was removed, inserted or moved)")
                return hashes
            if entry.get("prev") != prev:
                problem(where, "prev does not match the previous line's hash (the chain is broken here)")
                return hashes
            if entry_hash(entry) != entry.get("hash"):
                problem(where, "hash does not match its content (the line was edited)")
                return hashes
            prev = str(entry["hash"])
            hashes.add(prev)
            count += 1
            blob = (entry.get("data") or {}).get("key")
            if isinstance(blob, str):
                referenced.add(blob)
                listed_entry = listed.get(blob)
                if listed_entry is None:
                    problem(where, f"records object {blob} which is not in the manifest")
                elif (entry["data"].get("sha256"), entry["data"].get("size")) != (listed_entry.get("sha256"), listed_entry.get("size")):
                    problem(where, f"records {blob} with a different sha256/size than the manifest")
    report.events_checked = count
    log = manifest.get("log") or {}
    if log.get("head") != prev or log.get("count") != count:
        problem(last_where, f"the log ends at event {count} with head {prev[:16]}…; the manifest says {log.get('count')} events ending {str(log.get('head'))[:16]}… (lines were removed or added at the end)")
    for key in listed:
        kind = listed[key].get("kind")
        if complete and kind not in ("events", "timestamp") and key not in referenced:
            problem(str(key), "is in the manifest but no event records it")
    return hashes
