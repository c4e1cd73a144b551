"""The archive package of one inspection: a self-contained, checked zip (GB/T 18894 in spirit).

:func:`export_package` writes (layout in :mod:`archive.layout`):

* ``evidence/…``: every object under ``inspections/<id>/`` exactly as stored (segments,
  stills, photos, signatures, ``events.jsonl``, ``manifest.json`` and its ``.sig``);
* ``keys/<kid>.pem``: the public key that signed the manifest (from ``system/keys/``);
* ``record.html``: the printable record in Chinese (:mod:`archive.record`);
* ``metadata.json``: archival metadata (identifier, title ``远程踏勘记录 <case_no>``,
  creator and authority, dates, retention, formats, and the SHA-256 of every other file);
* ``SHA256SUMS``: the same digests (and metadata.json's) for ``sha256sum -c``.

It first verifies the stored evidence as an auditor would (:func:`evidence.verify.verify_inspection`)
and refuses evidence that does not verify. The zip is written under a temporary name,
checked with the four checks of :func:`archive.checks.check_package` (authenticity,
integrity, usability, security) and only then renamed to ``out``; if a check fails the
partial file is removed and :class:`PackageRejected` names the check and its first problems.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import os
import secrets
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evidence.manifest import EVENTS, MANIFEST, kind_of, prefix_of
from evidence.signing import PUBLIC_PREFIX
from evidence.tsa_token import TsaTrust
from evidence.verify import verify_inspection
from privacy.fieldcrypto import (
    FieldCipher,
    FieldCryptoError,
    field_context,
    is_encrypted,
)
from privacy.masking import mask_id_number, mask_name, scrub
from storage.objects import ObjectNotFound, ObjectStore

from .backup import Progress, tool_version
from .checks import PackageCheck, check_package
from .layout import EVIDENCE, FORMAT, KEYS, METADATA, RECORD, SUMS, VERIFY_DOC, VERIFY_SCRIPT
from .record import IMAGE_TYPES, RecordContent, render_record
from .retention import RetentionPolicy, closing_date

__all__ = ["ExportError", "PackageCheck", "PackageInfo", "PackageRejected", "check_package", "export_package"]

logger = logging.getLogger(__name__)

RECORD_PREFIX = "records/inspections/"
KIT = Path(__file__).resolve().parent / "kit"
# Already compressed: storing them deflated would only cost time.
STORED_EXTENSIONS = ("webm", "mkv", "jpg", "jpeg", "png", "webp")
MEDIA_TYPES = {
    "webm": "video/webm", "mkv": "video/x-matroska", "jpg": "image/jpeg", "jpeg": "image/jpeg",
    "png": "image/png", "webp": "image/webp", "json": "application/json", "jsonl": "application/x-ndjson",
    "sig": "application/octet-stream", "pem": "application/x-pem-file", "html": "text/html",
    "tsr": "application/timestamp-reply", "md": "text/markdown", "sh": "text/x-shellscript",
}


class ExportError(Exception):
    """The package cannot be made from what is stored; the message says what to do."""


class PackageRejected(ExportError):
    """A check of the finished package failed; ``exc.check`` holds all four results."""

    def __init__(self, check: PackageCheck) -> None:
        failed = check.failed
        lines = "; ".join(f"{r.name}: {r.problems[0]}" for r in failed)
        super().__init__(
            f"the package failed the {', '.join(r.name for r in failed)} check{'s' if len(failed) > 1 else ''} "
            f"and was not written: {lines}"
        )
        self.check = check


@dataclass(frozen=True)
class PackageInfo:
    """The released package: where, its own SHA-256, what it holds, and its checks."""

    path: Path
    inspection_id: str
    sha256: str
    files: int
    bytes: int
    manifest_sha256: str
    key_id: str
    check: PackageCheck

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        out = asdict(self)
        out["path"] = str(self.path)
        out["check"] = self.check.as_json()
        return out


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name.rsplit("/", 1)[-1] else ""


class _ZipWriter:
    """Adds members to the zip, remembering each file's SHA-256 and size."""

    def __init__(self, path: Path, moment: datetime.datetime) -> None:
        self.zip = zipfile.ZipFile(path, "x", allowZip64=True)
        self.date_time = moment.timetuple()[:6]
        self.digests: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def add(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = zipfile.ZipInfo(name, date_time=self.date_time)
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_STORED if _extension(name) in STORED_EXTENSIONS else zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        self.digests[name] = hashlib.sha256(data).hexdigest()
        self.sizes[name] = len(data)

    def close(self) -> None:
        self.zip.close()


def _decrypted(record: dict[str, Any], inspection_id: str, cipher: FieldCipher | None) -> dict[str, Any]:
    """The record with the applicant's encrypted fields decrypted, when a cipher is given."""
    applicant = dict(record.get("applicant") or {})
    for name in ("id_number", "contact_phone", "contact_name"):
        value = applicant.get(name)
        if cipher is not None and is_encrypted(value):
            try:
                applicant[name] = cipher.decrypt(str(value), field_context("inspection", inspection_id, f"applicant.{name}"))
            except FieldCryptoError as exc:
                logger.warning("inspection %s: applicant.%s stays hidden in the record: %s", inspection_id, name, exc)
    return {**record, "applicant": applicant}


def _formats(names: list[str]) -> list[dict[str, Any]]:
    counts = Counter(MEDIA_TYPES.get(_extension(n), "application/octet-stream") for n in names)
    counts[MEDIA_TYPES["json"]] += 1  # metadata.json itself
    counts["text/plain"] += 1  # SHA256SUMS
    return [{"media_type": kind, "files": count} for kind, count in sorted(counts.items())]


def _metadata(
    inspection_id: str,
    manifest: dict[str, Any],
    manifest_sha256: str,
    record: dict[str, Any] | None,
    writer: _ZipWriter,
    authority: str | None,
    retention: RetentionPolicy,
    created: datetime.datetime,
) -> dict[str, Any]:
    inspection = manifest.get("inspection") or {}
    view = {**inspection, **(record or {})}
    case_no = view.get("case_no") or inspection_id
    item_code = str(view.get("item_code") or "")
    rule = retention.rule_for(item_code)
    closed = closing_date({**view, "status": view.get("status") or "ended", "created_at": view.get("created_at") or manifest.get("sealed_at")})
    until = rule.retain_until(closed) if closed else None
    applicant = (record or {}).get("applicant") or {}
    site = (record or {}).get("site") or {}
    natural = applicant.get("kind", "natural_person") == "natural_person"
    name = applicant.get("name") or inspection.get("applicant_name")
    id_number = applicant.get("id_number")
    if is_encrypted(id_number):
        shown_id: str | None = "（加密存储）"
    elif id_number and applicant.get("id_type") != "USCC":
        shown_id = mask_id_number(str(id_number))
    else:
        shown_id = id_number
    signature = manifest.get("signature") or {}
    return {
        "format": FORMAT,
        "identifier": f"takan:inspection:{inspection_id}",
        "title": f"远程踏勘记录 {case_no}",
        "language": "zh-CN",
        "case_no": case_no,
        "item": {"code": item_code, "name": view.get("item_name")},
        "creator": {"system": f"Takan {tool_version()}", "authority": authority},
        "subject": {
            "applicant_name": mask_name(str(name)) if natural and name else name,
            "applicant_kind": applicant.get("kind"),
            "id_type": applicant.get("id_type"),
            "id_number": shown_id,
            "site_address": scrub(str(site.get("address") or inspection.get("site_address") or "")) or None,
        },
        "dates": {
            "created_at": view.get("created_at"),
            "scheduled_at": view.get("scheduled_at"),
            "started_at": view.get("started_at"),
            "ended_at": view.get("ended_at"),
            "sealed_at": manifest.get("sealed_at"),
            "package_created_at": _rfc3339(created),
        },
        "status": view.get("status"),
        "verdict_outcome": (manifest.get("verdict") or view.get("verdict") or {}).get("outcome"),
        "retention": {
            "period": rule.label(),
            "years": rule.years,
            "basis": rule.basis,
            "counted_from": None if closed is None else datetime.date(closed.year + 1, 1, 1).isoformat(),
            "disposal_review_from": None if until is None else until.isoformat(),
        },
        "formats": _formats(list(writer.digests)),
        "evidence": {
            "manifest": EVIDENCE + MANIFEST,
            "manifest_sha256": manifest_sha256,
            "signature_alg": signature.get("alg"),
            "signing_key_id": signature.get("key_id"),
            "public_key": f"{KEYS}{signature.get('key_id')}.pem",
            "objects": len(manifest.get("objects") or []),
            "log_head": (manifest.get("log") or {}).get("head"),
            "merkle_root": (manifest.get("merkle") or {}).get("root"),
        },
        "fixity": {"alg": "SHA-256", "files": dict(sorted(writer.digests.items()))},
        "package_created_at": _rfc3339(created),
    }


async def export_package(
    store: ObjectStore,
    inspection_id: str,
    out: Path,
    record_html_extra: str | None = None,
    *,
    authority: str | None = None,
    retention: RetentionPolicy | None = None,
    cipher: FieldCipher | None = None,
    progress: Progress | None = None,
    require_sm2: bool = False,
    tsa_trust: TsaTrust | None = None,
) -> PackageInfo:
    """Write the archive package of ``inspection_id`` to the new file ``out`` (a zip).

    ``record_html_extra`` is an HTML fragment appended to ``record.html`` as 附加说明; it is
    trusted markup (escape any user text in it). ``authority`` names the approving
    authority (实施机关), ``retention`` gives the retention period (default:
    :meth:`RetentionPolicy.defaults`), ``cipher`` decrypts encrypted applicant fields so
    that their masked form can be shown; ``progress(done, total, what)`` counts the evidence
    objects copied, then reports the checks. ``require_sm2`` and ``tsa_trust`` (the TSA CA
    certificates) apply to the verification first, as in ``takan verify``. Raises :class:`ExportError` if the inspection is
    not sealed or does not verify, :class:`PackageRejected` if a package check fails.
    """
    out = Path(out)
    if out.exists():
        raise ExportError(f"{out} already exists: choose a new file name (packages are never overwritten)")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent} is not a directory: create it first")
    prefix = prefix_of(inspection_id)
    try:
        manifest_body = await store.get(prefix + MANIFEST)
    except ObjectNotFound:
        raise ExportError(f"inspection {inspection_id} is not sealed (no {prefix}{MANIFEST}): end or seal the session before exporting") from None
    report = await verify_inspection(store, inspection_id, require_sm2=require_sm2, tsa_trust=tsa_trust)
    if not report.ok:
        raise ExportError(f"the stored evidence of inspection {inspection_id} does not verify ({report.first_problem}); "
                          "run 'takan verify' and resolve it before archiving")
    manifest = json.loads(manifest_body)
    manifest_sha256 = hashlib.sha256(manifest_body).hexdigest()
    kid = str(manifest["signature"]["key_id"])
    try:
        pem = await store.get(f"{PUBLIC_PREFIX}{kid}.pem")
    except ObjectNotFound:
        raise ExportError(f"the public key {kid} is not in the store ({PUBLIC_PREFIX}{kid}.pem): start Takan with "
                          "its signing key directory so that it republishes its public keys") from None
    record: dict[str, Any] | None = None
    try:
        record = _decrypted(json.loads(await store.get(f"{RECORD_PREFIX}{inspection_id}.json")), inspection_id, cipher)
    except ObjectNotFound:
        logger.warning("inspection %s has no record at %s%s.json; the package shows what the manifest holds", inspection_id, RECORD_PREFIX, inspection_id)

    created = _now()
    partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
    writer = await asyncio.to_thread(_ZipWriter, partial, created)
    try:
        images: dict[str, bytes] = {}
        log_pieces: dict[str, bytes] = {}
        keys = await store.list(prefix)
        for done, key in enumerate(keys):
            relative = key[len(prefix):]
            if progress:
                progress(done, len(keys), relative)
            data = await store.get(key)
            await asyncio.to_thread(writer.add, EVIDENCE + relative, data)
            if _extension(relative) in IMAGE_TYPES:
                images[relative] = data
            if kind_of(relative) == "events":
                log_pieces[relative] = data
        await asyncio.to_thread(writer.add, f"{KEYS}{kid}.pem", pem)
        for entry in manifest.get("signatures") or []:
            other = str(entry.get("key_id", ""))
            if entry.get("alg") == "SM2" and other.isalnum():
                await asyncio.to_thread(writer.add, f"{KEYS}{other}.pem", await store.get(f"{PUBLIC_PREFIX}{other}.pem"))
        await asyncio.to_thread(writer.add, VERIFY_DOC, (KIT / VERIFY_DOC).read_bytes())
        await asyncio.to_thread(writer.add, VERIFY_SCRIPT, (KIT / VERIFY_SCRIPT).read_bytes(), 0o755)
        # the log's pieces in order: the single events.jsonl of old evidence, then chunks by name
        events_body = b"".join(log_pieces[k] for k in sorted(log_pieces, key=lambda k: (k != EVENTS, k)))
        events = [json.loads(line) for line in events_body.splitlines() if line.strip()]
        policy = retention or RetentionPolicy.defaults()
        item_code = str((record or manifest.get("inspection") or {}).get("item_code") or "")
        html = render_record(RecordContent(
            manifest=manifest, manifest_sha256=manifest_sha256, events=events, record=record, images=images,
            authority=authority, retention_label=policy.rule_for(item_code).label(), created_at=_rfc3339(created),
            extra_html=record_html_extra,
        ))
        images.clear()
        await asyncio.to_thread(writer.add, RECORD, html.encode("utf-8"))
        metadata = _metadata(inspection_id, manifest, manifest_sha256, record, writer, authority, policy, created)
        await asyncio.to_thread(writer.add, METADATA, json.dumps(metadata, ensure_ascii=False, indent=1).encode("utf-8") + b"\n")
        sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(writer.digests.items()))
        await asyncio.to_thread(writer.add, SUMS, sums.encode("ascii"))
        files, size = len(writer.digests), sum(writer.sizes.values())
        await asyncio.to_thread(writer.close)
        if progress:
            progress(len(keys), len(keys), "checking the package")
        check = await asyncio.to_thread(check_package, partial)
        if not check.ok:
            raise PackageRejected(check)
        await asyncio.to_thread(_release, partial, out)
    except BaseException:
        await asyncio.to_thread(writer.close)
        partial.unlink(missing_ok=True)
        raise
    digest = await asyncio.to_thread(_sha256_file, out)
    if progress:
        progress(len(keys), len(keys), "done")
    logger.info("inspection %s archived to %s (%d files, sha256 %s)", inspection_id, out, files, digest)
    return PackageInfo(out, inspection_id, digest, files, size, manifest_sha256, kid, check)


def _release(partial: Path, out: Path) -> None:
    with open(partial, "rb+") as file:
        os.fsync(file.fileno())
    os.replace(partial, out)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
