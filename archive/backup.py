"""Backup and restore of the whole object store (clause 9.5: backups with a recovery plan).

A backup is one tar file (``.tar``, or gzip-compressed if the name ends in ``.tar.gz`` or
``.tgz``). Its first member is ``backup-manifest.json``::

    {"format": "takan-backup/1", "created_at": "...", "tool": {"name": "takan", "version": "..."},
     "object_count": N, "total_bytes": B, "member_prefix": "objects/",
     "objects": [{"key": "...", "size": ..., "sha256": "..."}, ...]}

followed by every object of the store (``inspections/``, ``records/``, ``system/``, all of
them) as the member ``objects/<key>``, in key order. Objects are read once, into a
temporary tar next to the output, so that the manifest (which must come first) describes
exactly the bytes that follow even while sessions keep writing; the finished file is moved
into place only when complete.

:func:`restore` checks the whole file against its manifest before writing anything (a
damaged backup is refused, naming the object), then writes every object into an empty store
(or over existing objects with ``overwrite=True``; objects the backup does not hold are then
left alone). Afterwards the recovery plan runs :func:`verify_all`, which verifies every sealed
inspection as an auditor would.

Not in the backup, on purpose: the private signing keys and the field-encryption keys (the
``keys/`` directories of the data dir). Back them up separately and offline; without the
field keys, encrypted fields in the restored records cannot be read. The backup file holds
personal data (video, records): keep it on encrypted media with restricted access.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import io
import json
import logging
import os
import secrets
import tarfile
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from evidence.manifest import MANIFEST
from evidence.tsa_token import TsaTrust
from evidence.verify import Report, verify_inspection
from storage.keys import InvalidKey, validate_key
from storage.objects import ObjectNotFound, ObjectStore

__all__ = [
    "BACKUP_MANIFEST",
    "BackupError",
    "BackupInfo",
    "CorruptBackup",
    "Progress",
    "RestoreInfo",
    "RestoreRefused",
    "backup",
    "restore",
    "verify_all",
]

logger = logging.getLogger(__name__)

#: progress(done, total, what): objects done of total, and the key (or phase) at hand.
Progress = Callable[[int, int, str], None]

FORMAT = "takan-backup/1"
BACKUP_MANIFEST = "backup-manifest.json"
MEMBER_PREFIX = "objects/"
INSPECTIONS = "inspections/"


class BackupError(Exception):
    """A backup could not be written or restored; the message says what to do."""


class CorruptBackup(BackupError):
    """The backup file does not match its own manifest (``exc.where`` names the object)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


class RestoreRefused(BackupError):
    """The target store is not empty and ``overwrite`` was not asked for."""


@dataclass(frozen=True)
class BackupInfo:
    """What :func:`backup` wrote: the file, its SHA-256, and what it holds."""

    path: Path
    created_at: str
    objects: int
    bytes: int
    sha256: str
    skipped: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        return {
            "path": str(self.path), "created_at": self.created_at, "objects": self.objects,
            "bytes": self.bytes, "sha256": self.sha256, "skipped": list(self.skipped),
        }


@dataclass(frozen=True)
class RestoreInfo:
    """What :func:`restore` wrote into the store."""

    path: Path
    backup_created_at: str
    objects: int
    bytes: int
    replaced: int

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        return {
            "path": str(self.path), "backup_created_at": self.backup_created_at,
            "objects": self.objects, "bytes": self.bytes, "replaced": self.replaced,
        }


