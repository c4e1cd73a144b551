"""An auditor's check of one inspection's evidence.

Recomputes the signature, the manifest's canonical form, every object's size and
SHA-256, the hash chain of events.jsonl, the blob events against the objects, and the
Merkle root; reports every difference, the first one first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from storage.objects import ObjectNotFound, ObjectStore

from .canonical import canonical_json
from .chainlog import GENESIS, entry_hash
from .manifest import EVENTS, MANIFEST, SEALS, SIGNATURE, merkle_root, prefix_of
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
    manifest_sha256: Optional[str] = None

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
            "manifest_sha256": self.manifest_sha256,
        }


async def verify_inspection(store: ObjectStore, inspection_id: str, progress: Optional[Progress] = None) -> Report:
    report = Report(inspection_id)
    prefix = prefix_of(inspection_id)
    problem = lambda where, message: report.problems.append(Problem(where, message))  # noqa: E731

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

    objects: list[dict[str, Any]] = list(manifest.get("objects") or [])
    listed = {entry.get("key"): entry for entry in objects}
    total = sum(int(entry.get("size", 0)) for entry in objects)
    done = 0
    events_bytes: Optional[bytes] = None
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
        if key == EVENTS:
            events_bytes = data
    if progress:
        progress(total, total, "done")

    stored = [k[len(prefix):] for k in await store.list(prefix)]
    for key in stored:
        if key not in listed and key not in SEALS:
            problem(key, "is in storage but not in the manifest (added after sealing)")

    if merkle_root(objects) != (manifest.get("merkle") or {}).get("root"):
        problem(MANIFEST, "Merkle root does not match the listed objects")

    if events_bytes is None:
        problem(EVENTS, "is not listed in the manifest")
    else:
        _check_chain(events_bytes, manifest, listed, report)
    return report


async def _signed(store: ObjectStore, body: bytes, signature: bytes) -> bool:
    try:
        kid = str((json.loads(body).get("signature") or {}).get("key_id", ""))
    except ValueError:
        return False
    return await PublicKeys(store).verify(kid, signature, body)


def _check_chain(data: bytes, manifest: dict[str, Any], listed: dict[Any, dict[str, Any]], report: Report) -> None:
    def problem(where: str, message: str) -> None:
        report.problems.append(Problem(where, message))

    prev = GENESIS
    count = 0
    referenced: set[str] = set()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        where = f"{EVENTS} line {number}"
        try:
            entry = json.loads(line)
        except ValueError:
            problem(where, "is not valid JSON")
            return
        if not isinstance(entry, dict):
            problem(where, "is not a JSON object")
            return
        if entry.get("seq") != number:
            problem(where, f"has seq {entry.get('seq')!r}; expected {number} (a line was removed, inserted or moved)")
            return
        if entry.get("prev") != prev:
            problem(where, "prev does not match the previous line's hash (the chain is broken here)")
            return
        if entry_hash(entry) != entry.get("hash"):
            problem(where, "hash does not match its content (the line was edited)")
            return
        prev = str(entry["hash"])
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
        problem(EVENTS, f"ends at line {count} with head {prev[:16]}…; the manifest says {log.get('count')} lines ending {str(log.get('head'))[:16]}… (lines were removed or added at the end)")
    for key in listed:
        if key != EVENTS and key not in referenced:
            problem(str(key), "is in the manifest but no event records it")