def tool_version() -> str:
    """Takan's installed version (``0+unknown`` when run from a tree that is not installed)."""
    try:
        return metadata.version("takan")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _compressed(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz"))


def _member(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.uname = info.gname = "takan"
    return info


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _assemble(out: Path, partial: Path, objects_tar: Path, manifest: bytes, mtime: float) -> None:
    """Write the final tar: the manifest, then the members of ``objects_tar``; then rename."""
    mode = "w:gz" if _compressed(out) else "w"
    with tarfile.open(partial, mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        tar.addfile(_member(BACKUP_MANIFEST, len(manifest), mtime), io.BytesIO(manifest))
        with tarfile.open(objects_tar, "r") as source:
            for info in source:
                tar.addfile(info, source.extractfile(info))
    with open(partial, "rb+") as file:
        os.fsync(file.fileno())
    os.replace(partial, out)


async def backup(store: ObjectStore, out: Path, progress: Progress | None = None) -> BackupInfo:
    """Write every object of ``store`` into the new tar file ``out``.

    Refuses to overwrite an existing file. An object deleted while the backup runs is left
    out and named in :attr:`BackupInfo.skipped`.
    """
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} already exists: backups are never overwritten; choose a new file name")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a directory: create it first")
    token = secrets.token_hex(4)
    objects_tar = out.with_name(f".{out.name}.{token}.objects.tmp")
    partial = out.with_name(f".{out.name}.{token}.partial")
    created_at = _now()
    mtime = datetime.datetime.now(datetime.UTC).timestamp()
    keys = await store.list("")
    entries: list[dict[str, Any]] = []
    skipped: list[str] = []
    total = 0
    try:
        tar = await asyncio.to_thread(tarfile.open, objects_tar, "w", format=tarfile.PAX_FORMAT)
        try:
            for done, key in enumerate(keys):
                if progress:
                    progress(done, len(keys), key)
                try:
                    data = await store.get(key)
                except ObjectNotFound:
                    logger.warning("backup %s: %s was deleted while the backup ran; left out", out, key)
                    skipped.append(key)
                    continue
                entries.append({"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
                total += len(data)
                await asyncio.to_thread(tar.addfile, _member(MEMBER_PREFIX + key, len(data), mtime), io.BytesIO(data))
        finally:
            await asyncio.to_thread(tar.close)
        manifest = {
            "format": FORMAT,
            "created_at": created_at,
            "tool": {"name": "takan", "version": tool_version()},
            "object_count": len(entries),
            "total_bytes": total,
            "member_prefix": MEMBER_PREFIX,
            "objects": entries,
        }
        body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode() + b"\n"
        if progress:
            progress(len(keys), len(keys), "writing " + out.name)
        await asyncio.to_thread(_assemble, out, partial, objects_tar, body, mtime)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        objects_tar.unlink(missing_ok=True)
    digest = await asyncio.to_thread(_sha256_file, out)
    if progress:
        progress(len(keys), len(keys), "done")
    logger.info("backup %s written: %d objects, %d bytes, sha256 %s", out, len(entries), total, digest)
    return BackupInfo(out, created_at, len(entries), total, digest, tuple(skipped))


# ---- restore ---------------------------------------------------------------------------------


class _Reader:
    """Reads a backup member by member, turning every way a file can be damaged into
    :class:`CorruptBackup` naming the last good place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.at = BACKUP_MANIFEST
        try:
            self._tar = tarfile.open(path, "r:*")
        except FileNotFoundError:
            raise BackupError(f"{path} does not exist") from None
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise CorruptBackup(str(path), f"is not a readable tar file ({exc}); use another backup") from None

    def close(self) -> None:
        self._tar.close()

    def next(self) -> tuple[tarfile.TarInfo, bytes] | None:
        try:
            info = self._tar.next()
            if info is None:
                return None
            self.at = info.name
            if not info.isreg():
                raise CorruptBackup(info.name, "is not a regular file; a Takan backup holds only files")
            handle: IO[bytes] | None = self._tar.extractfile(info)
            data = handle.read() if handle is not None else b""
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise CorruptBackup(self.at, f"the backup file is damaged here or just after ({exc}); use another backup") from None
        if len(data) != info.size:
            raise CorruptBackup(info.name, f"is truncated ({len(data)} of {info.size} bytes); use another backup")
        return info, data


def _parse_manifest(path: Path, info: tarfile.TarInfo, data: bytes) -> dict[str, Any]:
    if info.name != BACKUP_MANIFEST:
        raise CorruptBackup(str(path), f"starts with {info.name!r}, not {BACKUP_MANIFEST}: it is not a Takan backup")
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise CorruptBackup(BACKUP_MANIFEST, f"is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptBackup(BACKUP_MANIFEST, f"has format {manifest.get('format') if isinstance(manifest, dict) else None!r}; this Takan restores {FORMAT!r}")
    objects = manifest.get("objects")
    if not isinstance(objects, list) or manifest.get("object_count") != len(objects):
        raise CorruptBackup(BACKUP_MANIFEST, "object list and object_count disagree")
    seen: set[str] = set()
    for entry in objects:
        key = entry.get("key") if isinstance(entry, dict) else None
        try:
            validate_key(key)  # type: ignore[arg-type]
        except InvalidKey as exc:
            raise CorruptBackup(BACKUP_MANIFEST, f"lists an invalid object key: {exc}") from None
        if key in seen:
            raise CorruptBackup(BACKUP_MANIFEST, f"lists {key} twice")
        if not isinstance(entry.get("size"), int) or not isinstance(entry.get("sha256"), str):
            raise CorruptBackup(BACKUP_MANIFEST, f"entry for {key} lacks size or sha256")
        seen.add(str(key))
    return manifest


def _check_member(info: tarfile.TarInfo, data: bytes, listed: dict[str, dict[str, Any]], seen: set[str]) -> str:
    """The object key of a verified member; :class:`CorruptBackup` if it differs."""
    if not info.name.startswith(MEMBER_PREFIX):
        raise CorruptBackup(info.name, f"is not under {MEMBER_PREFIX}: it is not part of a Takan backup")
    key = info.name[len(MEMBER_PREFIX):]
    entry = listed.get(key)
    if entry is None:
        raise CorruptBackup(key, "is in the backup file but not in its manifest (added afterwards)")
    if key in seen:
        raise CorruptBackup(key, "appears twice in the backup file")
    seen.add(key)
    if len(data) != entry["size"]:
        raise CorruptBackup(key, f"is {len(data)} bytes, the backup manifest says {entry['size']}: the backup is damaged; use another")
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise CorruptBackup(key, f"sha256 is {digest}, the backup manifest says {entry['sha256']}: the backup is damaged; use another")
    return key


async def _walk(path: Path, progress: Progress | None, phase: str, write: Callable[[str, bytes], Awaitable[None]] | None) -> tuple[dict[str, Any], int]:
    """Read the whole backup, checking every member; ``write`` (async) gets each object."""
    reader = await asyncio.to_thread(_Reader, path)
    try:
        first = await asyncio.to_thread(reader.next)
        if first is None:
            raise CorruptBackup(str(path), "is empty")
        manifest = _parse_manifest(path, *first)
        listed = {entry["key"]: entry for entry in manifest["objects"]}
        seen: set[str] = set()
        total = len(listed)
        written = 0
        while (item := await asyncio.to_thread(reader.next)) is not None:
            info, data = item
            key = _check_member(info, data, listed, seen)
            if progress:
                progress(len(seen) - 1, total, f"{phase} {key}")
            if write is not None:
                await write(key, data)
            written += len(data)
        missing = [key for key in listed if key not in seen]
        if missing:
            raise CorruptBackup(missing[0], f"is in the backup manifest but not in the file ({len(missing)} objects missing); the backup is incomplete")
        if progress:
            progress(total, total, f"{phase} done")
        return manifest, written
    finally:
        await asyncio.to_thread(reader.close)


async def restore(store: ObjectStore, tar_path: Path, progress: Progress | None = None, overwrite: bool = False) -> RestoreInfo:
    """Check the backup ``tar_path`` completely, then write its objects into ``store``.

    Raises :class:`CorruptBackup` (naming the object) before anything is written if any
    member differs from the backup manifest, and :class:`RestoreRefused` if the store
    already holds objects and ``overwrite`` is False. Run :func:`verify_all` afterwards.
    """
    tar_path = Path(tar_path)
    manifest, _ = await _walk(tar_path, progress, "checking", None)
    existing = set(await store.list(""))
    if existing and not overwrite:
        example = min(existing)
        raise RestoreRefused(
            f"the store already holds {len(existing)} objects (e.g. {example}): restore into an empty "
            "store, or pass overwrite=True to replace the objects the backup holds"
        )
    replaced = 0

    async def write(key: str, data: bytes) -> None:
        nonlocal replaced
        replaced += key in existing
        await store.put(key, data)

    # The file is read again, and every member checked again, as it is written: a file
    # changed between the two passes cannot slip through.
    _, written = await _walk(tar_path, progress, "restoring", write)
    logger.info("restored %d objects (%d bytes) from %s (backup of %s)", len(manifest["objects"]), written, tar_path, manifest.get("created_at"))
    return RestoreInfo(tar_path, str(manifest.get("created_at")), len(manifest["objects"]), written, replaced)


async def inspection_ids(store: ObjectStore) -> list[str]:
    """Ids of every inspection with a ``manifest.json`` (sealed at least once), sorted."""
    ids = set()
    for key in await store.list(INSPECTIONS):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == MANIFEST:
            ids.add(parts[1])
    return sorted(ids)


async def verify_all(
    store: ObjectStore, progress: Progress | None = None, *, require_sm2: bool = False, tsa_trust: TsaTrust | None = None
) -> list[tuple[str, Report]]:
    """Verify every sealed inspection in ``store``; a (id, report) pair for each, by id.

    Inspections never sealed (no ``manifest.json``: still live, or lost before the seal) are
    not listed; compare with the inspection records to find them.
    """
    ids = await inspection_ids(store)
    results: list[tuple[str, Report]] = []
    for done, inspection_id in enumerate(ids):
        if progress:
            progress(done, len(ids), inspection_id)
        report = await verify_inspection(store, inspection_id, require_sm2=require_sm2, tsa_trust=tsa_trust)
        if not report.ok:
            logger.warning("inspection %s does not verify: %s", inspection_id, report.first_problem)
        results.append((inspection_id, report))
    if progress:
        progress(len(ids), len(ids), "done")
    return results
